"""Workflow steps: the interface (:mod:`.base`), the registry, and the built-in kinds.

See :mod:`workflow_service.steps.base` for how to write a step kind.
"""

from workflow_service.steps.base import (
    Directory,
    NoDirectory,
    Step,
    StepConfig,
    StepContext,
    StepFailed,
    StepOutcome,
    Template,
    Trigger,
)
from workflow_service.steps.registry import (
    build_step,
    build_step_or_fail,
    kinds,
    load_steps,
    register,
    step_class,
    step_errors,
)

__all__ = [
    "Directory",
    "NoDirectory",
    "Step",
    "StepConfig",
    "StepContext",
    "StepFailed",
    "StepOutcome",
    "Template",
    "Trigger",
    "build_step",
    "build_step_or_fail",
    "kinds",
    "load_steps",
    "register",
    "step_class",
    "step_errors",
]

"""Workflow steps: the interface (:mod:`.base`), the registry, and the kinds every
feature builds on (``notify`` with its ``in_app`` channel, ``change_status``, and how
steps name people, :mod:`.recipients`, and webhook addresses, :mod:`.webhook_urls`).

Part of the kernel: may import the other kernel modules and ``shared``, never a feature
package. Features declare their own kinds in their ``FEATURE`` (see
:mod:`workflow_service.kernel.feature`); see :mod:`.base` for how to write one.
"""

from workflow_service.steps.base import (
    Directory,
    NoDirectory,
    Step,
    StepConfig,
    StepContext,
    StepFailed,
    StepOutcome,
    Steps,
    Template,
    Trigger,
)
from workflow_service.steps.registry import (
    build_step,
    build_step_or_fail,
    kinds,
    register,
    register_steps,
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
    "Steps",
    "Template",
    "Trigger",
    "build_step",
    "build_step_or_fail",
    "kinds",
    "register",
    "register_steps",
    "step_class",
    "step_errors",
]

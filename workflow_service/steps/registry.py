"""Step kinds by name, and the validation of a workflow's step list.

The kinds come from the features' declarations: ``workflow_service.features.install``
registers every feature's ``steps`` (and imports the ``WORKFLOW_PLUGINS`` modules, which
declare a ``FEATURE`` or use :func:`register`) once per process, before anything builds
a step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from workflow_service.steps.base import Step, StepFailed

_REGISTRY: dict[str, type[Step]] = {}
#: Keys of a step definition that belong to the engine, not to the step's options.
RESERVED_KEYS = ("kind", "name")
MAX_NAME_CHARS = 200


def _short(value: Any) -> str:
    """``repr`` of a value for an error message, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def register(cls: type[Step]) -> type[Step]:
    """Make ``cls`` available under ``cls.kind`` (also a class decorator, for plugin
    modules that declare no ``FEATURE``)."""
    existing = _REGISTRY.get(cls.kind)
    if existing is not None and existing is not cls:
        raise RuntimeError(f"step kind {cls.kind!r} is registered twice")
    _REGISTRY[cls.kind] = cls
    return cls


def register_steps(classes: Iterable[type[Step]]) -> None:
    """Register a feature's step kinds (the same class twice is one registration)."""
    for cls in classes:
        register(cls)


def kinds() -> list[str]:
    return sorted(_REGISTRY)


def step_class(kind: str) -> type[Step]:
    return _REGISTRY[kind]


def step_errors(steps: Any, prefix: str = "steps") -> list[dict[str, str]]:
    """Problems of a step list as ``[{"field", "message"}]``; empty when it is valid."""
    if not isinstance(steps, list):
        return [{"field": prefix, "message": "must be a list of step objects"}]
    errors: list[dict[str, str]] = []
    for index, spec in enumerate(steps):
        where = f"{prefix}.{index}"
        if not isinstance(spec, Mapping):
            errors.append({"field": where, "message": "must be an object with a 'kind'"})
            continue
        kind = spec.get("kind")
        if not isinstance(kind, str) or kind not in _REGISTRY:
            errors.append(
                {
                    "field": f"{where}.kind",
                    "message": f"unknown step kind {_short(kind)}; known kinds: "
                    + ", ".join(kinds()),
                }
            )
            continue
        name = spec.get("name")
        if name is not None and not isinstance(name, str):
            errors.append({"field": f"{where}.name", "message": "must be a string"})
        elif name is not None and len(name) > MAX_NAME_CHARS:
            errors.append(
                {"field": f"{where}.name", "message": f"at most {MAX_NAME_CHARS} characters"}
            )
        try:
            build_step(spec)
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                loc = ".".join(str(p) for p in err["loc"])
                message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
                errors.append({"field": f"{where}.{loc}" if loc else where, "message": message})
    return errors


def build_step(spec: Mapping[str, Any]) -> Step:
    """The step object for one definition; raises pydantic's ValidationError."""
    cls = _REGISTRY[spec["kind"]]
    options = {k: v for k, v in spec.items() if k not in RESERVED_KEYS}
    context = {"template_names": cls.template_names}
    return cls(cls.Config.model_validate(options, context=context))


def build_step_or_fail(spec: Mapping[str, Any]) -> Step:
    """Like :func:`build_step` for the engine: a bad stored step is a permanent failure."""
    kind = spec.get("kind") if isinstance(spec, Mapping) else None
    if kind not in _REGISTRY:
        raise StepFailed(f"unknown step kind {kind!r} (is its module loaded?)")
    try:
        return build_step(spec)
    except ValidationError as exc:
        # Without the input values: the error lands in step logs and job records, and
        # an option's value may be a secret (a webhook URL's credentials).
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)
        )
        raise StepFailed(f"invalid {kind} step: {problems}") from None

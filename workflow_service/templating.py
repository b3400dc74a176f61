"""Sandboxed text templates for subjects, bodies and task titles.

Jinja2's sandbox: a template reads only the values it is given and cannot call into
Python internals; a syntax error or a missing value is a :class:`TemplateError` the
step reports, never a crash.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class TemplateError(ValueError):
    pass


@lru_cache(maxsize=512)
def _compile(source: str):
    return _env.from_string(source)


def check(source: str) -> None:
    """Raise :class:`TemplateError` when ``source`` does not compile."""
    try:
        _compile(source)
    except JinjaTemplateError as exc:
        raise TemplateError(f"template error: {exc}") from None


def render(source: str, values: dict[str, Any]) -> str:
    if "{" not in source:
        return source
    try:
        return _compile(source).render(**values)
    except JinjaTemplateError as exc:
        raise TemplateError(f"template error in {source!r}: {exc}") from None

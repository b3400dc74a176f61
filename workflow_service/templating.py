"""Subjects, bodies and task titles are templates written by workflow authors; render them safely.

Jinja's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` refuses attribute access
to internals (``__class__``, ``__globals__``, ``func_globals``...) and calls to methods
that mutate lists, dicts and sets. On top of that this module:

* renders only plain JSON values (the context is round-tripped through JSON, so no
  model object, function or module is ever reachable from a template);
* has no loader, so ``{% include %}``, ``{% import %}`` and ``{% extends %}`` cannot
  read files;
* drops ``range``/``lipsum``/``cycler``/``joiner`` and bounds ``*`` and ``**`` so a
  template cannot allocate gigabytes or spin on a huge power;
* limits template size, loop nesting and output size;
* uses StrictUndefined, so a misspelt field is an error that names it instead of an
  empty string in someone's inbox.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_TEMPLATE_CHARS = 10_000
MAX_OUTPUT_CHARS = 100_000
MAX_LOOP_NESTING = 2
#: Largest string/list a ``*`` may build and largest exponent ``**`` may use.
MAX_PRODUCT_LEN = 10_000
MAX_EXPONENT = 100
MAX_POWER_BITS = 100_000
PADDING_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})


class TemplateError(ValueError):
    """Any template problem; steps report it instead of crashing."""


class TemplateInvalid(TemplateError):
    """A template that cannot be parsed or breaks a limit (reported at definition time)."""


class TemplateRenderError(TemplateError):
    """A template failed while rendering (unknown field, forbidden access, limit)."""


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent larger than {MAX_EXPONENT} is not allowed")
            # Nested powers stay under the exponent limit yet grow without bound.
            ints = isinstance(left, int) and isinstance(right, int)
            if ints and left.bit_length() * max(right, 0) > MAX_POWER_BITS:
                raise SecurityError("the result of ** is too large")
            return left**right
        # "*": bound the size of repeated strings and lists.
        for seq, times in ((left, right), (right, left)):
            sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
            if sized and len(seq) * times > MAX_PRODUCT_LEN:
                raise SecurityError(f"result longer than {MAX_PRODUCT_LEN} is not allowed")
        return left * right

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - Jinja's signature
        """Calls from templates; string padding and formatting may not build huge text."""
        if isinstance(getattr(__obj, "__self__", None), str):
            name = getattr(__obj, "__name__", "")
            if name in ("format", "format_map"):
                raise SecurityError("str.format is not available in templates; use {{ }}")
            if name in PADDING_METHODS and any(
                isinstance(a, int) and a > MAX_PRODUCT_LEN for a in (*args, *kwargs.values())
            ):
                raise SecurityError(f"padding beyond {MAX_PRODUCT_LEN} is not allowed")
        return super().call(__context, __obj, *args, **kwargs)


def _make_environment(*, autoescape: bool) -> _Environment:
    env = _Environment(undefined=StrictUndefined, autoescape=autoescape, loader=None)
    for name in ("range", "lipsum", "cycler", "joiner", "namespace"):
        env.globals.pop(name, None)
    # Filters whose numeric argument sets the output size (padding, indents, printf).
    for name in ("center", "indent", "wordwrap", "format"):
        env.filters.pop(name, None)
    return env


def _loop_depth(node: nodes.Node, depth: int = 0) -> int:
    deepest = depth
    for child in node.iter_child_nodes():
        child_depth = depth + 1 if isinstance(child, nodes.For) else depth
        deepest = max(deepest, _loop_depth(child, child_depth))
    return deepest


def _plain(value: Any) -> Any:
    """Only JSON values reach a template: no objects, callables or modules."""
    return json.loads(json.dumps(value, default=str))


class TemplateRenderer:
    """Renders author-written templates with nothing but the values it is given."""

    def __init__(self) -> None:
        self._text = _make_environment(autoescape=False)
        self._html = _make_environment(autoescape=True)
        self._accepted: set[str] = set()

    def check(self, source: str) -> None:
        """Raise :class:`TemplateInvalid` if ``source`` is not an acceptable template."""
        if isinstance(source, str) and source in self._accepted:
            return
        self._check(source)
        if len(self._accepted) < 4096:  # steps validate the same texts on every run
            self._accepted.add(source)

    def _check(self, source: str) -> None:
        if not isinstance(source, str):
            raise TemplateInvalid("a template must be a string")
        if len(source) > MAX_TEMPLATE_CHARS:
            raise TemplateInvalid(f"a template may be at most {MAX_TEMPLATE_CHARS} characters")
        try:
            tree = self._text.parse(source)
            # Compiling finds what parsing does not (blocks nested past what Python
            # compiles), so such a template is refused now, not at every run.
            self._text.compile(source)
        except JinjaTemplateError as exc:
            raise TemplateInvalid(f"template syntax error: {exc}") from None
        except (RecursionError, SyntaxError, MemoryError):
            raise TemplateInvalid("the template is nested too deeply") from None
        if tree.find(nodes.Extends) is not None or tree.find(nodes.Include) is not None:
            raise TemplateInvalid("templates may not include, import or extend other templates")
        if tree.find(nodes.Import) is not None or tree.find(nodes.FromImport) is not None:
            raise TemplateInvalid("templates may not include, import or extend other templates")
        if _loop_depth(tree) > MAX_LOOP_NESTING:
            raise TemplateInvalid(f"loops may be nested at most {MAX_LOOP_NESTING} deep")

    def render(self, source: str, context: dict[str, Any], *, html: bool = False) -> str:
        """Render ``source`` with ``context``; HTML output escapes every value."""
        if "{" not in source and not html:
            return source
        template = self._compile(source, html)
        try:
            out: list[str] = []
            size = 0
            for chunk in template.generate(**_plain(context)):
                size += len(chunk)
                if size > MAX_OUTPUT_CHARS:
                    raise TemplateRenderError(
                        f"rendered text is longer than {MAX_OUTPUT_CHARS} characters"
                    )
                out.append(chunk)
            return "".join(out)
        except TemplateRenderError:
            raise
        except SecurityError as exc:
            raise TemplateRenderError(f"template not allowed: {exc}") from None
        except JinjaTemplateError as exc:
            raise TemplateRenderError(f"template error: {exc}") from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise TemplateRenderError(f"template error: {type(exc).__name__}: {exc}") from None

    @lru_cache(maxsize=512)  # noqa: B019 - one module-level renderer lives for the process
    def _compile(self, source: str, html: bool):
        """Checked and compiled once per source: steps render the same text every run."""
        try:
            self.check(source)
        except TemplateInvalid as exc:
            raise TemplateRenderError(str(exc)) from None
        env = self._html if html else self._text
        try:
            return env.from_string(source)
        except JinjaTemplateError as exc:
            raise TemplateRenderError(f"template error: {exc}") from None


#: Module-level instance: environments are immutable and thread-safe once built.
renderer = TemplateRenderer()


def check(source: str) -> None:
    renderer.check(source)


def render(source: str, context: dict[str, Any]) -> str:
    return renderer.render(source, context)


def render_html(source: str, context: dict[str, Any]) -> str:
    return renderer.render(source, context, html=True)

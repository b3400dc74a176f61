"""Subjects, bodies and task titles are templates written by workflow authors; render them safely.

Jinja's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` refuses attribute access
to internals (``__class__``, ``__globals__``, ``func_globals``...) and calls to methods
that mutate lists, dicts and sets. On top of that this module:

* renders only plain JSON values (the context is round-tripped through JSON, so no
  model object, function or module is ever reachable from a template);
* has no loader, so ``{% include %}``, ``{% import %}`` and ``{% extends %}`` cannot
  read files;
* drops ``range``/``lipsum``/``cycler``/``joiner``/``namespace`` and ``urlize``;
* limits template size and loop nesting;
* gives every render one :class:`Budget`: at most :data:`MAX_RENDER_STEPS` steps of
  work and no text or value longer than :data:`MAX_OUTPUT_CHARS`. Every way a template
  can repeat work or grow a value pays into it, through Jinja's own extension points:
  loop iterations (recursive loops too: the generated code iterates through
  :func:`_iterate`), calls (:meth:`_Environment.call`; only listed string, list and
  dict methods, with growth checked before the call), every binary operator
  (``call_binop``: ``%`` formatting, ``*`` repetition and integer ``*``/``**`` are
  bounded before they compute), ``~`` joins, comparisons, list/dict literals and
  slices (:class:`_CodeGenerator` routes them through the budget), attribute and item
  access, every filter and test (``replace``, ``join``, ``batch``, ``center``,
  ``format``, ``indent``, ``wordwrap``... are checked before they build anything) and
  every ``{{ }}`` output (``finalize``);
* uses StrictUndefined, so a misspelt field is an error that names it instead of an
  empty string in someone's inbox;
* checks, when a workflow is saved (:meth:`TemplateRenderer.check_names`), what the
  sandbox would refuse at every render: top-level names beyond the values a render is
  given, attributes the sandbox refuses on the values a render can hold, and calls of
  methods off the lists below.

A render over budget, or one that ends in ``RecursionError`` or ``MemoryError``,
raises :class:`TemplateRenderError`; steps turn it into a permanent failure (no retry:
the same template fails the same way every time).
"""

from __future__ import annotations

import contextvars
import functools
import json
import re
import types
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any, cast

from jinja2 import StrictUndefined, meta, nodes
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.compiler import CodeGenerator, Frame, operators
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import _PassArg

MAX_TEMPLATE_CHARS = 10_000
#: Longest rendered text, and longest string, list or dict a template may build
#: (characters, or items counted through nested values).
MAX_OUTPUT_CHARS = 64 * 1024
#: Steps of work one render may do: a loop iteration, a call, an operator, a filter,
#: an output... each costs at least one, more for larger values.
MAX_RENDER_STEPS = 100_000
MAX_LOOP_NESTING = 2
#: Largest integer (in bits) ``*`` and ``**`` may build.
MAX_INT_BITS = 4096
#: Characters and nested items per step charged for the values an operation touches.
CHARS_PER_STEP = 64
ITEMS_PER_STEP = 16

#: Methods of values a template may call. Anything else (``format``, ``translate``,
#: ``encode``, ``expandtabs``, methods of types...) is refused.
STR_METHODS = frozenset(
    {
        *("capitalize", "casefold", "count", "endswith", "find", "index", "isalnum"),
        *("isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower"),
        *("isnumeric", "isprintable", "isspace", "istitle", "isupper", "lower", "lstrip"),
        *("partition", "removeprefix", "removesuffix", "rfind", "rindex", "rpartition"),
        *("rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase"),
        *("title", "upper"),
        # checked before the call: the output grows with an argument
        *("center", "ljust", "rjust", "zfill", "replace", "join"),
        # markupsafe.Markup's own
        *("striptags", "unescape", "escape"),
    }
)
SEQUENCE_METHODS = frozenset({"count", "index"})
DICT_METHODS = frozenset({"get", "items", "keys", "values"})
_DATA_TYPES = (str, bytes, bytearray, int, float, list, tuple, dict, set, frozenset)
#: Every method a template may call, whatever the value turns out to be.
CALLABLE_METHODS = STR_METHODS | SEQUENCE_METHODS | DICT_METHODS
#: One value of each kind a render holds (its values are JSON: strings, numbers,
#: lists and objects); the sandbox is asked about attributes of these.
_SAMPLE_VALUES: tuple[Any, ...] = ("", 0, 0.0, True, [], {})


class TemplateError(ValueError):
    """Any template problem; steps report it instead of crashing."""


class TemplateInvalid(TemplateError):
    """A template that cannot be parsed or breaks a limit (reported at definition time)."""


class TemplateRenderError(TemplateError):
    """A template failed while rendering (unknown field, forbidden access, limit)."""


class TemplateBudgetExceeded(TemplateRenderError):
    """The render did more work or built more text than one render may."""


# --------------------------------------------------------------------------- budget


def _measure(value: Any, limit: int) -> tuple[int, int]:
    """``(size, items)`` of ``value``: characters of strings plus nested items, counted
    through shared references (``[a, a]`` counts ``a`` twice), and the number of
    values visited. Stops once ``size`` passes ``limit``, so it costs at most that."""
    size = 0
    items = 0
    stack = [value]
    while stack and size <= limit:
        item = stack.pop()
        items += 1
        if isinstance(item, str | bytes | bytearray):
            size += len(item)
        elif isinstance(item, dict):
            size += 1 + len(item)
            if size <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            size += 1 + len(item)
            if size <= limit:
                stack.extend(item)
        elif isinstance(item, int):
            size += 1 + item.bit_length() // 64
        else:
            size += 1
    return size, items


class Budget:
    """What one render may still do. Once spent, every further step raises."""

    def __init__(self, steps: int = MAX_RENDER_STEPS, max_size: int = MAX_OUTPUT_CHARS) -> None:
        self.steps = steps
        self.max_size = max_size

    def charge(self, steps: int = 1) -> None:
        self.steps -= steps
        if self.steps < 0:
            raise TemplateBudgetExceeded(
                f"the template needs more than {MAX_RENDER_STEPS} steps of work"
            )

    def touch(self, value: Any) -> int:
        """Pay for reading ``value``; returns its size."""
        if isinstance(value, str):  # the common case, without a walk
            self.charge(1 + len(value) // CHARS_PER_STEP)
            return len(value)
        size, items = _measure(value, 4 * self.max_size)
        self.charge(1 + size // CHARS_PER_STEP + items // ITEMS_PER_STEP)
        return size

    def allow(self, size: int, what: str = "a value") -> None:
        """Refuse, before building it, something that would be ``size`` long."""
        if size > self.max_size:
            raise TemplateBudgetExceeded(f"{what} would be longer than {self.max_size} characters")

    def built(self, value: Any, what: str = "a value") -> Any:
        """Pay for a value the template built and refuse it if it is too long."""
        if isinstance(value, types.GeneratorType | Iterator):
            return value  # lazy: each item pays when something consumes it
        size = self.touch(value)
        self.allow(size, what)
        return value


_CURRENT: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "template_budget", default=None
)


def _budget() -> Budget:
    # Outside a render (Jinja folds constant expressions while compiling) each
    # operation gets a budget of its own, so the size limits still hold.
    return _CURRENT.get() or Budget()


def _iterate(iterable: Any) -> Iterator[Any]:
    """Every ``for`` loop iterates through this (see :class:`_CodeGenerator`)."""
    budget = _budget()
    for item in iterable:
        budget.charge()
        yield item


def _finalize(value: Any) -> Any:
    """Every ``{{ }}`` output: refuse a value too long to print before printing it."""
    return _budget().built(value, "an output")


# ---------------------------------------------------------------- growth checks

_PRINTF_SPEC = re.compile(r"%(?:\([^()]*\))?[-#0 +]*(\*|[1-9][0-9]*)?(?:\.(\*|[0-9]*))?")


def _printf_size(budget: Budget, template: str, args: Any) -> int:
    """An upper bound of ``template % args`` (widths and precisions included)."""
    if len(template) > budget.max_size:
        return len(template)
    numbers = args if isinstance(args, tuple | list) else (args,)
    star = max((abs(a) for a in numbers if isinstance(a, int)), default=0)
    specs = extra = 0
    for match in _PRINTF_SPEC.finditer(template):
        specs += 1
        for number in match.group(1, 2):
            if number == "*":
                extra += star
            elif number:
                extra += int(number) if len(number) < 8 else budget.max_size + 1
    return len(template) + extra + specs * budget.touch(args)


def _int_bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def _check_binop(budget: Budget, operator: str, left: Any, right: Any) -> None:
    if operator == "%" and isinstance(left, str):
        budget.allow(_printf_size(budget, left, right), "a % formatting result")
    elif operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                size, _ = _measure(seq, budget.max_size)
                budget.allow(size * max(times, 0), "a repeated string or list")
        ints = isinstance(left, int) and isinstance(right, int)
        if ints and _int_bits(left) + _int_bits(right) > MAX_INT_BITS:
            raise TemplateBudgetExceeded(f"a number larger than {MAX_INT_BITS} bits")
    elif operator == "**" and isinstance(left, int) and isinstance(right, int | float):
        bits = max(_int_bits(left), 1) * max(right, 0)
        if bits > MAX_INT_BITS:
            raise TemplateBudgetExceeded(f"a number larger than {MAX_INT_BITS} bits")


def _replace_size(text: Any, old: Any, new: Any, count: Any = -1) -> int:
    text, old, new = str(text), str(old), str(new)
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(len(new) - len(old), 0)


def _join_size(budget: Budget, items: list[Any], separator: Any) -> int:
    return budget.touch(items) + len(str(separator)) * len(items)


def _width(value: Any) -> int:
    return value if isinstance(value, int) else len(str(value))


def _method_size(budget: Budget, owner: Any, name: str, args: tuple, kwargs: dict) -> int:
    """Upper bound of what a growing string method returns (0: nothing to check)."""
    if name in ("center", "ljust", "rjust", "zfill") and args:
        return max(len(owner), _width(args[0]))
    if name == "replace" and len(args) >= 2:
        return _replace_size(owner, *args[:3])
    if name == "join" and args:
        return _join_size(budget, args[0], owner)
    return 0


def _filter_size(budget: Budget, name: str, value: Any, args: tuple, kwargs: dict) -> int:
    """Upper bound of what a filter whose output grows with an argument returns."""

    def arg(position: int, keyword: str, default: Any = None) -> Any:
        if len(args) > position:
            return args[position]
        return kwargs.get(keyword, default)

    if name == "center":
        return max(len(str(value)), _width(arg(0, "width", 80)))
    if name == "indent":
        text = str(value)
        return len(text) + (text.count("\n") + 1) * _width(arg(0, "width", 4))
    if name == "wordwrap":
        text = str(value)
        wrap = arg(2, "wrapstring") or "\n"
        return len(text) + (len(text) + 1) * len(str(wrap))
    if name == "format":
        return _printf_size(budget, str(value), kwargs or args)
    if name == "replace":
        return _replace_size(value, arg(0, "old", ""), arg(1, "new", ""), arg(2, "count", -1))
    if name == "join":
        return _join_size(budget, value, arg(0, "d", ""))
    if name == "batch" and arg(1, "fill_with") is not None:
        return budget.touch(value) + max(_width(arg(0, "linecount", 0)), 0)
    if name == "slice":
        return budget.touch(value) + max(_width(arg(0, "slices", 0)), 0)
    if name == "truncate":
        return len(str(value)) + len(str(arg(2, "end", "...")))
    return 0


def _materialize(value: Any) -> Any:
    """A lazy iterable as a list, so it can be measured before a filter consumes it."""
    if isinstance(value, str | list | tuple | dict) or not isinstance(value, Iterable):
        return value
    return list(value)


def _counted_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    leading = 0 if _PassArg.from_obj(func) is None else 1

    @functools.wraps(func)
    def counted(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        if len(args) > leading:
            value = args[leading]
            if name in ("join", "sum", "batch", "slice"):
                value = _materialize(value)
                args = (*args[:leading], value, *args[leading + 1 :])
            budget.touch(value)
            if name == "sum" and not isinstance(kwargs.get("start", 0), int | float):
                raise SecurityError("sum adds numbers only")
            budget.allow(
                _filter_size(budget, name, value, args[leading + 1 :], kwargs),
                f"the result of the {name} filter",
            )
        else:
            budget.charge()
        return budget.built(func(*args, **kwargs), f"the result of the {name} filter")

    return counted


def _counted_test(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def counted(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        for value in args:
            budget.touch(value)
        return func(*args, **kwargs)

    return counted


def _refuse_str_format(*args: Any, **kwargs: Any) -> str:
    raise SecurityError("str.format is not available in templates; use {{ }}")


def _method_allowed(obj: Any) -> bool:
    """Whether a call of ``obj`` is allowed: methods of values only if listed."""
    unbound = (
        types.MethodDescriptorType,
        types.WrapperDescriptorType,
        types.ClassMethodDescriptorType,
    )
    if isinstance(obj, unbound):
        return False  # dict.update(entity, ...) and friends
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if isinstance(owner, type):
        return issubclass(owner, str) and name == "escape"  # Markup.escape, not dict.fromkeys
    if isinstance(owner, str):
        return name in STR_METHODS
    if isinstance(owner, list | tuple):
        return name in SEQUENCE_METHODS
    if isinstance(owner, dict):
        return name in DICT_METHODS
    return not isinstance(owner, _DATA_TYPES)


# --------------------------------------------------------------- environment


class _CodeGenerator(CodeGenerator):
    """Routes what the sandbox does not intercept through the render's budget: loop
    iterations (recursive loops included), ``~`` joins, comparisons, literals and
    slices."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for loop in node.find_all(nodes.For):
            wrapped = nodes.Call(
                nodes.ImportedName(f"{__name__}._iterate", lineno=loop.lineno),
                [loop.iter],
                [],
                None,
                None,
                lineno=loop.lineno,
            )
            loop.iter = wrapped.set_environment(self.environment)
        super().visit_Template(node, frame)

    def _built(self, visit: Callable[[], None]) -> None:
        self.write("environment.budget_built(")
        visit()
        self.write(")")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.budget_join({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        self.write("(environment.budget_touch(")
        self.visit(node.expr, frame)
        self.write(")")
        for op in node.ops:
            self.visit(op, frame)
        self.write(")")

    def visit_Operand(self, node: nodes.Operand, frame: Frame) -> None:
        self.write(f" {operators[node.op]} environment.budget_touch(")
        self.visit(node.expr, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._built(lambda: super(_CodeGenerator, self).visit_List(node, frame))

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._built(lambda: super(_CodeGenerator, self).visit_Dict(node, frame))

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":
            return super().visit_Tuple(node, frame)
        self._built(lambda: super(_CodeGenerator, self).visit_Tuple(node, frame))

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if isinstance(node.arg, nodes.Slice):  # Jinja slices bypass environment.getitem
            return self._built(lambda: super(_CodeGenerator, self).visit_Getitem(node, frame))
        return super().visit_Getitem(node, frame)


class _Environment(ImmutableSandboxedEnvironment):
    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def call_binop(self, context, operator, left, right):
        budget = _budget()
        budget.touch(left)
        budget.touch(right)
        _check_binop(budget, operator, left, right)
        return budget.built(super().call_binop(context, operator, left, right))

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - Jinja's signature
        """Calls from templates: listed methods only, growth checked before the call."""
        budget = _budget()
        budget.charge()
        if not _method_allowed(__obj):
            name = getattr(__obj, "__name__", type(__obj).__name__)
            raise SecurityError(f"{name}() is not available in templates")
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            args = tuple(_materialize(a) for a in args)
            size = _method_size(budget, owner, getattr(__obj, "__name__", ""), args, kwargs)
            budget.allow(size, f"the result of {__obj.__name__}()")
        if isinstance(__obj, LoopContext) and args:
            # loop(children) in a recursive loop: its iterations pay as well.
            args = (_iterate(args[0]), *args[1:])
        result = super().call(__context, __obj, *args, **kwargs)
        return budget.built(result, "the result of a call")

    def getattr(self, obj, attribute):
        _budget().charge()
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        _budget().charge()
        return super().getitem(obj, argument)

    def wrap_str_format(self, value):
        if (
            isinstance(value, types.MethodType | types.BuiltinMethodType)
            and value.__name__ in ("format", "format_map")
            and isinstance(value.__self__, str)
        ):
            return _refuse_str_format
        return None

    # Called from the code _CodeGenerator writes.
    def budget_built(self, value: Any) -> Any:
        return _budget().built(value)

    def budget_touch(self, value: Any) -> Any:
        _budget().touch(value)
        return value

    def budget_join(self, join: Callable[[Any], str], parts: tuple) -> str:
        budget = _budget()
        size = 0
        for part in parts:
            size += budget.touch(part)
        budget.allow(size, "a ~ result")
        return budget.built(join(parts), "a ~ result")


def _make_environment(*, autoescape: bool) -> _Environment:
    env = _Environment(
        undefined=StrictUndefined, autoescape=autoescape, loader=None, finalize=_finalize
    )
    for name in ("range", "lipsum", "cycler", "joiner", "namespace"):
        env.globals.pop(name, None)
    env.filters.pop("urlize", None)  # its target/rel options repeat per link
    env.filters = {name: _counted_filter(name, f) for name, f in env.filters.items()}
    # jinja2 infers its tests' dict as dict[str, function], which mypy will not call.
    env.tests = {name: _counted_test(cast(Callable[..., Any], f)) for name, f in env.tests.items()}
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

    def check_names(self, source: str, names: Iterable[str]) -> None:
        """Like :meth:`check`, and raise :class:`TemplateInvalid` for what the sandbox
        would refuse at every render of ``source`` with values named ``names``: unknown
        top-level names, attributes it refuses (``__class__``, ``pop``...) and calls of
        methods not in :data:`CALLABLE_METHODS`."""
        self.check(source)
        if "{" not in source:
            return
        tree = self._text.parse(source)
        given = set(names)
        unknown = sorted(meta.find_undeclared_variables(tree) - given - set(self._text.globals))
        if unknown:
            raise TemplateInvalid(
                f"unknown name {', '.join(map(repr, unknown))}: a template here sees only "
                f"{', '.join(sorted(given))}"
            )
        for call in tree.find_all(nodes.Call):
            if isinstance(call.node, nodes.Getattr) and call.node.attr not in CALLABLE_METHODS:
                raise TemplateInvalid(f"{call.node.attr}() is not available in templates")
        for node in tree.find_all(nodes.Getattr):
            # The values a render is given are JSON objects; deeper values may be any.
            top = isinstance(node.node, nodes.Name) and node.node.name in given
            if self._refused_attribute(node.attr, ({},) if top else _SAMPLE_VALUES):
                raise TemplateInvalid(f"the attribute {node.attr!r} is not available in templates")

    def _refused_attribute(self, name: str, samples: tuple[Any, ...]) -> bool:
        """Whether the sandbox refuses ``.name`` on a value like one of ``samples``."""
        missing = object()
        for sample in samples:
            value = getattr(sample, name, missing)
            if value is not missing and not self._text.is_safe_attribute(sample, name, value):
                return True
        return False

    def render(self, source: str, context: dict[str, Any], *, html: bool = False) -> str:
        """Render ``source`` with ``context``; HTML output escapes every value."""
        if "{" not in source and not html:
            return source
        template = self._compile(source, html)
        token = _CURRENT.set(Budget())
        try:
            out: list[str] = []
            size = 0
            for chunk in template.generate(**_plain(context)):
                size += len(chunk)
                if size > MAX_OUTPUT_CHARS:
                    raise TemplateBudgetExceeded(
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
        except RecursionError:
            raise TemplateBudgetExceeded("the template recurses too deeply") from None
        except MemoryError:
            raise TemplateBudgetExceeded("the template needs too much memory") from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise TemplateRenderError(f"template error: {type(exc).__name__}: {exc}") from None
        finally:
            _CURRENT.reset(token)

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


def check_names(source: str, names: Iterable[str]) -> None:
    renderer.check_names(source, names)


def render(source: str, context: dict[str, Any]) -> str:
    return renderer.render(source, context)


def render_html(source: str, context: dict[str, Any]) -> str:
    return renderer.render(source, context, html=True)

"""The Jinja2 sandbox message templates run in, with bounds on the work one render may do.

Templates are written by marketers in the admin UI, so they are untrusted twice over: they
must not reach Python internals (the sandbox's attribute rules, made strict: an unsafe
attribute raises instead of rendering empty), and a slip such as a loop inside a loop
over a big range, or a string doubled in a loop, must not hang or exhaust a worker that
is sending to a hundred thousand people. Jinja's own sandbox limits range() and nothing
else, so the template's tree is rewritten before compilation:

- every `for` iterates through `environment.bounded_iter`, which counts steps;
- every `~` concatenation goes through `environment.bounded_concat`, which checks size;

and every call, filter and operator that can build a large value checks the size before
building it where it can and charges what it built to the render's budget (budget.py
holds the bounds, the checks and the budget of the render in progress).
"""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from jinja2 import ChainableUndefined, nodes, pass_context, pass_eval_context
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.filters import make_attrgetter
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, markup_join, str_join
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from shopkeeper.messaging import budget

_DIGITS = re.compile(r"\d+")


class LenientUndefined(ChainableUndefined):
    """A missing value: prints empty, is falsy, has only missing attributes, iterates as
    empty and calls as missing, so `{{ profile.first_name or "there" }}` and loops over
    an absent cart just work. Arithmetic and comparisons with it still fail (clearly)."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> LenientUndefined:  # type: ignore[override]
        return self


class _Formatter(SandboxedFormatter):
    """str.format with widths bounded and the whole result's size counted as it grows."""

    built = 0

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is not None and budget.size_of(value) > budget.MAX_TEXT:
            raise budget.too_big(budget.size_of(value))
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        for number in _DIGITS.findall(format_spec):
            budget.check_width(int(number))
        text = super().format_field(value, format_spec)
        self.built += len(text)
        if self.built > budget.MAX_TEXT:
            raise budget.too_big(self.built)
        return text


class _EscapeFormatter(_Formatter, SandboxedEscapeFormatter):
    pass


class _Rewriter(NodeTransformer):
    """Routes loops and `~` through the bounded helpers; refuses template inclusion."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        call = nodes.Call(nodes.EnvironmentAttribute("bounded_iter"), [node.iter], [], None, None)
        node.iter = call.set_lineno(node.iter.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        call = nodes.Call(
            nodes.EnvironmentAttribute("bounded_concat"), list(node.nodes), [], None, None
        )
        return call.set_lineno(node.lineno)

    def _refuse(self, node: nodes.Node) -> nodes.Node:
        raise TemplateSyntaxError(
            "message templates cannot include, extend or import other templates", node.lineno
        )

    visit_Include = visit_Extends = visit_Import = visit_FromImport = _refuse


def _sized_filter(function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that counts as a step and has its result charged. functools.wraps keeps
    the pass_context / pass_eval_context marks Jinja reads from the function."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        budget.current().step()
        return budget.checked(function(*args, **kwargs))

    return wrapper


class MessageSandbox(ImmutableSandboxedEnvironment):
    """One of the two environments: HTML parts autoescaped, the others not."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(
        self,
        *,
        html: bool,
        filters: Mapping[str, Callable[..., Any]] | None = None,
        functions: Mapping[str, Callable[..., Any]] | None = None,
    ) -> None:
        super().__init__(
            autoescape=html,
            undefined=LenientUndefined,
            # None prints empty: a product without a brand shows nothing, not "None".
            finalize=_finalize,
            # The optimizer would run filters on constants at compile time, outside
            # the bounds (and `check` compiles every template on save).
            optimized=False,
            extensions=["jinja2.ext.loopcontrols"],
        )
        self.globals["range"] = budget.bounded_range
        # lipsum(n) writes n paragraphs: nothing a message needs.
        self.globals.pop("lipsum", None)
        originals = {**self.filters, **(filters or {})}
        self.filters.update({name: _sized_filter(f) for name, f in originals.items()})
        self.filters.update(_guarded_filters(originals))
        self.globals.update(functions or {})

    def compile_source(self, source: str) -> Any:
        """Parse, rewrite and compile a template (raises TemplateSyntaxError)."""
        tree = self.parse(source)
        tree = _Rewriter().visit(tree)
        tree.set_environment(self)
        code = self.compile(tree, name="message", filename="<message>")
        return self.template_class.from_code(self, code, self.make_globals(None))

    def bounded_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        state = budget.current()
        for item in iterable:
            state.step()
            yield item

    @pass_eval_context
    def bounded_concat(self, eval_ctx: EvalContext, *parts: Any) -> str:
        bound = sum(budget.size_of(part) for part in parts)
        if bound > budget.MAX_TEXT:
            raise budget.too_big(bound)
        joined = markup_join(parts) if eval_ctx.autoescape else str_join(parts)
        return budget.checked(joined)  # type: ignore[no-any-return]

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(
            f"{attribute!r} of a {type(obj).__name__} value is not available in templates"
        )

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget.current().step()
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str) and isinstance(obj, types.BuiltinMethodType | types.MethodType):
            args = budget.check_str_method(owner, obj.__name__, args)
        return budget.checked(super().call(context, obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            budget.check_power(left, right)
        elif operator == "*":
            budget.check_product(left, right)
        elif operator == "+" and not isinstance(left, int | float):
            bound = budget.size_of(left) + budget.size_of(right)
            if bound > budget.MAX_TEXT:
                raise budget.too_big(bound)
        elif operator == "%" and isinstance(left, str):
            budget.check_printf(left, right)
        return budget.checked(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if not isinstance(value, types.MethodType | types.BuiltinMethodType):
            return None
        if value.__name__ not in ("format", "format_map"):
            return None
        text = value.__self__
        if not isinstance(text, str):
            return None
        is_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs = args[0]
                args = ()
            formatter: _Formatter
            if isinstance(text, Markup):
                formatter = _EscapeFormatter(self, escape=text.escape)
            else:
                formatter = _Formatter(self)
            return type(text)(formatter.vformat(text, args, kwargs))

        return functools.update_wrapper(wrapper, value)


@pass_context
def _finalize(context: Context, value: Any) -> Any:
    # Taking the context (unused) also stops Jinja from evaluating constant expressions
    # such as `{{ 1234.5|money }}` at compile time: they must run inside the render,
    # with its locale and its budget.
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        size = budget.size_of(value)
        if size > budget.MAX_TEXT:
            raise budget.too_big(size, "a printed value")
    return budget.checked(value)


def _guarded_filters(originals: Mapping[str, Callable[..., Any]]) -> dict[str, Any]:
    """Filters whose arguments can make them build far more than their input."""

    def center(value: Any, width: int = 80) -> Any:
        budget.check_width(width)
        return originals["center"](value, width)

    def indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> Any:
        text = str(s)
        step = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        budget.check_width(len(text) + (text.count("\n") + 1) * step)
        return originals["indent"](s, width, first, blank)

    def format_(value: Any, *args: Any, **kwargs: Any) -> Any:
        budget.check_printf(str(value), kwargs or args)
        return originals["format"](value, *args, **kwargs)

    @pass_eval_context
    def join(eval_ctx: EvalContext, value: Any, d: str = "", attribute: Any = None) -> Any:
        if attribute is not None:
            value = map(make_attrgetter(eval_ctx.environment, attribute), value)
        items = list(value)
        budget.check_join(items, d)
        return originals["join"](eval_ctx, items, d)

    @pass_eval_context
    def replace(eval_ctx: EvalContext, s: Any, old: Any, new: Any, count: Any = None) -> Any:
        budget.check_replace(str(s), old, new)
        return originals["replace"](eval_ctx, s, old, new, count)

    def wordwrap_bound(s: Any, wrapstring: Any) -> None:
        text = str(s)
        extra = len(wrapstring) if isinstance(wrapstring, str) else 1
        budget.check_width(len(text) + (len(text) + 1) * extra)

    original_wordwrap = originals["wordwrap"]

    @functools.wraps(original_wordwrap)
    def wordwrap(environment: Any, s: Any, *args: Any, **kwargs: Any) -> Any:
        wrapstring = kwargs.get("wrapstring", args[2] if len(args) > 2 else None)
        wordwrap_bound(s, wrapstring)
        return original_wordwrap(environment, s, *args, **kwargs)

    def batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
        if isinstance(linecount, int) and linecount > budget.MAX_ITEMS:
            raise budget.TooMuchWork(f"batch() makes lists of at most {budget.MAX_ITEMS:,} items")
        return originals["batch"](value, linecount, fill_with)

    @pass_eval_context
    def slice_(eval_ctx: EvalContext, value: Any, slices: int, fill_with: Any = None) -> Any:
        if isinstance(slices, int) and slices > budget.MAX_ITEMS:
            raise budget.TooMuchWork(f"slice() makes at most {budget.MAX_ITEMS:,} lists")
        return originals["slice"](eval_ctx, value, slices, fill_with)

    guarded: dict[str, Callable[..., Any]] = {
        "center": center,
        "indent": indent,
        "format": format_,
        "join": join,
        "replace": replace,
        "wordwrap": wordwrap,
        "batch": batch,
        "slice": slice_,
    }
    return {name: _sized_filter(function) for name, function in guarded.items()}

"""Message templates: the variant for a reader's locale, rendering in the sandbox, and the
check a template passes before it is saved. Pure: no database, no clock.

A template is a set of parts (email: subject, text, html; push: title, body, url; ...),
each a Jinja2 source. Parts whose name ends in "html" are autoescaped; the others are
plain text. Missing values print empty, so `{{ profile.first_name or "there" }}` reads
naturally; formatting filters (money, number, percent, date, datetime, time) use the
reader's locale, currency and time zone; `t({"en": ..., "nb": ...})` picks a phrase by
locale inside one template.

Whatever goes wrong while rendering comes out as a RenderError naming the part, the
line and what happened in words a marketer can act on; no other exception escapes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from jinja2 import Template, meta
from jinja2.exceptions import (
    SecurityError,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
)

from shopkeeper.messaging import budget, formatting, sandbox

# Characters one rendered part may have (an email's HTML included).
MAX_OUTPUT = 1_000_000
_TEMPLATE_FILE = "<message>"

_ENVIRONMENTS = {
    html: sandbox.MessageSandbox(
        html=html, filters=formatting.FILTERS, functions={"t": formatting.pick_text}
    )
    for html in (False, True)
}


class TemplateMissing(LookupError):
    """No variant of a template suits the reader (not even a default one)."""


class RenderError(Exception):
    """A part could not be rendered: `message` says why, `line` where (when known)."""

    def __init__(self, part: str, message: str, line: int | None = None) -> None:
        where = f"{part}, line {line}" if line is not None else part
        super().__init__(f"{where}: {message}")
        self.part = part
        self.message = message
        self.line = line


@dataclass(frozen=True, slots=True)
class Problem:
    """What `check` found wrong in one part."""

    part: str
    message: str
    line: int | None = None


def is_html(part: str) -> bool:
    return part.lower().endswith("html")


# -- variants -----------------------------------------------------------------------------


def pick_variant(
    variants: Mapping[str, Mapping[str, str]], locale: str | None, default_locale: str
) -> tuple[str, Mapping[str, str]]:
    """The variant for a reader, as (its key, its parts).

    Tried in order: the reader's tag and its shorter forms (nb-NO, nb), another region
    of the reader's language (de-AT reads de-DE), the same for the shop's default
    locale, then the default variant "". Tags compare case-insensitively with "_" or
    "-". Raises TemplateMissing when none of these exists."""
    by_tag: dict[str, str] = {}
    for key in sorted(variants):
        by_tag.setdefault(formatting.normalize_tag(key), key)
    chain = [*_candidates(locale, by_tag), *_candidates(default_locale, by_tag), ""]
    for tag in chain:
        found = by_tag.get(tag)
        if found is not None:
            return found, variants[found]
    raise TemplateMissing(
        f"no variant for {locale or 'an unknown locale'}, nor for {default_locale}, "
        "and no default variant"
    )


def _candidates(tag: str | None, by_tag: Mapping[str, str]) -> list[str]:
    chain = formatting.locale_chain(tag)
    if chain:
        language = chain[0].split("-")[0]
        chain.extend(other for other in by_tag if other.split("-")[0] == language)
    return chain


# -- rendering ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _compiled(source: str, html: bool) -> Template:
    template: Template = _ENVIRONMENTS[html].compile_source(source)
    return template


def render(
    parts: Mapping[str, str],
    context: Mapping[str, Any],
    *,
    locale: str,
    currency: str,
    timezone: str,
) -> dict[str, str]:
    """Every part rendered with `context`. Raises RenderError (and nothing else)."""
    state = budget.RenderState(locale_tag=locale, currency=currency, timezone=timezone)
    out: dict[str, str] = {}
    with budget.rendering(state):
        for part, source in parts.items():
            out[part] = _render_part(part, source, context)
    return out


def _render_part(part: str, source: object, context: Mapping[str, Any]) -> str:
    if not isinstance(source, str):
        raise RenderError(part, "the template must be text")
    try:
        template = _compiled(source, is_html(part))
    except TemplateSyntaxError as exc:
        raise RenderError(part, _syntax_message(exc), exc.lineno) from None
    except Exception as exc:
        raise RenderError(part, f"the template cannot be read: {exc}") from None
    chunks: list[str] = []
    size = 0
    try:
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise RenderError(
                    part, f"the rendered text is longer than {MAX_OUTPUT:,} characters"
                )
            chunks.append(chunk)
    except RenderError:
        raise
    except Exception as exc:
        raise RenderError(part, _runtime_message(exc), _line_of(exc.__traceback__)) from None
    return "".join(chunks)


def _line_of(traceback: TracebackType | None) -> int | None:
    """The template line of the innermost template frame: Jinja rewrites tracebacks so
    that template frames carry the template's own line numbers."""
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == _TEMPLATE_FILE:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def _syntax_message(exc: TemplateSyntaxError) -> str:
    return f"syntax error: {exc.message or 'the template cannot be read'}"


def _runtime_message(exc: BaseException) -> str:
    if isinstance(exc, budget.TooMuchWork):
        return str(exc)
    if isinstance(exc, SecurityError):
        return f"not allowed in templates: {exc}"
    if isinstance(exc, UndefinedError):
        return f"a value is missing: {exc}"
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, RecursionError):
        return "a macro or loop calls itself without end"
    if isinstance(exc, MemoryError):
        return "the template needs too much memory"
    if isinstance(exc, TemplateError):
        return str(exc.message or exc)
    if isinstance(exc, TypeError | ValueError | ArithmeticError | LookupError):
        return f"a value cannot be used that way: {exc}"
    return f"the template failed ({type(exc).__name__}: {exc})"


# -- what a template reads ------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _names(source: str, html: bool) -> frozenset[str] | None:
    """The context names one source reads; None when it cannot be parsed."""
    try:
        return frozenset(meta.find_undeclared_variables(_ENVIRONMENTS[html].parse(source)))
    except Exception:
        return None


def reads(parts: Mapping[str, object], name: str) -> bool:
    """Whether any part reads the context value `name`, so that it need not be
    computed when none does. True when a part cannot be parsed (rendering then fails
    with the part's own error, as it would have)."""
    for part, source in parts.items():
        if not isinstance(source, str):
            continue
        names = _names(source, is_html(part))
        if names is None or name in names:
            return True
    return False


# -- checking -----------------------------------------------------------------------------


def check(parts: Mapping[str, object]) -> list[Problem]:
    """Syntax problems of every part (compiled, not rendered), for validation on save."""
    problems: list[Problem] = []
    for part, source in parts.items():
        if not isinstance(source, str):
            problems.append(Problem(part, "the template must be text"))
            continue
        try:
            _compiled(source, is_html(part))
        except TemplateSyntaxError as exc:
            problems.append(Problem(part, _syntax_message(exc), exc.lineno))
        except Exception as exc:
            problems.append(Problem(part, f"the template cannot be read: {exc}"))
    return problems

"""What one render may do: the bounds, the budget of the render in progress, and the
size checks made before a value is built (so that a template cannot make one far larger
than its input: padding widths, joins, replacements, repetition, printf formats, powers).
Pure; sandbox.py applies these at every loop step, call, filter and operator.

`RenderState` holds the budget and the formatting settings of the render in progress in
a context variable, so concurrent renders in threads do not share it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2.exceptions import SecurityError

# Characters one value (a filter's result, a concatenation, a printed expression) may
# have, and characters a whole render may build in all (intermediate values included).
MAX_TEXT = 1_000_000
MAX_PRODUCED = 20_000_000
# Loop iterations, calls and filter applications per render: real templates use a few
# hundred (a cart of 200 lines with a few filters each stays far below).
MAX_STEPS = 100_000
# Items in one range() and in the lists batch/slice build.
MAX_ITEMS = 10_000
# Integers grow by multiplication and powers: a few thousand bits is any real amount.
MAX_INT_BITS = 4_096

# The text methods a template may call; the others (encode, translate, expandtabs...)
# either build without bound or have no use in a message.
# fmt: off
_STR_METHODS = frozenset({
    "capitalize", "casefold", "center", "count", "endswith", "find", "format",
    "format_map", "index", "isalnum", "isalpha", "isdecimal", "isdigit", "islower",
    "isnumeric", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip",
    "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust",
    "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip",
    "swapcase", "title", "upper", "zfill",
})
# fmt: on
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")


class TooMuchWork(Exception):
    """A template went past one of the bounds; the message says which, for a marketer."""


@dataclass
class RenderState:
    """Formatting settings and the remaining budget of the render in progress."""

    locale_tag: str = "en"
    currency: str = "USD"
    timezone: str = "UTC"
    steps: int = MAX_STEPS
    produced: int = MAX_PRODUCED

    def step(self, count: int = 1) -> None:
        self.steps -= count
        if self.steps < 0:
            raise TooMuchWork(
                f"the template does too much work (more than {MAX_STEPS:,} loop steps "
                "and calls); look for loops inside loops"
            )

    def charge(self, chars: int) -> None:
        self.produced -= chars
        if self.produced < 0:
            raise TooMuchWork(
                f"the template builds too much text (more than {MAX_PRODUCED:,} characters)"
            )


_STATE: ContextVar[RenderState] = ContextVar("shopkeeper_render_state")


def current() -> RenderState:
    """The render in progress; outside one (never in a real render), a fresh budget."""
    try:
        return _STATE.get()
    except LookupError:
        return RenderState()


@contextmanager
def rendering(state: RenderState) -> Iterator[RenderState]:
    token = _STATE.set(state)
    try:
        yield state
    finally:
        _STATE.reset(token)


def too_big(chars: int, what: str = "the text") -> TooMuchWork:
    return TooMuchWork(f"{what} would be {chars:,} characters long; at most {MAX_TEXT:,}")


def size_of(value: Any, limit: int = MAX_TEXT) -> int:
    """About how many characters `value` prints as, counting no further than past `limit`
    (every item counts at least one, so this ends however big or cyclic the value is)."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, Mapping):
            total += 2 * len(item) + 2
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item) + 2
            stack.extend(item)
        else:
            total += 8
    return total


def checked(value: Any) -> Any:
    """Charge a built value to the budget and refuse one over the size bound."""
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise too_big(len(value))
        current().charge(len(value))
    elif isinstance(value, list | tuple | dict):
        current().charge(len(value))
    return value


def check_width(width: Any) -> None:
    if isinstance(width, int) and width > MAX_TEXT:
        raise too_big(width)


def check_printf(fmt: str, args: Any) -> None:
    """`"%s ..." % args`: the result is at most the format plus, per conversion, its
    width and the biggest argument."""
    conversions = 0
    for match in _PRINTF.finditer(fmt):
        for number in match.group(1, 2):
            if number == "*":
                raise TooMuchWork("'*' widths are not supported in templates")
            if number is not None:
                check_width(int(number))
        conversions += 1
    bound = len(fmt) + conversions * size_of(args)
    if bound > MAX_TEXT:
        raise too_big(bound)


def check_join(items: list[Any], separator: Any) -> None:
    sep = len(separator) if isinstance(separator, str) else 0
    bound = sum(size_of(item) for item in items) + sep * max(len(items) - 1, 0)
    if bound > MAX_TEXT:
        raise too_big(bound)


def check_replace(text: str, old: Any, new: Any) -> None:
    if not isinstance(old, str) or not isinstance(new, str):
        return
    times = text.count(old) if old else len(text) + 1
    bound = len(text) + times * max(len(new) - len(old), 0)
    if bound > MAX_TEXT:
        raise too_big(bound)


def bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_ITEMS:
        raise TooMuchWork(f"range() is limited to {MAX_ITEMS:,} numbers, not {len(numbers):,}")
    return numbers


def check_power(left: Any, right: Any) -> None:
    both_int = isinstance(left, int) and isinstance(right, int)
    if both_int and right > 0 and abs(left) > 1 and left.bit_length() * right > MAX_INT_BITS:
        raise TooMuchWork("that power is too large a number")


def check_product(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TooMuchWork("that product is too large a number")
        return
    times, sequence = (left, right) if isinstance(left, int) else (right, left)
    if isinstance(times, int) and not isinstance(sequence, int | float):
        bound = size_of(sequence) * max(times, 0)
        if bound > MAX_TEXT:
            raise too_big(bound)


def check_str_method(text: str, name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    if name not in _STR_METHODS:
        raise SecurityError(f"text.{name}() is not available in templates")
    if name in ("center", "ljust", "rjust", "zfill") and args:
        check_width(args[0])
    elif name == "join" and args:
        items = list(args[0])
        check_join(items, text)
        return (items, *args[1:])
    elif name == "replace" and len(args) >= 2:
        check_replace(text, args[0], args[1])
    return args

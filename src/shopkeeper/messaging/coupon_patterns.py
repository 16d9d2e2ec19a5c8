"""Coupon code patterns such as "CART-{XXXXXX}": parsing, validation and generation.

A pattern is literal text (A-Z, 0-9, `-`, `_`) with placeholders: `{XXXX}` is replaced
by that many characters from an alphabet without the look-alikes 0/O, 1/I/L (people
read codes off a phone and type them into a checkout), `{9999}` by that many digits.
Codes must be hard to guess, so a pattern needs at least `MIN_RANDOM` random characters,
and a pool may not fill so much of its pattern's space that a random guess is likely
to hit a real code (`guess_odds`). Pure: no database, and the source of randomness is a
parameter (the `secrets` module by default).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# No 0, O, 1, I or L: each is easily read as another.
UNAMBIGUOUS = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
DIGITS = "0123456789"
MIN_RANDOM = 6
MAX_CODE_LENGTH = 100
# A pool may hold at most one code per this many possible codes of its pattern, so that
# a guessed code is wrong at least this many times out of one.
GUESS_ODDS = 10_000

# What any code may hold, imported ones included: printable ASCII without spaces (a code
# is typed into a checkout box, and SQLite's lower() only folds ASCII).
CODE_TEXT = re.compile(rf"[\x21-\x7e]{{1,{MAX_CODE_LENGTH}}}\Z")

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_LITERAL = re.compile(r"[A-Z0-9_-]*")

Choice = Callable[[str], str]


class PatternError(ValueError):
    """A pattern that cannot make good codes; the message says why and how to fix it."""


@dataclass(frozen=True, slots=True)
class Pattern:
    # The pattern as stored: upper-cased.
    text: str
    # Literal strings and random slots (the alphabet of one random character each).
    parts: tuple[tuple[str, bool], ...]
    random_length: int
    length: int
    # How many distinct codes the pattern can make.
    space: int

    def generate(self, choice: Choice = secrets.choice) -> str:
        out: list[str] = []
        for value, is_random in self.parts:
            out.append(choice(value) if is_random else value)
        return "".join(out)

    def capacity(self) -> int:
        """The most codes a pool of this pattern may hold (see GUESS_ODDS)."""
        return self.space // GUESS_ODDS


def parse_pattern(text: str) -> Pattern:
    """Parse and validate a pattern; raises PatternError with a readable message."""
    if not isinstance(text, str) or not text.strip():
        raise PatternError('A pattern is text such as "CART-{XXXXXX}".')
    source = text.strip().upper()
    parts: list[tuple[str, bool]] = []
    random_length = 0
    space = 1
    position = 0
    for match in _PLACEHOLDER.finditer(source):
        _literal(parts, source[position : match.start()], text)
        inner = match.group(1)
        if not inner or (set(inner) != {"X"} and set(inner) != {"9"}):
            raise PatternError(
                f'"{{{match.group(1)}}}" in the pattern {text!r} is not a placeholder: '
                "write {XXXXXX} for random letters and digits, or {999999} for random digits."
            )
        alphabet = UNAMBIGUOUS if inner[0] == "X" else DIGITS
        for _ in inner:
            parts.append((alphabet, True))
        random_length += len(inner)
        space *= len(alphabet) ** len(inner)
        position = match.end()
    _literal(parts, source[position:], text)
    if random_length < MIN_RANDOM:
        raise PatternError(
            f"The pattern {text!r} has {random_length} random characters; it needs at least "
            f"{MIN_RANDOM} so that codes cannot be guessed, e.g. CART-{{XXXXXX}}."
        )
    length = sum(len(value) if not is_random else 1 for value, is_random in parts)
    if length > MAX_CODE_LENGTH:
        raise PatternError(
            f"The pattern {text!r} makes codes of {length} characters; the most is "
            f"{MAX_CODE_LENGTH}."
        )
    return Pattern(source, tuple(parts), random_length, length, space)


def _literal(parts: list[tuple[str, bool]], literal: str, text: str) -> None:
    if not literal:
        return
    if "{" in literal or "}" in literal:
        raise PatternError(
            f"The pattern {text!r} has an unmatched brace: placeholders are written "
            "{XXXXXX} or {999999}."
        )
    if not _LITERAL.fullmatch(literal):
        bad = next(ch for ch in literal if not _LITERAL.fullmatch(ch))
        raise PatternError(
            f"The pattern {text!r} contains {bad!r}: the text around the placeholders may "
            "hold only letters A-Z, digits, '-' and '_'."
        )
    parts.append((literal, False))


def stored_form(code: str) -> str:
    """How an imported code is stored: as given when it is in one case (or has no
    letters), upper-cased when it mixes cases. Checkouts take codes in any case; keeping
    every stored code in one case lets `spellings` find it through the unique index."""
    return code if code in (code.upper(), code.lower()) else code.upper()


def spellings(codes: Iterable[str]) -> list[str]:
    """The spellings of typed codes under which a stored code (one case, see
    `stored_form`) is found whatever the case it is typed in: upper and lower."""
    return list({spelling for code in codes for spelling in (code.upper(), code.lower())})

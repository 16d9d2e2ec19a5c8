"""Coupon code patterns: what is accepted, what is refused and why, what codes look like."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from shopkeeper.messaging.coupon_patterns import (
    CODE_TEXT,
    DIGITS,
    GUESS_ODDS,
    MIN_RANDOM,
    UNAMBIGUOUS,
    PatternError,
    parse_pattern,
    spellings,
    stored_form,
)


def test_alphabet_has_no_look_alikes() -> None:
    assert not set("0O1IL") & set(UNAMBIGUOUS)
    assert len(set(UNAMBIGUOUS)) == len(UNAMBIGUOUS) == 31
    assert DIGITS == "0123456789"


def test_letters_placeholder_draws_from_the_unambiguous_alphabet() -> None:
    pattern = parse_pattern("CART-{XXXXXX}")
    assert pattern.text == "CART-{XXXXXX}"
    assert pattern.random_length == 6
    assert pattern.length == 11
    assert pattern.space == 31**6
    shape = re.compile(rf"CART-[{UNAMBIGUOUS}]{{6}}\Z")
    codes = {pattern.generate() for _ in range(2000)}
    assert all(shape.match(code) for code in codes)
    # 2000 draws from 887 million: a repeat would mean the generator is not random.
    assert len(codes) == 2000
    # Every character of the alphabet turns up, and nothing else.
    assert {ch for code in codes for ch in code[5:]} == set(UNAMBIGUOUS)


def test_digit_and_letter_placeholders_mix_with_literal_text() -> None:
    pattern = parse_pattern("vip_{999}-{xxx}-2026")
    assert pattern.text == "VIP_{999}-{XXX}-2026"
    assert pattern.random_length == 6
    assert pattern.space == 10**3 * 31**3
    assert re.fullmatch(rf"VIP_\d{{3}}-[{UNAMBIGUOUS}]{{3}}-2026", pattern.generate())


def test_generation_uses_the_given_source_of_randomness() -> None:
    picks: Iterator[int] = iter(range(100))

    def choice(alphabet: str) -> str:
        return alphabet[next(picks) % len(alphabet)]

    assert parse_pattern("A{999}{XXX}").generate(choice) == "A012" + UNAMBIGUOUS[3:6]


def test_placeholder_only_pattern() -> None:
    assert parse_pattern("{XXXXXXXX}").length == 8


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "CART-{XXXXXX}"),
        ("   ", "CART-{XXXXXX}"),
        ("CART-{XXXXX}", "at least 6"),
        ("CART-{XXX}{99}", "has 5 random characters"),
        ("CART", "has 0 random characters"),
        ("CART-{XX9XXX}", "not a placeholder"),
        ("CART-{}{XXXXXX}", "not a placeholder"),
        ("CART-{YYYYYY}", "not a placeholder"),
        ("CART-{XXXXXX", "unmatched brace"),
        ("CART-XXXXXX}", "unmatched brace"),
        ("CART {XXXXXX}", "contains ' '"),
        ("CÄRT-{XXXXXX}", "contains 'Ä'"),
        ("CART.{XXXXXX}", "contains '.'"),
        ("A" * 95 + "{XXXXXX}", "codes of 101 characters"),
    ],
)
def test_bad_patterns_are_refused_with_a_reason(text: str, says: str) -> None:
    with pytest.raises(PatternError, match=re.escape(says)):
        parse_pattern(text)


def test_minimum_is_six_random_characters() -> None:
    assert MIN_RANDOM == 6
    assert parse_pattern("{999999}").random_length == 6


def test_capacity_keeps_guesses_unlikely() -> None:
    assert parse_pattern("{999999}").capacity() == 10**6 // GUESS_ODDS == 100
    assert parse_pattern("CART-{XXXXXX}").capacity() == 31**6 // GUESS_ODDS


@pytest.mark.parametrize(
    ("code", "ok"),
    [
        ("CART-ABC234", True),
        ("summer_Sale!2026", True),
        ("x" * 100, True),
        ("x" * 101, False),
        ("", False),
        ("two words", False),
        ("tab\there", False),
        ("nul\x00", False),
        ("café", False),
    ],
)
def test_any_code_is_printable_ascii_without_spaces(code: str, ok: bool) -> None:
    assert bool(CODE_TEXT.match(code)) is ok
    # Every generated code is a valid code.
    assert CODE_TEXT.match(parse_pattern("AB_-{XXXX}{99}").generate())


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("SUMMER-10", "SUMMER-10"),
        ("welcome10", "welcome10"),
        ("Summer-10", "SUMMER-10"),
        ("1234-56", "1234-56"),
    ],
)
def test_codes_are_stored_in_one_case_and_found_in_any(given: str, stored: str) -> None:
    assert stored_form(given) == stored
    for typed in (given, given.upper(), given.lower(), given.swapcase()):
        assert stored in spellings([typed])

"""Message templates: locale variants, Babel formatting per locale and time zone, the
sandbox (no internals, bounded work) and errors a marketer can act on."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopkeeper.messaging.templates import (
    MAX_OUTPUT,
    Problem,
    RenderError,
    TemplateMissing,
    check,
    pick_variant,
    render,
)

NBSP = "\xa0"
# 2026-11-23T23:30:00Z: already the 24th in Oslo, still the 23rd in New York.
LATE_EVENING_MS = int(datetime(2026, 11, 23, 23, 30, tzinfo=UTC).timestamp() * 1000)


def one(
    source: str,
    context: dict[str, Any] | None = None,
    *,
    part: str = "text",
    locale: str = "en-US",
    currency: str = "USD",
    timezone: str = "UTC",
) -> str:
    rendered = render(
        {part: source}, context or {}, locale=locale, currency=currency, timezone=timezone
    )
    return rendered[part]


def failure(source: str, context: dict[str, Any] | None = None, **kwargs: Any) -> RenderError:
    with pytest.raises(RenderError) as caught:
        one(source, context, **kwargs)
    return caught.value


# -- variants -----------------------------------------------------------------------------

VARIANTS = {
    "": {"subject": "default"},
    "nb": {"subject": "bokmål"},
    "de-DE": {"subject": "Deutsch"},
    "en": {"subject": "English"},
    "pt_BR": {"subject": "Brasil"},
}


@pytest.mark.parametrize(
    ("locale", "default", "expected"),
    [
        ("nb-NO", "en", "nb"),  # region dropped
        ("NB_no", "en", "nb"),  # any case, underscore
        ("no", "en", "nb"),  # "no" and "nb" read each other
        ("de-DE", "en", "de-DE"),  # exact
        ("de-AT", "en", "de-DE"),  # another region of the same language
        ("de", "en", "de-DE"),
        ("pt-br", "en", "pt_BR"),  # the stored key comes back as stored
        ("fr-FR", "en", "en"),  # the shop's default
        ("fr-FR", "en-GB", "en"),  # the shop's default's language
        ("fr-FR", "sv", ""),  # the default variant
        (None, "sv", ""),
        ("", "de-CH", "de-DE"),
    ],
)
def test_variant_fallback_chain(locale: str | None, default: str, expected: str) -> None:
    key, parts = pick_variant(VARIANTS, locale, default)
    assert key == expected
    assert parts == VARIANTS[expected]


def test_no_variant_fits() -> None:
    with pytest.raises(TemplateMissing):
        pick_variant({"de": {"subject": "x"}}, "fr-FR", "en")
    with pytest.raises(TemplateMissing):
        pick_variant({}, "en", "en")


def test_region_variant_beats_shop_default_only_for_that_language() -> None:
    variants = {"nb-NO": {"body": "norsk"}, "en": {"body": "english"}}
    assert pick_variant(variants, "nb", "en")[0] == "nb-NO"
    assert pick_variant(variants, "sv-SE", "en")[0] == "en"


# -- missing values -------------------------------------------------------------------------


def test_missing_values_render_empty_and_fall_back() -> None:
    assert one('Hi {{ profile.first_name or "there" }}!', {"profile": {}}) == "Hi there!"
    assert one('Hi {{ profile.first_name or "there" }}!') == "Hi there!"
    assert one("[{{ nothing.at.all }}][{{ nothing() }}][{{ nothing.x(1).y }}]") == "[][][]"
    assert one("{% for item in cart %}{{ item }}{% else %}empty{% endfor %}") == "empty"
    assert one("{{ cart|length }} {{ brand }}", {"brand": None}) == "0 "
    assert one("{% if coupon %}code {{ coupon.code }}{% endif %}.", {"coupon": None}) == "."


def test_arithmetic_on_a_missing_value_is_a_clear_error() -> None:
    error = failure("{{ cart_total + 1 }}")
    assert error.part == "text"
    assert "cart_total" in error.message
    assert "undefined" in error.message


# -- formatting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "currency", "expected"),
    [
        ("nb-NO", "NOK", f"1{NBSP}234,50{NBSP}kr"),
        ("nb_no", "NOK", f"1{NBSP}234,50{NBSP}kr"),
        ("de-DE", "EUR", f"1.234,50{NBSP}€"),
        ("en-US", "USD", "$1,234.50"),
        ("en-US", "EUR", "€1,234.50"),
        ("xx-YY", "USD", "$1,234.50"),  # unknown locale: English
    ],
)
def test_money_per_locale(locale: str, currency: str, expected: str) -> None:
    assert one("{{ 1234.5|money }}", locale=locale, currency=currency) == expected
    assert one("{{ '1234.50'|money }}", locale=locale, currency=currency) == expected


def test_money_with_its_own_currency_and_odd_amounts() -> None:
    assert one("{{ 10|money('EUR') }}", locale="de-DE", currency="NOK") == f"10,00{NBSP}€"
    assert one("{{ 10|money(c) }}", {"c": "nok"}, locale="nb-NO") == f"10,00{NBSP}kr"
    odd = "[{{ none|money }}][{{ 'cheap'|money }}][{{ true|money }}][{{ missing|money }}]"
    assert one(odd) == "[][][][]"


@pytest.mark.parametrize(
    ("locale", "number", "digits", "percent"),
    [
        ("de-DE", "1.234,567", "1.234,57", f"15,5{NBSP}%"),
        ("nb-NO", f"1{NBSP}234,567", f"1{NBSP}234,57", f"15,5{NBSP}%"),
        ("en-US", "1,234.567", "1,234.57", "15.5%"),
    ],
)
def test_numbers_and_percentages(locale: str, number: str, digits: str, percent: str) -> None:
    source = "{{ 1234.567|number }}|{{ '1234.567'|number(2) }}|{{ 0.155|percent(1) }}"
    assert one(source, locale=locale) == f"{number}|{digits}|{percent}"
    assert one("{{ 0.25|percent }}", locale="en-US") == "25%"


@pytest.mark.parametrize(
    ("timezone", "day", "clock"),
    [
        ("Europe/Oslo", "24. nov. 2026", "00:30"),
        ("America/New_York", "23. nov. 2026", "18:30"),
        ("UTC", "23. nov. 2026", "23:30"),
        ("Not/AZone", "23. nov. 2026", "23:30"),  # unknown zone: UTC
    ],
)
def test_dates_in_the_readers_time_zone(timezone: str, day: str, clock: str) -> None:
    for value in (LATE_EVENING_MS, "2026-11-23T23:30:00.000Z", datetime(2026, 11, 23, 23, 30)):
        context = {"at": value}
        assert one("{{ at|date }}", context, locale="nb-NO", timezone=timezone) == day
        assert one("{{ at|time }}", context, locale="nb-NO", timezone=timezone) == clock
        shown = one("{{ at|datetime('short') }}", context, locale="nb-NO", timezone=timezone)
        assert clock in shown


def test_date_formats_per_locale() -> None:
    context = {"at": "2026-12-24", "d": date(2026, 12, 24)}
    assert one("{{ at|date('long') }}", context, locale="de-DE") == "24. Dezember 2026"
    assert one("{{ d|date('long') }}", context, locale="en-US") == "December 24, 2026"
    assert one("{{ at|date('d. MMM') }}", context, locale="nb-NO") == "24. des."
    # A bare date is a day, not a moment: no time zone moves it.
    assert one("{{ at|date }}", context, locale="en-US", timezone="Pacific/Kiritimati") == (
        "Dec 24, 2026"
    )
    assert one("[{{ 'soon'|date }}][{{ none|datetime }}][{{ at|time }}]", context) == "[][][]"


def test_t_picks_a_phrase_by_locale() -> None:
    source = "{{ t({'en': 'Hello', 'nb': 'Hei', '': 'Hi'}) }}"
    assert one(source, locale="nb-NO") == "Hei"
    assert one(source, locale="en-GB") == "Hello"
    assert one(source, locale="fi") == "Hi"
    assert one("{{ t({'de': 'Hallo'}, 'Hi') }}", locale="fi") == "Hi"


# -- escaping ------------------------------------------------------------------------------


def test_html_parts_escape_values_and_text_parts_do_not() -> None:
    context = {"profile": {"traits": {"nickname": "<script>alert(1)</script>"}}}
    parts = {
        "subject": "Hi {{ profile.traits.nickname }}",
        "text": "Hi {{ profile.traits.nickname }}",
        "html": "<p>Hi {{ profile.traits.nickname }}</p>",
        "body_html": "{{ profile.traits.nickname }}",
    }
    out = render(parts, context, locale="en", currency="USD", timezone="UTC")
    assert out["subject"] == "Hi <script>alert(1)</script>"
    assert out["text"] == "Hi <script>alert(1)</script>"
    assert out["html"] == "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;</p>"
    assert out["body_html"] == "&lt;script&gt;alert(1)&lt;/script&gt;"


def test_concatenation_in_html_escapes_like_output() -> None:
    out = one("{{ '<b>' ~ name }}", {"name": "&"}, part="html")
    assert out == "&lt;b&gt;&amp;"


# -- the sandbox ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ link.__globals__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ '{0.__class__}'.format('') }}",
        "{{ ''['__class__'] }}",
        "{{ 'x'.translate({}) }}",
        "{{ items.append(1) }}",
        "{{ data.clear() }}",
    ],
)
def test_sandbox_refuses_internals_and_mutation(source: str) -> None:
    error = failure(source, {"link": lambda: "", "items": [1], "data": {"a": 1}})
    assert "not" in error.message
    assert error.line == 1


def test_sandbox_leaves_the_context_unchanged() -> None:
    context = {"items": [1, 2], "data": {"a": 1}}
    for source in ("{{ items.append(3) }}", "{{ data.update(b=2) }}", "{{ items.pop() }}"):
        with pytest.raises(RenderError):
            one(source, context)
    assert context == {"items": [1, 2], "data": {"a": 1}}


def test_templates_cannot_include_others() -> None:
    error = failure("a\n{% include 'secrets.txt' %}")
    assert error.line == 2
    assert "include" in error.message


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("{% for i in range(1000000) %}{% endfor %}", "range()"),
        (
            "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
            "too much work",
        ),
        (
            "{% set n = namespace(s='ab') %}{% for i in range(64) %}"
            "{% set n.s = n.s ~ n.s %}{% endfor %}",
            "characters",
        ),
        (
            "{% set n = namespace(s='ab') %}{% for i in range(64) %}"
            "{% set n.s = n.s + n.s %}{% endfor %}",
            "characters",
        ),
        (
            "{% set n = namespace(v=3) %}{% for i in range(64) %}"
            "{% set n.v = n.v * n.v %}{% endfor %}",
            "too large",
        ),
        ("{{ 9 ** 999999 }}", "too large"),
        ("{{ 'x' * 100000000 }}", "characters"),
        ("{{ ['x' * 900000] * 1000 }}", "characters"),
        ("{{ 'x'|center(1000000000) }}", "characters"),
        ("{{ 'x'.ljust(1000000000) }}", "characters"),
        ("{{ '%1000000000d' % 1 }}", "characters"),
        ("{{ '%1000000000d'|format(1) }}", "characters"),
        ("{{ '{:>1000000000}'.format(1) }}", "characters"),
        ("{{ ('{0}' * 300000).format('x' * 1000) }}", "characters"),
        ("{{ (['x' * 100000] * 9)|join('y' * 100000) }}", "characters"),
        ("{{ ('a' * 100000)|replace('a', 'bbbbbbbbbbbbbbbbbbbb') }}", "characters"),
        ("{{ [1]|batch(100000000, 'x')|list }}", "batch()"),
        (
            "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
            "{{ f(40) }}",
            "too much work",
        ),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "without end"),
        ("{% for i in range(10000) %}{{ 'x' * 200 }}{% endfor %}", f"{MAX_OUTPUT:,}"),
    ],
)
def test_runaway_templates_stop_with_a_reason(source: str, words: str) -> None:
    error = failure(source)
    assert words in error.message


def test_bounds_leave_real_templates_alone() -> None:
    cart = [{"name": f"Item {i}", "price": i + 0.5, "quantity": 2} for i in range(200)]
    source = (
        "{% for item in cart %}{{ loop.index }}. {{ item.name|upper }} x{{ item.quantity }}"
        " {{ (item.price * item.quantity)|money }}{% if not loop.last %}\n{% endif %}"
        "{% endfor %}"
    )
    out = one(source, {"cart": cart})
    assert out.count("\n") == 199
    assert out.endswith("200. ITEM 199 x2 $399.00")
    assert one("{{ range(3)|join(', ') }}; {{ 'a-b'.split('-')|join('+') }}") == "0, 1, 2; a+b"
    assert one(
        "{% for i in range(9) %}{% if i > 2 %}{% break %}{% endif %}{{ i }}{% endfor %}"
    ) == ("012")


# -- errors --------------------------------------------------------------------------------


def test_syntax_errors_name_part_and_line() -> None:
    with pytest.raises(RenderError) as caught:
        render(
            {"subject": "fine", "html": "<p>\n{% for x in cart %}\n{{ x }\n{% endfor %}"},
            {},
            locale="en",
            currency="USD",
            timezone="UTC",
        )
    assert caught.value.part == "html"
    assert caught.value.line == 3
    assert caught.value.message.startswith("syntax error")
    assert "html, line 3" in str(caught.value)


def test_runtime_errors_name_the_line() -> None:
    error = failure("one\ntwo\n{{ total / count }}", {"total": 10, "count": 0})
    assert (error.message, error.line) == ("division by zero", 3)
    error = failure(
        "{% for x in xs %}\n{{ x.price * 'abc' }}{% endfor %}", {"xs": [{"price": "2"}]}
    )
    assert error.line == 2
    assert error.message.startswith("a value cannot be used that way")


def test_a_part_must_be_text() -> None:
    with pytest.raises(RenderError) as caught:
        render({"body": 12}, {}, locale="en", currency="USD", timezone="UTC")  # type: ignore[dict-item]
    assert caught.value.part == "body"


def test_check_reports_every_broken_part() -> None:
    problems = check(
        {
            "subject": "Hi {{ name }",
            "text": "fine {{ name }}",
            "html": "<p>\n\n{% endif %}",
            "body": None,
            "url": "{% include 'x' %}",
        }
    )
    assert [(p.part, p.line) for p in problems] == [
        ("subject", 1),
        ("html", 3),
        ("body", None),
        ("url", 1),
    ]
    assert all(isinstance(p, Problem) and p.message for p in problems)
    assert check({"text": "{{ 1/0 }}"}) == []  # runtime problems show when rendering


_PIECES = st.sampled_from(
    [
        "{{", "}}", "{%", "%}", "for", "in", "endfor", "if", "endif", "x", "x.y", "()", "(",
        ")", "|", "money", "date", "upper", "join", "~", "+", "*", "/", "0", "1", "'a'", "[",
        "]", ",", "none", "range(3)", "loop", "__class__", ".", " ", "\n", "<b>", "cart",
        "set", "=", "-", "%", "**", "macro", "endmacro", "profile", "else", "not",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=30), st.sampled_from(["text", "html"]))
def test_nothing_but_render_errors_escape(pieces: list[str], part: str) -> None:
    context = {"x": {"y": [1, "2", None]}, "cart": [{"price": "3.5"}], "profile": {}}
    try:
        out: str | RenderError = one("".join(pieces), context, part=part)
    except RenderError as error:
        out = error
    if isinstance(out, RenderError):
        assert out.part == part
        assert out.message
    else:
        assert isinstance(out, str)


def test_concurrent_renders_keep_their_own_locale() -> None:
    from concurrent.futures import ThreadPoolExecutor

    def job(index: int) -> tuple[str, str]:
        locale, expected = (
            ("nb-NO", f"1{NBSP}234,50{NBSP}kr") if index % 2 else ("en-US", "NOK1,234.50")
        )
        source = "{% for i in range(200) %}{% endfor %}{{ 1234.5|money }}"
        return one(source, locale=locale, currency="NOK"), expected

    with ThreadPoolExecutor(max_workers=8) as pool:
        for got, expected in pool.map(job, range(64)):
            assert got == expected


def test_absurd_amounts_print_nothing() -> None:
    source = "[{{ '1e999999'|money }}][{{ '1e999999'|number }}][{{ 1e300|percent }}]"
    assert one(source) == "[][][]"
    assert one("{{ '-12.5'|money }}") == "-$12.50"


def test_everyday_filters_still_work_inside_the_bounds() -> None:
    context = {"cart": [{"name": "Sofa", "price": 2}, {"name": "Lamp & co", "price": 3.5}]}
    cases = {
        "{{ cart|map(attribute='name')|join(', ') }}": "Sofa, Lamp & co",
        "{{ cart|join(' / ', attribute='name') }}": "Sofa / Lamp & co",
        "{{ cart|sum(attribute='price') }}": "5.5",
        "{{ '%s has %d'|format('cart', cart|length) }}": "cart has 2",
        "{{ 'Hi %s' % 'Kari' }}": "Hi Kari",
        "{{ '{} and {}'.format(1, 2) }}": "1 and 2",
        "{{ 'x'|center(5) }}|{{ 'ab'.rjust(4, '.') }}": "  x  |..ab",
        "{{ 'a b c'|replace(' ', '-') }}|{{ 'a\nb'|indent(2, true) }}": "a-b-c|  a\n  b",
        "{{ cart|tojson }}": (
            '[{"name": "Sofa", "price": 2}, {"name": "Lamp \\u0026 co", "price": 3.5}]'
        ),
        "{{ [1, 2, 3, 4]|batch(3)|list }}|{{ [1, 2, 3]|slice(2)|list }}": (
            "[[1, 2, 3], [4]]|[[1, 2], [3]]"
        ),
        "{{ ('ab' * 3) ~ '!' }} {{ [0] * 3 }} {{ 2 ** 10 }} {{ 7 % 3 }}": (
            "ababab! [0, 0, 0] 1024 1"
        ),
        "{{ 'long words here'|wordwrap(5) }}": "long\nwords\nhere",
    }
    for source, expected in cases.items():
        assert one(source, context) == expected, source

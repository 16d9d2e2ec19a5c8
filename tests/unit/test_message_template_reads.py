"""templates.reads: which context values a template reads, so that delivery computes
recommendations only for templates that show them."""

from __future__ import annotations

import pytest

from shopkeeper.messaging.templates import reads


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ({"subject": "Hi {{ profile.first_name }}", "text": "Hello"}, False),
        ({"subject": "Hi", "html": "{% for p in recommendations %}{{ p.name }}{% endfor %}"}, True),
        ({"text": "{{ recommendations[0].name if recommendations else '' }}"}, True),
        # Read inside a macro, or passed to one.
        ({"text": "{% macro m() %}{{ recommendations|length }}{% endmacro %}{{ m() }}"}, True),
        ({"text": "{% macro m(x) %}{{ x }}{% endmacro %}{{ m(recommendations) }}"}, True),
        # A name the template sets itself is not the context's.
        ({"text": "{% set recommendations = [] %}{{ recommendations }}"}, False),
        ({"text": "{% for recommendations in cart %}{{ recommendations }}{% endfor %}"}, False),
        # A part that cannot be parsed fails when rendered: read everything, as before.
        ({"text": "{% for p in %}"}, True),
    ],
)
def test_reads_names_what_the_parts_read(parts: dict[str, str], expected: bool) -> None:
    assert reads(parts, "recommendations") is expected

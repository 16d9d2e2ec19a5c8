"""The scanner that finds link tags for click tracking reads HTML as Python's
html.parser does: real start tags of `a` and `area`, not text that looks like one inside
comments, <script> and <style> contents, CDATA sections or attribute values. html.parser
(fed the whole text, then closed) is the oracle: hand-picked cases, and generated HTML
made of the pieces that make tokenizers disagree."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shopkeeper.messaging.links import _link_tags, rewrite_html, tracking_urls

SECRET = "test-secret"
BASE = "https://shop.example"


class _Oracle(HTMLParser):
    """(offset, the tag's text) of each a/area start tag html.parser reports."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []
        self._line_starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raw = self.get_starttag_text()
        if tag in ("a", "area") and raw:
            line, column = self.getpos()
            self.found.append((self._line_starts[line - 1] + column, raw))

    handle_startendtag = handle_starttag


def oracle(text: str) -> list[tuple[int, str]] | None:
    """What html.parser finds; None where it gives up (it raises AssertionError)."""
    parser = _Oracle(text)
    try:
        parser.feed(text)
        parser.close()
    except AssertionError:
        return None
    return parser.found


def agree(text: str) -> None:
    expected = oracle(text)
    if expected is None:
        with pytest.raises(ValueError, match="section at offset"):
            _link_tags(text)
    else:
        assert _link_tags(text) == expected
        for offset, raw in expected:
            assert text.startswith(raw, offset)


def tags(text: str) -> list[str]:
    return [raw for _offset, raw in _link_tags(text)]


# -- hand-picked ---------------------------------------------------------------------------


CASES = {
    "comment": '<!-- <a href="http://c.example/">x</a> --><a href="https://real.example/">r</a>',
    "comment ending oddly": '<!-- <a href="https://hidden.example/"> -- ><a href="https://after.example/">',
    "unclosed comment": '<!-- <a href="https://x.example/">y</a>',
    "script": "<script>var a = '<a href=\"http://s.example/\">';</script>"
    '<a href="https://after.example/">',
    "uppercase script": '<SCRIPT type="text/javascript">document.write("<a href=x>")</Script >'
    "<a href=y>",
    "script end with a look-alike": "<script>x = '</\u017fcript>'; y = '<a href=z>'</script>"
    "<a href=w>",
    "unclosed script": "<script>var a = '<a href=\"http://s.example/\">';",
    "self-closed script": '<script src="x.js"/><a href="https://after.example/">',
    "style": '<style>a[href^="<a href=x>"] { color: red }</style><a href="https://s.example/">',
    "quoted >": '<a title=\'a > b\' href="https://q.example/?x=>">q</a><img alt="<a href=no>">',
    "uppercase": '<A HREF="https://UP.example/">u</A><AREA HREF="https://area.example/">',
    "unquoted": "<a href=https://bare.example/path?q=1>b</a><a href=https://x.example/ class=c>",
    "self-closing": '<a href="https://self.example/"/><area href="https://area.example/" />',
    "cdata": '<![CDATA[ <a href="https://in.example/"> ]]><a href="https://out.example/">',
    "office conditional": '<!--[if mso]><a href="https://mso.example/"><![endif]-->'
    '<![if !mso]><a href="https://not-mso.example/"><![endif]>',
    "doctype and pi": '<!DOCTYPE html><?xml version="1.0"?><a href="https://x.example/">',
    "bogus comment": '<!x <a href="https://bogus.example/">><a href="https://after.example/">',
    "end tags": '</a href="https://no.example/"></ a><a href="https://yes.example/">',
    "not tags": "a < b, 1<2, <3, <>, <a",
    "unfinished": "<a href='https://x.example",
    "names that only start alike": '<abbr href="https://no.example/"><areas href="x"><a-b href=y>',
    "a quote then <": '<a href="x"<b>c</b>',
    "newlines": '<p>\n<a\n  href="https://x.example/"\n>\n</a>\n<area\nhref=y>\n',
}


@pytest.mark.parametrize("text", CASES.values(), ids=CASES.keys())
def test_finds_what_html_parser_finds(text: str) -> None:
    agree(text)


def test_what_is_found_in_the_hand_picked_cases() -> None:
    """Not only agreement: what each case is about (a wrong oracle would show here)."""
    assert tags(CASES["comment"]) == ['<a href="https://real.example/">']
    assert tags(CASES["comment ending oddly"]) == ['<a href="https://after.example/">']
    assert tags(CASES["unclosed comment"]) == []
    assert tags(CASES["script"]) == ['<a href="https://after.example/">']
    assert tags(CASES["uppercase script"]) == ["<a href=y>"]
    assert tags(CASES["script end with a look-alike"]) == ["<a href=w>"]
    assert tags(CASES["unclosed script"]) == []
    assert tags(CASES["self-closed script"]) == ['<a href="https://after.example/">']
    assert tags(CASES["style"]) == ['<a href="https://s.example/">']
    assert tags(CASES["quoted >"]) == ["<a title='a > b' href=\"https://q.example/?x=>\">"]
    assert tags(CASES["uppercase"]) == [
        '<A HREF="https://UP.example/">',
        '<AREA HREF="https://area.example/">',
    ]
    assert tags(CASES["unquoted"]) == [
        "<a href=https://bare.example/path?q=1>",
        "<a href=https://x.example/ class=c>",
    ]
    assert tags(CASES["self-closing"]) == [
        '<a href="https://self.example/"/>',
        '<area href="https://area.example/" />',
    ]
    assert tags(CASES["cdata"]) == ['<a href="https://out.example/">']
    assert tags(CASES["office conditional"]) == ['<a href="https://not-mso.example/">']
    assert tags(CASES["bogus comment"]) == ['<a href="https://after.example/">']
    assert tags(CASES["end tags"]) == ['<a href="https://yes.example/">']
    assert tags(CASES["not tags"]) == []
    assert tags(CASES["unfinished"]) == []
    assert tags(CASES["names that only start alike"]) == []
    # After a quote, "<b" is one more attribute's name: the tag goes on to the ">".
    assert tags(CASES["a quote then <"]) == ['<a href="x"<b>']
    assert len(tags(CASES["newlines"])) == 2


def test_an_unknown_marked_section_is_refused() -> None:
    # html.parser raises AssertionError on these; the scanner says ValueError (a
    # message whose HTML cannot be read is skipped with the reason).
    for text in ("<![foo[ x ]]>", "<![ CDATA[ x ]]>", "<p><![0]>"):
        assert oracle(text) is None
        with pytest.raises(ValueError, match="section at offset"):
            _link_tags(text)


def test_rewrite_tracks_only_real_links() -> None:
    html = (
        "<!-- <a href='https://comment.example/'> -->"
        "<script>document.write('<a href=\"https://script.example/\">')</script>"
        "<a title='x > y' href=\"https://real.example/\">real</a>"
        "<A HREF=https://upper.example/>upper</A>"
        "<a href='https://closed.example/'/>"
    )
    out = rewrite_html(html, BASE, 7, SECRET)
    urls = tracking_urls(BASE, 7, SECRET)
    for kept in ("https://comment.example/", "https://script.example/", "title='x > y'"):
        assert kept in out
    for tracked in ("https://real.example/", "https://upper.example/", "https://closed.example/"):
        assert urls.click(tracked).replace("&", "&amp;") in out
    assert out.count("/t/c/") == 3


# -- generated -----------------------------------------------------------------------------

PIECES = [
    # text
    "hi", " ", "\n", "&amp;", "&", "a<b", ">", "<", "'", '"', "=", "/", "]", "-", "\t",
    "\x0b", "\xa0", "x",
    # tags
    "<a", "<A", "<area", "<AREA", "<a/", "<ab", "<p", "<img", "<br/>", "<script", "<SCRIPT",
    "<style", "<Style", "</script>", "</SCRIPT >", "</ script>", "</\u017fcript>", "</style>",
    "</a>", "</", "</>", "</ a>",
    # comments, declarations, sections, processing instructions
    "<!--", "-->", "-- >", "--!>", "<!", "<!doctype html>", "<!DOCTYPE", "<![CDATA[", "]]>",
    "] ]>", "<![if !mso]>", "<![endif]>", "<![", "<![if", "<?php", "?>",
    # attributes
    " href=", "href", "HREF", '"https://x.example/?a=1&amp;b=2"', "'http://y.example/>'",
    "https://z.example/", " data-notrack", " title='>'", '="<a href=x>"', "==", " /", "/>",
]  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join))
@example('<a href="https://x.example/">')
@example("<script></script><a href=x>")
@example("<![CDATA[<a href=x>]]><a href=y>")
def test_generated_html_is_read_as_html_parser_reads_it(text: str) -> None:
    agree(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="<>!-/?'\"= aAhrefscitpylx[]", max_size=40))
def test_any_text_of_markup_characters_is_read_as_html_parser_reads_it(text: str) -> None:
    agree(text)

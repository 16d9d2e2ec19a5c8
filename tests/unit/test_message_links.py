"""Signed tracking links, click-tracking rewrites of real-world HTML, and UTM merging."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest

from shopkeeper.messaging.links import (
    CLICK,
    OPEN,
    UNSUBSCRIBE,
    rewrite_html,
    sign,
    tracking_urls,
    verify,
    with_utm,
)

SECRET = "test-secret"
BASE = "https://shop.example"


# -- tokens --------------------------------------------------------------------------------


def test_sign_and_verify_round_trip() -> None:
    token = sign(CLICK, 42, "https://x.example/a?b=1", secret=SECRET)
    assert re.fullmatch(r"c42\.[A-Za-z0-9_-]{22}", token)
    assert verify(token, secret=SECRET, extra="https://x.example/a?b=1") == (
        CLICK,
        42,
        "https://x.example/a?b=1",
    )
    assert verify(sign(OPEN, 0, secret=SECRET), secret=SECRET) == (OPEN, 0, "")
    # Deterministic: the same message gets the same links on a retry.
    assert sign(UNSUBSCRIBE, 7, secret=SECRET) == sign(UNSUBSCRIBE, 7, secret=SECRET)


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


def test_tampered_tokens_are_refused() -> None:
    token = sign(UNSUBSCRIBE, 42, secret=SECRET)
    kind_and_id, signature = token.split(".")
    assert verify(token, secret=SECRET) is not None
    assert verify(f"u43.{signature}", secret=SECRET) is None  # another message
    assert verify(f"o42.{signature}", secret=SECRET) is None  # another kind
    assert verify(f"{kind_and_id}.{_flip(signature, 0)}", secret=SECRET) is None
    assert verify(f"{kind_and_id}.{_flip(signature, 21)}", secret=SECRET) is None
    assert verify(token, secret="another-secret") is None
    assert verify(token, secret=SECRET, extra="x") is None


def test_a_click_token_covers_its_url() -> None:
    token = sign(CLICK, 5, "https://shop.example/p", secret=SECRET)
    assert verify(token, secret=SECRET, extra="https://shop.example/p") is not None
    assert verify(token, secret=SECRET, extra="https://evil.example/p") is None
    assert verify(token, secret=SECRET, extra="https://shop.example/p?x") is None


@pytest.mark.parametrize(
    "token",
    ["", "u42", "u42.", "42.abc", "U42.AAAAAAAAAAAAAAAAAAAAAA", "u-1.AAAAAAAAAAAAAAAAAAAAAA",
     "u42.AAAAAAAAAAAAAAAAAAAAA=", "u42.AAAAAAAAAAAAAAAAAAAAAA.gif", "u42.A/AAAAAAAAAAAAAAAAAAAA",
     None, 42],
)  # fmt: skip
def test_malformed_tokens_are_refused(token: object) -> None:
    assert verify(token, secret=SECRET) is None  # type: ignore[arg-type]


def test_sign_refuses_bad_kinds_and_ids() -> None:
    for kind in ("", "C", "click-1", "x" * 11):
        with pytest.raises(ValueError, match="kind"):
            sign(kind, 1, secret=SECRET)
    for message_id in (-1, True, "1"):
        with pytest.raises(ValueError, match="message id"):
            sign(CLICK, message_id, secret=SECRET)  # type: ignore[arg-type]


def test_tracking_urls() -> None:
    urls = tracking_urls(BASE + "/", 9, SECRET)
    assert urls.open.startswith(f"{BASE}/t/o/o9.")
    assert urls.open.endswith(".gif")
    assert verify(urls.open.rsplit("/", 1)[1].removesuffix(".gif"), secret=SECRET) == (OPEN, 9, "")
    assert urls.unsubscribe.startswith(f"{BASE}/u/u9.")
    assert verify(urls.unsubscribe.rsplit("/", 1)[1], secret=SECRET) == (UNSUBSCRIBE, 9, "")
    target = "https://shop.example/p?a=1&b=two words#frag"
    click = urlsplit(urls.click(target))
    assert click.path.startswith("/t/c/c9.")
    destination = parse_qs(click.query)["u"][0]
    assert destination == target
    assert verify(click.path.rsplit("/", 1)[1], secret=SECRET, extra=destination) is not None
    assert SECRET not in repr(urls)


# -- HTML rewriting -------------------------------------------------------------------------


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str | None] = []
        self.images: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("a", "area"):
            self.hrefs.append(dict(attrs).get("href"))
        if tag == "img":
            self.images.append(dict(attrs).get("src"))


def _parsed(html: str) -> _Hrefs:
    parser = _Hrefs()
    parser.feed(html)
    parser.close()
    return parser


def _destination(href: str | None) -> str:
    """The original URL of a tracked link, after checking its signature."""
    assert href is not None
    parts = urlsplit(href)
    assert f"{parts.scheme}://{parts.netloc}" == BASE
    assert parts.path.startswith("/t/c/")
    url = parse_qs(parts.query)["u"][0]
    assert verify(parts.path.rsplit("/", 1)[1], secret=SECRET, extra=url) == (CLICK, 3, url)
    return url


TRICKY = """<!DOCTYPE html>
<HTML><HEAD><title>a < b & c</title><style>a[href^="http"] { color: red }</style></HEAD>
<Body class="x">
<a href="https://shop.example/p?a=1&amp;b=2#top" class="btn">One</a>
<A HREF='http://x.example/"quoted"'>Two</A>
<a title='see href="http://evil.example"' href=https://ok.example/path?q=1>Three</a>
<a
   data-href="http://not-this.example"
   href = "https://multi.example/line"
>Four</a>
<a href="  https://spaces.example/  ">Five</a>
<a href="mailto:help@shop.example">mail</a> <a href="tel:+4712345678">call</a>
<a href="#top">top</a> <a href="/relative/path">relative</a> <a name="anchor">no href</a>
<a href="https://shop.example/u/u1.AAAAAAAAAAAAAAAAAAAAAA">unsubscribe</a>
<a href="https://keep.example/" data-notrack>keep</a>
<a href="HTTPS://UPPER.EXAMPLE/X">upper scheme</a>
<map><area shape="rect" coords="0,0,1,1" href="https://area.example/"></map>
<!-- <a href="http://comment.example/">commented</a> -->
<script>var s = '<a href="http://script.example/">';</script>
<img src="logo.png" alt="a > b"><br/>
<p>Caf\u00e9 &amp; cr\u00e8me &lt;3</p>
</BODY></HTML>
"""


def test_rewrite_tracks_every_web_link_and_nothing_else() -> None:
    out = rewrite_html(TRICKY, BASE, 3, SECRET)
    hrefs = _parsed(out).hrefs
    assert [_destination(h) for h in hrefs[:5]] == [
        "https://shop.example/p?a=1&b=2#top",
        'http://x.example/"quoted"',
        "https://ok.example/path?q=1",
        "https://multi.example/line",
        "https://spaces.example/",
    ]
    assert hrefs[5:12] == [
        "mailto:help@shop.example",
        "tel:+4712345678",
        "#top",
        "/relative/path",
        None,
        "https://shop.example/u/u1.AAAAAAAAAAAAAAAAAAAAAA",
        "https://keep.example/",
    ]
    assert _destination(hrefs[12]) == "HTTPS://UPPER.EXAMPLE/X"
    assert _destination(hrefs[13]) == "https://area.example/"
    assert len(hrefs) == 14
    # Comments, scripts, styles and the other attributes are left exactly as they were.
    for kept in (
        '<!-- <a href="http://comment.example/">commented</a> -->',
        "<script>var s = '<a href=\"http://script.example/\">';</script>",
        '<style>a[href^="http"] { color: red }</style>',
        "title='see href=\"http://evil.example\"'",
        'data-href="http://not-this.example"',
        '<img src="logo.png" alt="a > b"><br/>',
        "<p>Caf\u00e9 &amp; cr\u00e8me &lt;3</p>",
        'class="btn">One</a>',
    ):
        assert kept in out


def test_rewrite_changes_only_the_hrefs() -> None:
    out = rewrite_html(TRICKY, BASE, 3, SECRET)
    pixel_start = out.index('<img src="https://shop.example/t/o/')
    pixel_end = out.index(">", pixel_start) + 1
    without_pixel = out[:pixel_start] + out[pixel_end:]
    tracked = re.compile(r'"https://shop\.example/t/c/[^"]*"')
    assert len(tracked.findall(without_pixel)) == 7
    skeleton = tracked.sub("HREF", without_pixel)
    original = TRICKY
    for url in (
        '"https://shop.example/p?a=1&amp;b=2#top"',
        "'http://x.example/\"quoted\"'",
        "https://ok.example/path?q=1",
        '"https://multi.example/line"',
        '"  https://spaces.example/  "',
        '"HTTPS://UPPER.EXAMPLE/X"',
        '"https://area.example/"',
    ):
        original = original.replace(url, "HREF", 1)
    assert skeleton == original


def test_pixel_goes_before_the_body_end_or_at_the_end() -> None:
    out = rewrite_html("<html><body><p>Hi</p></BODY></html>", BASE, 3, SECRET)
    assert re.fullmatch(
        r'<html><body><p>Hi</p><img src="https://shop\.example/t/o/o3\.[\w-]{22}\.gif"'
        r' width="1" height="1" alt="" style="[^"]*"></BODY></html>',
        out,
    )
    fragment = rewrite_html("<p>Hi <a href='https://a.example'>a</a></p>", BASE, 3, SECRET)
    assert fragment.startswith("<p>Hi <a href=")
    assert _parsed(fragment).images == [tracking_urls(BASE, 3, SECRET).open]
    assert fragment.endswith('.gif" width="1" height="1" alt="" style="display:block;'
                             'width:1px;height:1px;border:0">')  # fmt: skip


def test_rewrite_survives_broken_html() -> None:
    pixel = rewrite_html("", BASE, 3, SECRET)
    assert pixel.startswith("<img")
    assert tracking_urls(BASE, 3, SECRET).open in pixel
    for html in ("<a href='https://x.example", "<a href=>x</a>", "<<a>>", "</a><a/>", "<a href"):
        assert rewrite_html(html, BASE, 3, SECRET) == html + pixel


def test_already_tracked_links_are_not_tracked_twice() -> None:
    once = rewrite_html('<a href="https://a.example/">a</a>', BASE, 3, SECRET)
    twice = rewrite_html(once.split("<img")[0], BASE, 3, SECRET)
    assert twice.split("<img")[0] == once.split("<img")[0]


# -- UTM -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://shop.example/cart",
            "https://shop.example/cart?utm_source=shopkeeper&utm_medium=email"
            "&utm_campaign=abandoned_cart",
        ),
        (
            "https://shop.example/p?id=1&size=M#reviews",
            "https://shop.example/p?id=1&size=M&utm_source=shopkeeper&utm_medium=email"
            "&utm_campaign=abandoned_cart#reviews",
        ),
        (
            # The link's own campaign wins; its odd encoding is kept byte for byte.
            "https://shop.example/?q=a+b%2Fc&utm_campaign=xmas&flag",
            "https://shop.example/?q=a+b%2Fc&utm_campaign=xmas&flag&utm_source=shopkeeper"
            "&utm_medium=email",
        ),
    ],
)
def test_with_utm(url: str, expected: str) -> None:
    assert with_utm(url, "shopkeeper", "email", "abandoned_cart") == expected


def test_with_utm_content_coupon_and_empty_values() -> None:
    url = with_utm("https://s.example/x", "sk", None, "", content="hero banner", coupon="SAVE&10")
    assert url == "https://s.example/x?utm_source=sk&utm_content=hero%20banner&coupon=SAVE%2610"
    assert parse_qs(urlsplit(url).query) == {
        "utm_source": ["sk"],
        "utm_content": ["hero banner"],
        "coupon": ["SAVE&10"],
    }
    assert with_utm("https://s.example/x#f", None, None, None) == "https://s.example/x#f"
    kept = with_utm("https://s.example/?coupon=OLD", "sk", "sms", "c", coupon="NEW")
    assert parse_qs(urlsplit(kept).query)["coupon"] == ["OLD"]

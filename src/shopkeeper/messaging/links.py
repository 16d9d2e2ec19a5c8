"""Signed links in messages: the open pixel, click tracking, unsubscribe, and UTM
parameters on shop links. Pure: the secret and the public address are parameters.

A token is `<kind><message id>.<signature>` (for example `c42.kP3...`): the signature is
an HMAC-SHA256 over the kind, the message id and an extra value, truncated to 128 bits
and base64url-encoded. A click token's extra value is the destination URL, which travels
beside the token (`/t/c/<token>?u=<url>`): changing the URL breaks the signature, so the
click redirect cannot be used to send people to arbitrary sites.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from html import escape, unescape
from html.parser import HTMLParser
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

OPEN = "o"
CLICK = "c"
UNSUBSCRIBE = "u"

_KIND = re.compile(r"^[a-z]{1,10}$")
_TOKEN = re.compile(r"^([a-z]{1,10})([0-9]{1,19})\.([A-Za-z0-9_-]{22})$")
_SIGNATURE_BYTES = 16
_TRACKED_SCHEMES = ("http://", "https://")
# Tags whose href is a link a reader clicks.
_LINK_TAGS = frozenset({"a", "area"})
# An author can keep one link out of click tracking: <a href="..." data-notrack>.
_NO_TRACK = "data-notrack"
# Attributes inside a start tag, as html.parser reads them (tolerant of odd spacing).
_ATTRIBUTE = re.compile(
    r"""((?<=['"\s/])[^\s/>][^\s/=>]*)(\s*=+\s*('[^']*'|"[^"]*"|(?!['"])[^>\s]*))?(?:\s|/(?!>))*"""
)
_TAG_NAME = re.compile(r"<[a-zA-Z][^\t\n\r\f />\x00]*(?:\s|/(?!>))*")


@functools.lru_cache(maxsize=8)
def _key(secret: str) -> bytes:
    # A key of its own for links, so a signature made here means nothing elsewhere.
    return hashlib.sha256(b"shopkeeper message links\x00" + secret.encode()).digest()


def _signature(kind: str, message_id: int, extra: str, secret: str) -> str:
    data = f"{kind}\x00{message_id}\x00{extra}".encode()
    mac = hmac.new(_key(secret), data, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def sign(kind: str, message_id: int, extra: str = "", *, secret: str) -> str:
    """A token for `kind` (OPEN, CLICK, UNSUBSCRIBE...) about one message."""
    if not _KIND.match(kind):
        raise ValueError(f"a link kind is 1 to 10 lowercase letters, not {kind!r}")
    if isinstance(message_id, bool) or not isinstance(message_id, int) or message_id < 0:
        raise ValueError(f"a message id is a non-negative integer, not {message_id!r}")
    return f"{kind}{message_id}.{_signature(kind, message_id, extra, secret)}"


def verify(token: str, *, secret: str, extra: str = "") -> tuple[str, int, str] | None:
    """(kind, message id, extra) when `token` was signed with `secret` over `extra`;
    None for anything else (malformed, tampered, signed for another URL)."""
    if not isinstance(token, str):
        return None
    match = _TOKEN.match(token)
    if match is None:
        return None
    kind, digits, given = match.groups()
    message_id = int(digits)
    expected = _signature(kind, message_id, extra, secret)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return None
    return kind, message_id, extra


@dataclass(frozen=True)
class TrackingUrls:
    """The tracking addresses of one message."""

    base: str
    message_id: int
    open: str
    unsubscribe: str
    secret: str = field(repr=False)

    def click(self, url: str) -> str:
        token = sign(CLICK, self.message_id, url, secret=self.secret)
        return f"{self.base}/t/c/{token}?u={quote(url, safe='')}"

    def is_own(self, url: str) -> bool:
        """A link to this server's tracking or unsubscribe pages (left as it is)."""
        return url.startswith((f"{self.base}/t/", f"{self.base}/u/"))


def tracking_urls(public_url: str, message_id: int, secret: str) -> TrackingUrls:
    base = public_url.rstrip("/")
    return TrackingUrls(
        base=base,
        message_id=message_id,
        open=f"{base}/t/o/{sign(OPEN, message_id, secret=secret)}.gif",
        unsubscribe=f"{base}/u/{sign(UNSUBSCRIBE, message_id, secret=secret)}",
        secret=secret,
    )


# -- HTML ---------------------------------------------------------------------------------


class _LinkFinder(HTMLParser):
    """Where each link's start tag is, as (offset in the document, the tag's raw text).
    html.parser knows where tags really are (not inside comments, scripts or attribute
    values); the tags themselves are then edited as text, so nothing else changes."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []
        self._line_starts = [0]
        index = text.find("\n")
        while index >= 0:
            self._line_starts.append(index + 1)
            index = text.find("\n", index + 1)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raw = self.get_starttag_text()
        if tag in _LINK_TAGS and raw:
            line, column = self.getpos()
            self.found.append((self._line_starts[line - 1] + column, raw))

    handle_startendtag = handle_starttag


def _rewrite_tag(raw: str, urls: TrackingUrls) -> str:
    head = _TAG_NAME.match(raw)
    if head is None:
        return raw
    position = head.end()
    href: tuple[int, int, str] | None = None
    names: set[str] = set()
    while position < len(raw):
        match = _ATTRIBUTE.match(raw, position)
        if match is None or match.end() == position:
            break
        name = match.group(1).lower()
        names.add(name)
        if name == "href" and href is None and match.group(3) is not None:
            value = match.group(3)
            inner = value[1:-1] if value[:1] in ("'", '"') else value
            href = (match.start(3), match.end(3), unescape(inner).strip())
        position = match.end()
    if href is None or _NO_TRACK in names:
        return raw
    start, end, url = href
    if not url.lower().startswith(_TRACKED_SCHEMES) or urls.is_own(url):
        return raw
    return f'{raw[:start]}"{escape(urls.click(url), quote=True)}"{raw[end:]}'


def rewrite_html(html: str, public_url: str, message_id: int, secret: str) -> str:
    """Every http(s) link through click tracking (mailto:, tel:, anchors, relative
    links, this server's own links and links marked data-notrack stay as they are), and
    the open pixel before </body> (or at the end)."""
    urls = tracking_urls(public_url, message_id, secret)
    finder = _LinkFinder(html)
    finder.feed(html)
    finder.close()
    pieces: list[str] = []
    done = 0
    for offset, raw in finder.found:
        if html.startswith(raw, offset) and offset >= done:
            pieces.append(html[done:offset])
            pieces.append(_rewrite_tag(raw, urls))
            done = offset + len(raw)
    pieces.append(html[done:])
    out = "".join(pieces)
    pixel = (
        f'<img src="{escape(urls.open, quote=True)}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0">'
    )
    body_end = out.lower().rfind("</body")
    if body_end < 0:
        return out + pixel
    return out[:body_end] + pixel + out[body_end:]


# -- UTM ----------------------------------------------------------------------------------


def with_utm(
    url: str,
    source: str | None,
    medium: str | None,
    campaign: str | None,
    content: str | None = None,
    coupon: str | None = None,
) -> str:
    """`url` with utm_source, utm_medium, utm_campaign, utm_content and coupon added.

    Parameters the URL already has win (a link written with its own utm_campaign keeps
    it); empty values are left out. The existing query string and the fragment are kept
    byte for byte: new parameters are appended."""
    parts = urlsplit(url)
    present = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    wanted = {
        "utm_source": source,
        "utm_medium": medium,
        "utm_campaign": campaign,
        "utm_content": content,
        "coupon": coupon,
    }
    added = [(k, v) for k, v in wanted.items() if v and k not in present]
    if not added:
        return url
    extra = urlencode(added, quote_via=quote)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))

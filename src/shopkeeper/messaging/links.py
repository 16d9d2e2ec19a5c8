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
# The grammar of a start tag as Python's html.parser reads it (tolerant of odd spacing):
# a name, then attributes, each a name (after a quote, a space or a slash) and maybe a
# value (quoted, or bare up to a space or ">").
_NAME = r"[a-zA-Z][^\t\n\r\f />\x00]*"
_ATTR_NAME = r"""(?<=['"\s/])[^\s/>][^\s/=>]*"""
_ATTR_VALUE = r"""'[^']*'|"[^"]*"|(?!['"])[^>\s]*"""
_GAP = r"(?:\s|/(?!>))*"
_ATTRIBUTE = re.compile(rf"({_ATTR_NAME})(\s*=+\s*({_ATTR_VALUE}))?{_GAP}")
_TAG_NAME = re.compile(rf"<({_NAME}){_GAP}")
# As far as a start tag goes before its ">" (or before what stops it).
_TAG_EXTENT = re.compile(
    rf"<{_NAME}(?:[\s/]*(?:{_ATTR_NAME}(?:\s*=+\s*(?:{_ATTR_VALUE})\s*)?{_GAP})*)?\s*"
)
_COMMENT_END = re.compile(r"--\s*>")
# <![name ...: CDATA-like sections end with "]]>", Office's conditionals with "]>".
_SECTION_NAME = re.compile(r"[a-zA-Z][-_.a-zA-Z0-9]*\s*")
_SECTION_END = {
    **dict.fromkeys(("temp", "cdata", "ignore", "include", "rcdata"), re.compile(r"]\s*]\s*>")),
    **dict.fromkeys(("if", "else", "endif"), re.compile(r"]\s*>")),
}
# Elements whose content is text up to their end tag: nothing inside them is a tag.
_RAW_TEXT = ("script", "style")
_RAW_TEXT_END = {
    # ASCII letters only: an end tag spelled with a Unicode look-alike of a letter (a
    # long s, a dotless i) does not end the element (html.parser finds it with a
    # Unicode-insensitive search, then reads it as text and looks further).
    name: re.compile(rf"</\s*{name}\s*>", re.IGNORECASE | re.ASCII)
    for name in _RAW_TEXT
}


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


def _start_tag_end(html: str, i: int) -> int:
    """Where the start tag at `i` ends (after its ">", or where it is cut short by
    something that cannot be in it); -1 when the text ends inside it."""
    j = _TAG_EXTENT.match(html, i).end()  # type: ignore[union-attr]  # "<" + letter
    following = html[j : j + 1]
    if following == ">":
        return j + 1
    if following == "/":
        return j + 2 if html.startswith("/>", j) else -1
    if following in ("", "=") or (following.isascii() and following.isalpha()):
        return -1  # inside an attribute, or its value, when the text ended
    return j


def _is_whole_tag(html: str, i: int, end: int) -> tuple[str, bool] | None:
    """(lowercased name, ends with "/>") when html[i:end] reads as one start tag (its
    attributes take it all up to ">" or "/>"); None when it is text."""
    head = _TAG_NAME.match(html, i)
    assert head is not None  # "<" + letter
    position = head.end()
    while position < end:
        match = _ATTRIBUTE.match(html, position)
        if match is None:
            break
        position = match.end()
    rest = html[position:end].strip()
    if rest not in (">", "/>"):
        return None
    return head.group(1).lower(), rest == "/>"


def _after_declaration(html: str, i: int) -> int:
    """The end of the "<!..." at `i` (a marked section, a doctype, a bogus comment); -1
    when the text ends inside it."""
    if html.startswith("<![", i):
        if i + 3 == len(html):
            return -1
        name = _SECTION_NAME.match(html, i + 3)
        if name is None:
            raise ValueError(f"the HTML has an unreadable <![ section at offset {i}")
        if name.end() == len(html):
            return -1
        closing = _SECTION_END.get(name.group().strip().lower())
        if closing is None:
            raise ValueError(f"the HTML has an unknown <![ section at offset {i}")
        found = closing.search(html, i + 3)
        return -1 if found is None else found.end()
    doctype = html[i : i + 9].lower() == "<!doctype"
    gt = html.find(">", i + 9 if doctype else i + 2)
    return -1 if gt < 0 else gt + 1


def _link_tags(html: str) -> list[tuple[int, str]]:
    """Where each link's start tag is, as (offset, the tag's text): the tags of `a` and
    `area` elements as Python's html.parser finds them, so not inside comments, <script>
    or <style> contents, CDATA sections or attribute values; what is unfinished at the
    end of the text is text. Raises ValueError where html.parser gives up (an unknown
    <![ section)."""
    found: list[tuple[int, str]] = []
    n = len(html)
    position = 0
    while True:
        i = html.find("<", position)
        if i < 0 or i + 1 >= n:
            return found
        following = html[i + 1]
        if following.isascii() and following.isalpha():
            end = _start_tag_end(html, i)
            if end >= 0:
                tag = _is_whole_tag(html, i, end)
                if tag is not None:
                    name, closed = tag
                    if name in _LINK_TAGS:
                        found.append((i, html[i:end]))
                    elif name in _RAW_TEXT and not closed:
                        content_end = _RAW_TEXT_END[name].search(html, end)
                        if content_end is None:
                            return found  # the rest is the element's content
                        end = content_end.end()
        elif following == "/":
            gt = html.find(">", i + 1)
            end = -1 if gt < 0 else gt + 1
        elif html.startswith("<!--", i):
            closing = _COMMENT_END.search(html, i + 4)
            end = -1 if closing is None else closing.end()
        elif following == "?":
            gt = html.find(">", i + 2)
            end = -1 if gt < 0 else gt + 1
        elif following == "!":
            end = _after_declaration(html, i)
        else:
            end = i + 1  # a "<" of the text
        if end < 0:
            # Unfinished: text up to the next ">" (or "<"), and reading goes on there.
            gt = html.find(">", i + 1)
            if gt >= 0:
                end = gt + 1
            else:
                lt = html.find("<", i + 1)
                end = lt if lt >= 0 else i + 1
        position = end


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
    pieces: list[str] = []
    done = 0
    for offset, raw in _link_tags(html):
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

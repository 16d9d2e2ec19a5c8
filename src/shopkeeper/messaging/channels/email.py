"""Email over SMTP, with the standard library's smtplib.

`email_bytes` is pure (the message exactly as it will be sent); `SmtpEmail` holds one
SMTP connection across sends, because a broadcast to thousands of people should not pay
a TCP handshake, EHLO, STARTTLS and AUTH per message.

The message is written out directly rather than built as an `email.message.EmailMessage`:
the email package parses every header it is given into an object and folds it back when
flattening, which cost about 2.5 ms per message, more than everything else a send does.
The shapes here are few and fixed (a handful of headers, one text/plain and/or one
text/html part), so writing them is short; the email package is still used for the rare
header it takes a real parser to get right (an address with a display name, an extra
header with non-ASCII text).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import re
import secrets
import smtplib
import ssl
import string
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, parseaddr
from urllib.parse import quote

from shopkeeper.messaging.channels.base import EMAIL, Delivered, Outgoing, ProviderError

# Headers the message itself owns: an extra header may not replace them (a template that
# sets "To" or "Bcc" would send the mail somewhere else).
RESERVED_HEADERS = frozenset(
    {
        "from",
        "sender",
        "to",
        "cc",
        "bcc",
        # smtplib's send_message used to drop it silently; written out it would show
        # the hidden recipients to everyone.
        "resent-bcc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "list-unsubscribe",
        "list-unsubscribe-post",
    }
)

# Headers addressed to people with non-ASCII mailbox names (RFC 6531): written in UTF-8,
# and the server must accept SMTPUTF8 (smtplib refuses to send otherwise).
SMTPUTF8_POLICY = SMTP_POLICY.clone(utf8=True)
SMTPUTF8_OPTIONS = ("SMTPUTF8", "BODY=8BITMIME")

# RFC 5322: lines SHOULD be at most 78 characters (and MUST be at most 998); RFC 2047:
# a header line with an encoded word, at most 76. Headers are folded at 76.
MAX_LINE = 78
FOLD_AT = 76
# An address that can be written in a header as it is: ASCII, no spaces, no display
# name, nothing the header syntax gives a meaning to (anything else takes the parser).
PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")
# RFC 2047 Q encoding in a phrase keeps only these characters as they are (section 5(3)).
Q_SAFE = frozenset(string.ascii_letters + string.digits + "!*+-/")
# Encoded words short enough that the first fits on the line after "Subject: ".
ENCODED_WORD_ROOM = FOLD_AT - len("Subject: =?utf-8?q??=")
ASCII_BYTES = bytes(range(128))
# A URL goes in List-Unsubscribe as it is, except for what cannot be written in a
# header (non-ASCII, spaces, controls): those are percent-encoded, as browsers do.
URL_SAFE = "".join(chr(code) for code in range(0x21, 0x7F))


def _refuse(reason: str) -> ProviderError:
    # The message as rendered can never be sent: trying again gives the same refusal.
    return ProviderError(reason, retryable=False)


def _has_line_break(text: str) -> bool:
    return any(char in text for char in "\r\n\0")


def _is_header_name(name: str) -> bool:
    # RFC 5322 field name: printable US-ASCII except the colon.
    return bool(name) and all(33 <= ord(char) <= 126 and char != ":" for char in name)


@functools.lru_cache(maxsize=16)
def sender_domain(sender: str) -> str:
    # Cached: the sender is configuration, and parseaddr is slow pure Python.
    address = parseaddr(sender)[1]
    domain = address.rpartition("@")[2]
    return domain or "shopkeeper.invalid"


@functools.lru_cache(maxsize=16)
def envelope_sender(sender: str) -> str:
    """The address in MAIL FROM for the configured From header."""
    return parseaddr(sender)[1] or sender


def message_id_for(idempotency_key: str, sender: str) -> str:
    """A Message-ID that only depends on the idempotency key (and the sending domain),
    so that a retry of the same message carries the same id and receivers that dedupe
    on it show it once. Hashed, because the key may hold characters a Message-ID cannot."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    return f"<{digest}@{sender_domain(sender)}>"


@dataclass(frozen=True, slots=True)
class ComposedEmail:
    """An email as it goes over SMTP."""

    data: bytes  # RFC 5322 text with CRLF line ends, ready for DATA
    message_id: str
    # A mailbox name is not ASCII: the server must take SMTPUTF8 (and the headers are UTF-8).
    smtputf8: bool


def email_bytes(message: Outgoing, sender: str, *, sent_at_s: float) -> bytes:
    """The email for `message` as it goes on the wire (for smtplib's sendmail), or
    ProviderError(retryable=False) when its content cannot make a safe email."""
    return compose_email(message, sender, sent_at_s=sent_at_s).data


def build_email(message: Outgoing, sender: str, *, sent_at_s: float) -> EmailMessage:
    """The email for `message` as an EmailMessage, for callers that want to read its
    headers and parts. It is `email_bytes` parsed back, so it is the message that is sent;
    sending it with smtplib's send_message works but pays for flattening it again."""
    data = email_bytes(message, sender, sent_at_s=sent_at_s)
    return BytesParser(EmailMessage, policy=SMTP_POLICY).parsebytes(data)


def compose_email(message: Outgoing, sender: str, *, sent_at_s: float) -> ComposedEmail:
    """The email for `message`, or ProviderError(retryable=False) when its content
    cannot make a safe email (a line break in a header, no body, a reserved header)."""
    recipient = message.recipient.strip()
    if _has_line_break(recipient) or "@" not in recipient:
        raise _refuse(f"{message.recipient!r} is not an email address.")
    content = message.content
    subject = str(content.get("subject") or "")
    text = content.get("text")
    html = content.get("html")
    if not text and not html:
        raise _refuse("The email has neither a text nor an HTML body.")
    if _has_line_break(subject):
        raise _refuse("The subject contains a line break.")
    # smtplib's rule for when a message needs SMTPUTF8 (send_message applied it).
    smtputf8 = not (recipient.isascii() and envelope_sender(sender).isascii())
    message_id = message_id_for(message.idempotency_key, sender)
    try:
        header = _header(message, sender, sent_at_s, message_id, smtputf8)
        data = header.encode() + _mime_body(text, html)
    except UnicodeEncodeError:
        # A lone surrogate (say from a badly escaped JSON string) has no UTF-8 form.
        raise _refuse("The email contains text that is not valid Unicode.") from None
    return ComposedEmail(data, message_id, smtputf8)


# -- headers -----------------------------------------------------------------------------


def _header(
    message: Outgoing, sender: str, sent_at_s: float, message_id: str, smtputf8: bool
) -> str:
    """The header fields, in the order EmailMessage wrote them."""
    content = message.content
    fields = [
        _from_field(sender, smtputf8),
        _to_field(message.recipient.strip(), smtputf8),
        _unstructured_field("Subject", str(content.get("subject") or "")),
        f"Date: {format_datetime(datetime.fromtimestamp(sent_at_s, UTC))}\r\n",
        f"Message-ID: {message_id}\r\n",
    ]
    if message.unsubscribe_url:
        fields.append(_unsubscribe_fields(message.unsubscribe_url))
    fields.extend(
        _extra_field(name, value) for name, value in _extra_headers(content.get("headers"))
    )
    header = "".join(fields)
    if not (smtputf8 or header.isascii()):
        # Only SMTPUTF8 lets a header carry raw UTF-8; the encoders above never leave
        # any without it, and this keeps it that way.
        raise _refuse("The email's headers cannot be written in ASCII.")
    return header


def _policy_field(name: str, value: str, smtputf8: bool) -> str:
    """`name: value` folded by the email package, as EmailMessage wrote every header
    before: for the few values that take its parser (display names, odd addresses,
    non-ASCII in a header that may be structured)."""
    policy = SMTPUTF8_POLICY if smtputf8 else SMTP_POLICY
    return str(policy.header_factory(name, value).fold(policy=policy))


@functools.lru_cache(maxsize=16)
def _from_field(sender: str, smtputf8: bool) -> str:
    # Cached: the sender is configuration, the same for every message.
    return _policy_field("From", sender, smtputf8)


def _to_field(recipient: str, smtputf8: bool) -> str:
    if PLAIN_ADDRESS.fullmatch(recipient):
        return f"To: {recipient}\r\n"
    try:
        return _policy_field("To", recipient, smtputf8)
    except (ValueError, IndexError):
        raise _refuse(f"{recipient!r} is not an email address.") from None


def _unsubscribe_fields(url: str) -> str:
    if _has_line_break(url) or ">" in url:
        raise _refuse("The unsubscribe URL contains a line break or '>'.")
    if not url.isascii() or not url.isprintable() or " " in url:
        url = quote(url, safe=URL_SAFE)
    # RFC 8058: mail clients show an unsubscribe button and POST to the URL with one
    # click, without opening a page (and Gmail and Yahoo require it of bulk senders).
    # The URL is not folded (clients differ on whether they ignore the folding space).
    field = f"List-Unsubscribe: <{url}>\r\n"
    if len(field) > 1000:
        raise _refuse("The unsubscribe URL is too long for an email header.")
    return field + "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"


def _extra_field(name: str, value: str) -> str:
    words = value.split(" ")
    if all(not word or _is_plain_word(word) for word in words):
        return _fold(name, words)
    # Non-ASCII (or very long words): the header may be structured (Reply-To has
    # addresses, with display names to encode word by word), which takes the parser.
    return _policy_field(name, value, smtputf8=False)


def _is_plain_word(word: str) -> bool:
    # Printable ASCII that a reader will not take for an RFC 2047 encoded word, short
    # enough to fit a folded line.
    return len(word) < FOLD_AT and word.isascii() and word.isprintable() and "=?" not in word


def _unstructured_field(name: str, value: str) -> str:
    """`name: value` for free text (RFC 5322 unstructured, like Subject): words that
    are plain ASCII as they are, runs of the others as RFC 2047 encoded words."""
    tokens: list[str] = []
    run: list[str] = []
    for word in value.split(" "):
        # An empty word (two spaces in a row) joins the run: the spaces between two
        # encoded words would be dropped by readers, inside one they are kept. So does
        # the first word after leading spaces, which readers would drop too.
        leading_spaces = not tokens and run and not any(run)
        if word and _is_plain_word(word) and not leading_spaces:
            tokens.extend(_encoded_run(run, leading=not tokens))
            run = []
            tokens.append(word)
        else:
            run.append(word)
    tokens.extend(_encoded_run(run, leading=not tokens))
    return _fold(name, tokens)


def _encoded_run(run: list[str], *, leading: bool) -> list[str]:
    text = " ".join(run)
    if text.strip(" ") or (leading and text):
        return _encoded_words(text)
    # Only the spaces between plain words (or after the last): they stay as they are.
    return run


def _encoded_words(text: str) -> list[str]:
    """`text` as RFC 2047 Q-encoded UTF-8 words (short enough for a Subject line),
    each holding whole characters: a reader decodes each word on its own."""
    words: list[str] = []
    current: list[str] = []
    size = 0
    for char in text:
        if char in Q_SAFE:
            piece = char
        elif char == " ":
            piece = "_"
        else:
            piece = "".join(f"={byte:02X}" for byte in char.encode())
        if size + len(piece) > ENCODED_WORD_ROOM:
            words.append(f"=?utf-8?q?{''.join(current)}?=")
            current, size = [], 0
        current.append(piece)
        size += len(piece)
    words.append(f"=?utf-8?q?{''.join(current)}?=")
    return words


def _fold(name: str, tokens: list[str]) -> str:
    """`name: token token ...` folded before a token where the line would pass 76
    characters (each token fits a line of its own: the callers see to that)."""
    lines: list[str] = []
    line = f"{name}:"
    for token in tokens:
        # Never before an empty token: a folded line may not be all white space.
        if token and len(line) + 1 + len(token) > FOLD_AT and line != f"{name}:":
            lines.append(line)
            line = f" {token}"
        else:
            line = f"{line} {token}"
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


# -- body --------------------------------------------------------------------------------


def _mime_body(text: object, html: object) -> bytes:
    """The MIME headers and body: one part, or multipart/alternative with the text
    first (RFC 2046: the last part is the richest, the one a client prefers)."""
    parts = []
    if text:
        parts.append(_text_part("plain", str(text)))
    if html:
        parts.append(_text_part("html", str(html)))
    if len(parts) == 1:
        return b"MIME-Version: 1.0\r\n" + parts[0]
    boundary = _boundary(parts)
    return b"".join(
        [
            b"MIME-Version: 1.0\r\n",
            b'Content-Type: multipart/alternative;\r\n boundary="' + boundary + b'"\r\n\r\n',
            # The line break before a delimiter belongs to the delimiter: each part's
            # content ends with its own line break, as EmailMessage wrote it.
            *(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts),
            b"--" + boundary + b"--\r\n",
        ]
    )


def _boundary(parts: list[bytes]) -> bytes:
    # Random, so that content cannot be written to end the part early; "=_" never
    # appears in quoted-printable or base64, and 7bit text is checked.
    while True:
        boundary = b"=_" + secrets.token_hex(16).encode()
        if not any(boundary in part for part in parts):
            return boundary


def _text_part(subtype: str, value: str) -> bytes:
    """Content-Type, Content-Transfer-Encoding and the body of a text part, in UTF-8:
    as it is when it is ASCII with short lines, else quoted-printable when that is
    the shorter (mostly Latin text), else base64."""
    # bytes.splitlines: only CR, LF and CRLF end a line (str's also splits on U+2028...).
    lines = value.encode().splitlines()
    data = b"\r\n".join(lines) + b"\r\n"
    if data.isascii() and max(map(len, lines), default=0) <= MAX_LINE:
        encoding, body = "7bit", data
    elif 6 * (len(data.translate(None, ASCII_BYTES)) + data.count(b"=")) <= len(data):
        # Quoted-printable writes an escaped byte in 3 characters, base64 every byte in
        # 4/3: with at most one byte in 6 to escape, quoted-printable is the shorter.
        encoding, body = "quoted-printable", binascii.b2a_qp(data, istext=True)
    else:
        encoding, body = "base64", base64.encodebytes(data).replace(b"\n", b"\r\n")
    head = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    )
    return head.encode() + body


def _extra_headers(headers: object) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if not isinstance(headers, Mapping):
        raise _refuse("The email's extra headers must be a mapping of name to value.")
    checked = []
    for name, value in headers.items():
        name, value = str(name), str(value)
        if not _is_header_name(name):
            raise _refuse(f"{name!r} is not a header name.")
        if name.lower() in RESERVED_HEADERS:
            raise _refuse(f"The header {name} is set by Shopkeeper and cannot be replaced.")
        if _has_line_break(value):
            # A line break would start a new header (or the body): header injection.
            raise _refuse(f"The header {name} contains a line break.")
        checked.append((name, value))
    return checked


def _reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())


def smtp_error(exc: Exception) -> ProviderError:
    """Map what smtplib raised to a ProviderError: 4xx and lost connections are worth a
    retry, 5xx are final, and 5xx on the recipient means the address is dead."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        # One recipient per message: its (code, reply) is the only entry.
        code, reply = next(iter(exc.recipients.values()), (0, b""))
        reason = f"The SMTP server refused the recipient: {code} {_reply_text(reply)}"
        if 500 <= code < 600:
            return ProviderError(reason, retryable=False, dead_address=True)
        return ProviderError(reason, retryable=True)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return _refuse(f"The SMTP server does not support what is configured: {exc}")
    if isinstance(exc, smtplib.SMTPConnectError):
        # A refusal at the greeting is about the server's state, not this message.
        return ProviderError(
            f"The SMTP server refused the connection: {exc.smtp_code} "
            f"{_reply_text(exc.smtp_error)}",
            retryable=True,
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        what = "login" if isinstance(exc, smtplib.SMTPAuthenticationError) else "message"
        reason = f"The SMTP server refused the {what}: {code} {_reply_text(exc.smtp_error)}"
        return ProviderError(reason, retryable=not 500 <= code < 600)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return ProviderError(f"The SMTP server closed the connection: {exc}", retryable=True)
    # socket timeouts, refused connections, TLS failures (smtplib.SMTPException is an
    # OSError too, but every kind of it was handled above).
    kind = "timed out" if isinstance(exc, TimeoutError) else "failed"
    return ProviderError(f"The SMTP connection {kind}: {exc or type(exc).__name__}", retryable=True)


def _connection_lost(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPServerDisconnected | ConnectionError):
        return True
    return getattr(exc, "smtp_code", None) == 421


class SmtpEmail:
    name = EMAIL

    def __init__(
        self,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        starttls: bool,
        sender: str,
        timeout: float,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.starttls = starttls
        self.sender = sender
        self.timeout = timeout
        self._envelope_from = envelope_sender(sender)
        self._smtp: smtplib.SMTP | None = None
        # One SMTP conversation at a time: smtplib's connection is not thread-safe.
        self._lock = threading.Lock()

    def send(self, message: Outgoing) -> Delivered:
        email = compose_email(message, self.sender, sent_at_s=time.time())
        recipient = message.recipient.strip()
        with self._lock:
            reused = self._smtp is not None
            try:
                self._transmit(email, recipient)
            except (smtplib.SMTPException, OSError) as exc:
                self._after_failure(exc)
                if not (reused and _connection_lost(exc)):
                    raise smtp_error(exc) from exc
                # The server closed the idle connection since the last send (servers
                # time idle clients out, with a 421 or without a word), before it took
                # anything of this message: one more try on a fresh connection.
                try:
                    self._transmit(email, recipient)
                except (smtplib.SMTPException, OSError) as again:
                    self._after_failure(again)
                    raise smtp_error(again) from again
        return Delivered(provider_id=email.message_id)

    def close(self) -> None:
        with self._lock:
            if self._smtp is not None:
                # A goodbye the server does not answer changes nothing.
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    self._smtp.quit()
            self._drop()

    def _transmit(self, email: ComposedEmail, recipient: str) -> None:
        if self._smtp is None:
            self._smtp = self._connect()
        # sendmail with the bytes: MAIL, RCPT, DATA and nothing else per message (no
        # RSET or NOOP unless the server refused something), and no second flattening
        # of the message as send_message did.
        options = SMTPUTF8_OPTIONS if email.smtputf8 else ()
        self._smtp.sendmail(self._envelope_from, [recipient], email.data, options)

    def _connect(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _after_failure(self, exc: BaseException) -> None:
        # After a refusal of this message smtplib has reset the session (RSET) and the
        # connection can carry the next one; after anything else (a timeout, a 421
        # "closing", a broken socket) its state is unknown: start afresh next time.
        refusal = (
            smtplib.SMTPRecipientsRefused,
            smtplib.SMTPSenderRefused,
            smtplib.SMTPDataError,
        )
        if not isinstance(exc, refusal) or getattr(exc, "smtp_code", 0) == 421:
            self._drop()

    def _drop(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(OSError):
                self._smtp.close()
        self._smtp = None

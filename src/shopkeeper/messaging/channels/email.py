"""Email over SMTP, with the standard library's smtplib and email packages.

`build_email` is pure (the message as it will be sent); `SmtpEmail` holds one SMTP
connection across sends, because a broadcast to thousands of people should not pay a
TCP handshake, EHLO, STARTTLS and AUTH per message.
"""

from __future__ import annotations

import contextlib
import hashlib
import smtplib
import ssl
import threading
import time
from collections.abc import Mapping
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, parseaddr

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


def _refuse(reason: str) -> ProviderError:
    # The message as rendered can never be sent: trying again gives the same refusal.
    return ProviderError(reason, retryable=False)


def _has_line_break(text: str) -> bool:
    return any(char in text for char in "\r\n\0")


def _is_header_name(name: str) -> bool:
    # RFC 5322 field name: printable US-ASCII except the colon.
    return bool(name) and all(33 <= ord(char) <= 126 and char != ":" for char in name)


def sender_domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    domain = address.rpartition("@")[2]
    return domain or "shopkeeper.invalid"


def message_id_for(idempotency_key: str, sender: str) -> str:
    """A Message-ID that only depends on the idempotency key (and the sending domain),
    so that a retry of the same message carries the same id and receivers that dedupe
    on it show it once. Hashed, because the key may hold characters a Message-ID cannot."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    return f"<{digest}@{sender_domain(sender)}>"


def build_email(message: Outgoing, sender: str, *, sent_at_s: float) -> EmailMessage:
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

    email = EmailMessage(policy=SMTP_POLICY)
    email["From"] = sender
    try:
        email["To"] = recipient
    except (ValueError, IndexError):
        raise _refuse(f"{recipient!r} is not an email address.") from None
    email["Subject"] = subject
    email["Date"] = formatdate(sent_at_s, usegmt=True)
    email["Message-ID"] = message_id_for(message.idempotency_key, sender)
    if message.unsubscribe_url:
        if _has_line_break(message.unsubscribe_url) or ">" in message.unsubscribe_url:
            raise _refuse("The unsubscribe URL contains a line break or '>'.")
        # RFC 8058: mail clients show an unsubscribe button and POST to the URL with one
        # click, without opening a page (and Gmail and Yahoo require it of bulk senders).
        email["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
        email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in _extra_headers(content.get("headers")):
        email[name] = value

    if text and html:
        email.set_content(str(text))
        email.add_alternative(str(html), subtype="html")
    elif html:
        email.set_content(str(html), subtype="html")
    else:
        email.set_content(str(text))
    return email


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
        self._envelope_from = parseaddr(sender)[1] or sender
        self._smtp: smtplib.SMTP | None = None
        # One SMTP conversation at a time: smtplib's connection is not thread-safe.
        self._lock = threading.Lock()

    def send(self, message: Outgoing) -> Delivered:
        email = build_email(message, self.sender, sent_at_s=time.time())
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
        return Delivered(provider_id=str(email["Message-ID"]))

    def close(self) -> None:
        with self._lock:
            if self._smtp is not None:
                # A goodbye the server does not answer changes nothing.
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    self._smtp.quit()
            self._drop()

    def _transmit(self, email: EmailMessage, recipient: str) -> None:
        if self._smtp is None:
            self._smtp = self._connect()
        self._smtp.send_message(email, from_addr=self._envelope_from, to_addrs=[recipient])

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

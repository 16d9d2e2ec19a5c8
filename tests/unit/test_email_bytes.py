"""The email as it goes over SMTP: `email_bytes` writes the RFC 5322/MIME text itself
(the email package's EmailMessage cost 2.5 ms a message), so these parse what it writes
with the standard library's parser and check that it says what was meant, in lines
that mail servers take."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopkeeper.messaging.channels.base import Outgoing, ProviderError
from shopkeeper.messaging.channels.email import (
    build_email,
    compose_email,
    email_bytes,
    message_id_for,
)

SENDER = "Hjørnebutikken Åse <shop@corner.example>"
SENT_AT = 1_700_000_000.0
UNSUBSCRIBE = "https://sk.nordic.example/u/123/abcdefabcdef0123456789"
TEXT = (
    "Hei Åse,\n\nDu la igjen en tekanne i handlekurven. Den venter fortsatt på deg, og vi "
    "holder den av i 48 timer til.\n\nMeld deg av: " + UNSUBSCRIBE + "\n"
)
HTML = (
    "<html><body><p>Hei Åse,</p><p>Du la igjen en <b>tekanne</b> i handlekurven.</p>"
    '<p><a href="https://shop.example/c/abc?u=1&amp;v=2">Fullfør kjøpet</a></p>'
    '<p style="font-size:12px">Meld deg av: <a href="' + UNSUBSCRIBE + '">her</a></p>'
    "</body></html>"
)


def outgoing(content: dict[str, Any], **more: Any) -> Outgoing:
    recipient = more.pop("recipient", "ase@example.org")
    return Outgoing(1, more.pop("key", "k-1"), "email", recipient, content, **more)


def written(content: dict[str, Any], **more: Any) -> bytes:
    return email_bytes(outgoing(content, **more), SENDER, sent_at_s=SENT_AT)


def parse(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def as_read(value: str) -> str:
    """`value` as a reader gets it back: CR, LF and CRLF all end a line, and the body
    ends with a line break."""
    return "".join(line.decode() + "\n" for line in value.encode().splitlines())


def content_of(part: EmailMessage | None) -> str:
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def header_lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def test_a_typical_email_round_trips() -> None:
    data = written(
        {
            "subject": "Åse, du glemte noe i handlekurven",
            "text": TEXT,
            "html": HTML,
            "headers": {"X-Journey": "abandoned-cart"},
        },
        unsubscribe_url=UNSUBSCRIBE,
    )
    parsed = parse(data)
    assert parsed["Subject"] == "Åse, du glemte noe i handlekurven"
    [sender] = parsed["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Hjørnebutikken Åse", "shop@corner.example")
    assert parsed["To"] == "ase@example.org"
    assert parsed["Date"] == "Tue, 14 Nov 2023 22:13:20 +0000"
    assert parsed["Message-ID"] == message_id_for("k-1", SENDER)
    assert parsed["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["X-Journey"] == "abandoned-cart"
    assert parsed["MIME-Version"] == "1.0"
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)
    assert content_of(parsed.get_body(("plain",))) == TEXT
    assert content_of(parsed.get_body(("html",))) == as_read(HTML)
    assert parsed.defects == []
    assert all(part.defects == [] for part in parts)


def test_lines_end_in_crlf_are_short_and_ascii() -> None:
    long_html = "<p>" + "Åse kjøper en tekanne. " * 300 + "</p>" + "<td>x</td>" * 500
    data = written(
        {"subject": "Tilbud: " + "støpejern " * 30, "text": "a" * 2000, "html": long_html},
        unsubscribe_url=UNSUBSCRIBE,
    )
    without_crlf = data.replace(b"\r\n", b"")
    assert b"\r" not in without_crlf
    assert b"\n" not in without_crlf
    assert data.isascii()
    assert max(len(line) for line in data.split(b"\r\n")) <= 78
    parsed = parse(data)
    assert content_of(parsed.get_body(("html",))) == long_html + "\n"
    assert content_of(parsed.get_body(("plain",))) == "a" * 2000 + "\n"
    assert parsed["Subject"] == "Tilbud: " + "støpejern " * 30


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        ("Plain ASCII, short lines.\n", "7bit"),
        ("x" * 79, "quoted-printable"),
        ("Du la igjen en tekanne i handlekurven, og den venter på deg.", "quoted-printable"),
        ("Ваша корзина ждёт вас", "base64"),
        ("カートに商品が残っています", "base64"),
    ],
)
def test_each_body_gets_the_shorter_safe_encoding(body: str, encoding: str) -> None:
    parsed = parse(written({"subject": "s", "text": body}))
    assert parsed["Content-Transfer-Encoding"] == encoding
    assert content_of(parsed) == as_read(body)


def test_line_breaks_in_bodies_become_crlf_and_other_separators_stay() -> None:
    body = "one\ntwo\r\nthree\rfour\u2028still four\x0cand this"
    data = written({"subject": "s", "text": body})
    assert content_of(parse(data)) == "one\ntwo\nthree\nfour\u2028still four\x0cand this\n"


@pytest.mark.parametrize(
    "subject",
    [
        "",
        "Hi",
        "Your cart misses you, Åse",
        "Åse  og  Øystein",
        "a  Å",
        "Å  a",
        "  leading spaces",
        " Å",
        " ",
        "trailing  ",
        "looks encoded =?utf-8?q?x?= but is not",
        "tab\there",
        "control \x01\x7f characters",
        "x" * 200,
        "Åse " * 40,
        "カートに商品が残っています" * 5,
        "emoji 🫖 teapot",
    ],
)
def test_subjects_round_trip_in_short_lines(subject: str) -> None:
    data = written({"subject": subject, "text": "x"})
    assert parse(data)["Subject"] == subject
    assert data.isascii()
    assert max(len(line) for line in header_lines(data)) <= 78


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_characters="\r\n\0", blacklist_categories=("Cs",))))
def test_any_subject_round_trips(subject: str) -> None:
    data = written({"subject": subject, "text": "x"})
    assert parse(data)["Subject"] == subject
    assert max(len(line) for line in header_lines(data)) <= 998


@settings(max_examples=200, deadline=None)
@given(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1),
)
def test_any_bodies_round_trip(text: str, html: str) -> None:
    data = written({"subject": "s", "text": text, "html": html})
    parsed = parse(data)
    assert content_of(parsed.get_body(("plain",))) == as_read(text)
    assert content_of(parsed.get_body(("html",))) == as_read(html)
    assert data.isascii()
    assert max(len(line) for line in data.split(b"\r\n")) <= 78


def test_a_body_cannot_end_its_part_early() -> None:
    # What a boundary line would look like, in the content: the boundary is random and
    # checked against the content, so the parts stay whole.
    text = "--=_\n--=_00000000000000000000000000000000--\n--\n"
    parsed = parse(written({"subject": "s", "text": text, "html": "<p>--=_</p>"}))
    assert len(list(parsed.iter_parts())) == 2
    assert content_of(parsed.get_body(("plain",))) == text


def test_one_body_is_a_single_part() -> None:
    html_only = parse(written({"subject": "s", "html": "<p>Hei</p>"}))
    assert html_only.get_content_type() == "text/html"
    assert content_of(html_only) == "<p>Hei</p>\n"
    text_only = parse(written({"subject": "s", "text": "Hei"}))
    assert text_only.get_content_type() == "text/plain"
    assert not text_only.is_multipart()


def test_extra_headers_are_written_as_given_or_encoded() -> None:
    long_value = " ".join(["campaign-spring-2024"] * 10)
    parsed = parse(
        written(
            {
                "text": "x",
                "headers": {
                    "X-Campaign": long_value,
                    "X-Note": "Åse's note",
                    "Reply-To": "Kundeservice Åse <help@corner.example>",
                },
            }
        )
    )
    assert parsed["X-Campaign"] == long_value
    assert parsed["X-Note"] == "Åse's note"
    [reply_to] = parsed["Reply-To"].addresses
    assert (reply_to.display_name, reply_to.addr_spec) == (
        "Kundeservice Åse",
        "help@corner.example",
    )


def test_an_unsubscribe_url_is_written_whole() -> None:
    url = "https://shop.example/avmeld/ø?t=" + "a" * 150
    parsed = parse(written({"text": "x"}, unsubscribe_url=url))
    assert parsed["List-Unsubscribe"] == "<https://shop.example/avmeld/%C3%B8?t=" + "a" * 150 + ">"
    with pytest.raises(ProviderError, match="too long"):
        written({"text": "x"}, unsubscribe_url="https://shop.example/" + "a" * 1000)


@pytest.mark.parametrize(
    ("content", "more", "match"),
    [
        ({"subject": "s", "text": "broken \ud800 surrogate"}, {}, "not valid Unicode"),
        ({"subject": "\udfff", "text": "x"}, {}, "not valid Unicode"),
        ({"text": "x", "headers": {"Resent-Bcc": "all@example.org"}}, {}, "cannot be replaced"),
        ({"text": "x"}, {"unsubscribe_url": "https://x/>, <mailto:a@b"}, "'>'"),
        ({"text": "x"}, {"recipient": "a@"}, "not an email address"),
    ],
)
def test_what_cannot_be_written_is_refused(
    content: dict[str, Any], more: dict[str, Any], match: str
) -> None:
    with pytest.raises(ProviderError, match=match) as caught:
        written(content, **more)
    assert not caught.value.retryable


def test_a_non_ascii_mailbox_needs_smtputf8() -> None:
    ascii_mail = compose_email(outgoing({"text": "x"}), SENDER, sent_at_s=SENT_AT)
    assert not ascii_mail.smtputf8
    international = compose_email(
        outgoing({"subject": "Hei", "text": "x"}, recipient="åse@eksempel.no"),
        SENDER,
        sent_at_s=SENT_AT,
    )
    assert international.smtputf8
    assert b"\r\nTo: \xc3\xa5se@eksempel.no\r\n" in international.data
    assert international.message_id == message_id_for("k-1", SENDER)


def test_build_email_is_the_same_message_parsed() -> None:
    message = outgoing({"subject": "Åse", "text": TEXT, "html": HTML}, unsubscribe_url=UNSUBSCRIBE)
    built = build_email(message, SENDER, sent_at_s=SENT_AT)
    sent = parse(email_bytes(message, SENDER, sent_at_s=SENT_AT))
    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe"):
        assert str(built[name]) == str(sent[name])
    assert content_of(built.get_body(("plain",))) == TEXT
    assert content_of(built.get_body(("html",))) == as_read(HTML)

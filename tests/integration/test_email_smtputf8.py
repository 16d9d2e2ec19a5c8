"""Email to a mailbox whose name is not ASCII (RFC 6531) against a real aiosmtpd: the
adapter writes the message bytes itself and hands them to smtplib's sendmail, so it asks
for SMTPUTF8 itself too (send_message used to)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiosmtpd.controller import Controller

from shopkeeper.messaging.channels.email import SmtpEmail
from tests.integration.channel_servers import (
    MailRecorder,
    SmtpServer,
    free_port,
    outgoing,
    refusal,
)

SENDER = "Hjørnebutikken <shop@corner.example>"
CONTENT = {
    "subject": "Handlekurven din venter, Åse",
    "text": "Du la igjen en tekanne.",
    "html": "<p>Du la igjen en <b>tekanne</b>.</p>",
}


@contextmanager
def smtputf8_server(enabled: bool) -> Iterator[SmtpServer]:
    recorder = MailRecorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, enable_SMTPUTF8=enabled)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, recorder)
    finally:
        controller.stop()


def channel_for(server: SmtpServer) -> SmtpEmail:
    return SmtpEmail(server.host, server.port, None, None, False, SENDER, 5.0)


def test_a_non_ascii_mailbox_goes_out_with_smtputf8() -> None:
    with smtputf8_server(enabled=True) as server:
        channel = channel_for(server)
        delivered = channel.send(outgoing("email", "åse@eksempel.no", CONTENT))
        # The next message, to an ASCII address, goes as before on the same connection.
        channel.send(outgoing("email", "ase@example.org", CONTENT, key="other"))
        channel.close()
        first, second = server.recorder.received
    assert first.rcpt_tos == ["åse@eksempel.no"]
    assert b"\r\nTo: \xc3\xa5se@eksempel.no\r\n" in first.raw
    parsed = first.message
    assert parsed["Message-ID"] == delivered.provider_id
    assert parsed["Subject"] == "Handlekurven din venter, Åse"
    assert second.rcpt_tos == ["ase@example.org"]
    assert second.raw.isascii()
    assert second.peer == first.peer


def test_a_server_without_smtputf8_refuses_for_good() -> None:
    with smtputf8_server(enabled=False) as server:
        channel = channel_for(server)
        error = refusal(channel, outgoing("email", "åse@eksempel.no", CONTENT))
        channel.close()
        assert server.recorder.received == []
    assert not error.retryable
    assert "SMTPUTF8" in error.reason

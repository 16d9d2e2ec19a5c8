"""What delivery writes back to each message's row, on SQLite and PostgreSQL, when one
written group mixes outcomes that change different columns (sent, retried, failed,
skipped): every row gets its own values, and only its own."""

from __future__ import annotations

import sqlalchemy as sa

from shopkeeper.storage import tables as t
from tests.harness import NOW
from tests.integration.test_delivery_batches import person, queue, save_template, smtp_harness


def test_one_group_of_mixed_outcomes_writes_each_row_its_own_values(db_url: str) -> None:
    with smtp_harness(db_url, message_max_attempts=2, message_retry_seconds=60) as (smtp, h):
        smtp.recorder.rcpt_replies["bo@example.com"] = "450 4.2.0 Mailbox busy"
        smtp.recorder.rcpt_replies["cy@example.com"] = "550 5.1.1 No such user"
        save_template(h, "hello", {"subject": "Hello {{ profile.first_name }}", "text": "Hi"})
        ana, bo, cy = person(h, "ana"), person(h, "bo"), person(h, "cy")
        dee, eve = person(h, "dee", consent=False), person(h, "eve")
        fay = person(h, "fay", email=False)
        people = (ana, bo, cy, dee, eve, fay)
        ids = [queue(h, f"o:{n}", pid) for n, pid in enumerate(people)]
        deliverer = h.services.deliverer
        assert deliverer is not None
        assert deliverer.run_once(NOW) == len(ids)
        m = t.messages
        with h.services.db.read() as conn:
            rows = {
                int(r.id): r
                for r in conn.execute(
                    sa.select(
                        m.c.id, m.c.status, m.c.reason, m.c.recipient, m.c.provider_id,
                        m.c.sent_at, m.c.send_at, m.c.lease_until, m.c.content, m.c.locale,
                    ).where(m.c.id.in_(ids))
                )
            }  # fmt: skip
        sent, retried, failed, skipped, sent_too, skipped_too = (rows[i] for i in ids)

        assert (sent.status, sent.reason, sent.recipient) == ("sent", None, "ana@example.com")
        assert sent.sent_at == NOW
        assert sent.provider_id
        assert sent.content["subject"] == "Hello Ana"
        assert sent.locale is not None

        assert retried.status == "queued"
        assert retried.reason.startswith("retrying: ")
        assert retried.send_at == NOW + 60_000
        assert retried.sent_at is None
        assert retried.recipient is None
        assert retried.content["subject"] == "Hello Bo"

        assert failed.status == "failed"
        assert "No such user" in failed.reason
        assert failed.recipient == "cy@example.com"
        assert failed.sent_at is None
        assert failed.content["subject"] == "Hello Cy"

        assert (skipped.status, skipped.reason) == ("skipped", "no consent for email")
        assert skipped.content is None
        assert skipped.recipient is None
        assert skipped.send_at == NOW

        # The same columns as another's in the group, other values.
        assert (sent_too.status, sent_too.recipient) == ("sent", "eve@example.com")
        assert sent_too.content["subject"] == "Hello Eve"
        assert sent_too.provider_id != sent.provider_id
        assert (skipped_too.status, skipped_too.reason) == ("skipped", "no email address")

        assert all(row.lease_until is None for row in rows.values())
        assert [r.rcpt_tos for r in smtp.recorder.received] == [
            ["ana@example.com"],
            ["eve@example.com"],
        ]

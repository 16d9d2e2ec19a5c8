"""The development channel: it sends nothing.

The message's row in the database already holds everything that would have gone out,
so that row is the outbox, and the admin UI shows it like a mail catcher. With every
channel on the outbox (the default) development and the demo run without providers.
"""

from __future__ import annotations

from shopkeeper.messaging.channels.base import Delivered, Outgoing


class Outbox:
    def __init__(self, channel: str) -> None:
        self.name = channel

    def send(self, message: Outgoing) -> Delivered:
        return Delivered(provider_id=f"outbox:{message.message_id}")

    def close(self) -> None:
        """Nothing to release."""

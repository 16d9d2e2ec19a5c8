"""A CRM customer row -> an `identify` message. Pure.

The customer id becomes the userId. A customer known only by email (or phone) gets a
stable anonymous id derived from it, and the email as a trait, so that identity
resolution links the row to whoever else holds that email. Consents become the traits
the profile reducers read (`email_opt_in`, `sms_opt_in`: see profiles/consents.py).

The message's timestamp is the row's `updated_at` when the file has one, else none (the
time of the import): a CRM export describes the customer as they are now, so its traits
and consents should win over older ones. Signup dates go to the `createdAt` trait.
"""

from __future__ import annotations

from typing import Any

from shopkeeper.imports import values as v
from shopkeeper.imports.mapping import MappedRow

_NAMES = (("first_name", "firstName"), ("last_name", "lastName"), ("name", "name"),
          ("gender", "gender"), ("birthday", "birthday"))  # fmt: skip
_ADDRESS = (("street", "street"), ("city", "city"), ("postal_code", "postalCode"),
            ("state", "state"), ("country", "country"))  # fmt: skip


def customer_message(row: MappedRow) -> dict[str, Any]:
    who = v.contact(row, "the row has no customer id, email or phone; a customer needs one")
    email, phone = who.email, who.phone

    traits: dict[str, Any] = dict(row.extras)
    if email is not None:
        traits["email"] = email
    if phone is not None:
        traits["phone"] = phone
    for target, trait in _NAMES:
        value = v.text(row, target)
        if value is not None:
            traits[trait] = value
    address = _address(row, traits.get("address"))
    if address:
        traits["address"] = address
    created = v.iso(v.time_ms(row, "created_at"))
    if created is not None:
        traits["createdAt"] = created
    for target in ("email_opt_in", "sms_opt_in"):
        granted = v.flag(row, target)
        if granted is not None:
            traits[target] = granted

    message: dict[str, Any] = {"type": "identify", "traits": traits}
    message.update(who.identity())
    locale = v.text(row, "locale", 35)
    if locale is not None:
        message["context"] = {"locale": locale}
    updated = v.time_ms(row, "updated_at")
    if updated is not None:
        message["timestamp"] = v.iso(updated)
    return message


def _address(row: MappedRow, extra: Any) -> dict[str, Any]:
    """Segment's address trait. An `address` column that is a JSON object (JSON Lines)
    is the base; the separate address columns fill it in."""
    address: dict[str, Any] = dict(extra) if isinstance(extra, dict) else {}
    street = row.values.get("street")
    object_street = isinstance(street, dict)  # "address" took the street target
    if isinstance(street, dict):
        address.update(street)
    for target, key in _ADDRESS:
        if target == "street" and object_street:
            continue
        value = v.text(row, target)
        if value is not None:
            address[key] = value
    return address

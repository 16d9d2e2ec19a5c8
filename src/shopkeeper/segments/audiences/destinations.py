"""Where an audience may be sent: http(s) URLs whose host resolves only to public
addresses, so that an admin key cannot make the server call its own network (cloud
metadata at 169.254.169.254, a database on 10.x, the admin API on 127.0.0.1), unless the
operator allows private destinations (SHOPKEEPER_WEBHOOK_ALLOW_PRIVATE).

The check runs when an audience is saved and again before every request, because a
name's addresses can change in between.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

Resolver = Callable[..., Sequence[tuple[Any, ...]]]

MAX_URL_LENGTH = 2000


class DestinationRefused(ValueError):
    """The URL cannot be used; the message says why, for the person who typed it."""


def _address_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "a loopback address"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "not a unicast address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a public address"
    return None


def check_url(url: str, *, allow_private: bool, resolve: Resolver = socket.getaddrinfo) -> None:
    """Raise DestinationRefused unless `url` is an http(s) URL that may be called."""
    if len(url) > MAX_URL_LENGTH:
        raise DestinationRefused(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DestinationRefused(f"That is not a URL: {exc}.") from None
    if parts.scheme not in ("http", "https"):
        raise DestinationRefused("The URL must start with https:// (or http://).")
    host = parts.hostname
    if not host:
        raise DestinationRefused("The URL has no host name.")
    if parts.username is not None or parts.password is not None:
        raise DestinationRefused(
            "Put credentials in a header (Authorization), not in the URL: URLs end up in logs."
        )
    if allow_private:
        return
    try:
        infos = resolve(
            host, port or (443 if parts.scheme == "https" else 80), 0, socket.SOCK_STREAM
        )
    except (OSError, UnicodeError):
        raise DestinationRefused(f'The host name "{host}" cannot be resolved.') from None
    addresses = {str(info[4][0]).split("%", 1)[0] for info in infos}
    if not addresses:
        raise DestinationRefused(f'The host name "{host}" has no address.')
    # Every address: a name that resolves to one public and one private address would
    # otherwise let the connection go to the private one.
    for text in sorted(addresses):
        problem = _address_problem(ipaddress.ip_address(text))
        if problem is not None:
            raise DestinationRefused(
                f"{host} resolves to {text}, {problem}. Audiences are sent to public "
                "addresses only, unless the operator sets SHOPKEEPER_WEBHOOK_ALLOW_PRIVATE=true."
            )

"""The admin API's guard: a Bearer admin key. Write keys never open it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shopkeeper.admin.keys import AdminKey, verify_admin_key
from shopkeeper.errors import ApiError

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

_bearer = HTTPBearer(
    auto_error=False,
    description="An admin key from `shopkeeper keys create`, as `Authorization: Bearer sk_...`.",
)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AdminKey:
    services: Services = request.app.state.services
    if credentials is None:
        raise ApiError(
            401,
            "unauthorized",
            "The admin API needs an admin key: Authorization: Bearer <key> "
            "(create one with `shopkeeper keys create`).",
            headers=_CHALLENGE,
        )
    key = credentials.credentials
    if key.startswith("wk_"):
        raise ApiError(
            401,
            "unauthorized",
            "That is a source's write key; it can only send events. Use an admin key.",
            headers=_CHALLENGE,
        )
    found = verify_admin_key(services.db, key)
    if found is None:
        raise ApiError(401, "unauthorized", "Unknown or revoked admin key.", headers=_CHALLENGE)
    return found


Admin = Annotated[AdminKey, Depends(require_admin)]

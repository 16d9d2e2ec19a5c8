from __future__ import annotations

import pytest
from pydantic import ValidationError

from shopkeeper.config import Settings


def test_one_identity_limit_keeps_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPKEEPER_IDENTITY_LIMITS", '{"email": 1}')
    limits = Settings().identity_limits
    assert limits["email"] == 1
    assert limits["user_id"] == 1
    assert limits["anonymous_id"] == 1000


def test_a_limit_below_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPKEEPER_IDENTITY_LIMITS", '{"user_id": 0}')
    with pytest.raises(ValidationError, match="at least 1"):
        Settings()

"""Settings of the Twilio edge: what production requires, what development warns about."""

from __future__ import annotations

import pytest

from frontdesk.runtime.errors import SettingsError
from frontdesk.runtime.settings import load_settings, startup_warnings
from tests.support import base_env

SUBACCOUNT = "AC" + "5" * 32


def use(monkeypatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_production_refuses_to_start_without_public_url(tmp_path, monkeypatch):
    use(
        monkeypatch,
        base_env(tmp_path, APP_ENV="production", V2_BACKEND_URL="https://93.184.216.34/api"),
    )
    monkeypatch.delenv("PUBLIC_URL", raising=False)

    with pytest.raises(SettingsError) as caught:
        load_settings(None)

    (problem,) = caught.value.problems
    assert problem.startswith("PUBLIC_URL: is required in production")


def test_development_says_which_headers_it_trusts_without_public_url(tmp_path, monkeypatch):
    use(monkeypatch, base_env(tmp_path))
    monkeypatch.delenv("PUBLIC_URL", raising=False)

    warnings = startup_warnings(load_settings(None))

    (warning,) = [w for w in warnings if w.startswith("PUBLIC_URL")]
    assert "X-Forwarded-Proto" in warning and "X-Forwarded-Host" in warning


def test_twilio_key_lists_are_checked_and_their_secrets_never_shown(tmp_path, monkeypatch):
    use(
        monkeypatch,
        base_env(
            tmp_path,
            TWILIO_SUBACCOUNTS="ACnot-a-sid:secret-token-1,broken-entry",
            TWILIO_WEBHOOK_SIGNING_KEYS="KS1:",
            TWILIO_STREAM_SIGNATURE="sometimes",
            TWILIO_REGION="Ireland",
        ),
    )

    with pytest.raises(SettingsError) as caught:
        load_settings(None)

    names = sorted(p.split(":")[0] for p in caught.value.problems)
    assert names == [
        "TWILIO_REGION",
        "TWILIO_STREAM_SIGNATURE",
        "TWILIO_SUBACCOUNTS",
        "TWILIO_WEBHOOK_SIGNING_KEYS",
    ]
    assert "secret-token-1" not in " ".join(caught.value.problems)


def test_every_subaccount_token_and_signing_secret_is_redacted(tmp_path, monkeypatch):
    use(
        monkeypatch,
        base_env(
            tmp_path,
            TWILIO_SUBACCOUNTS=f"{SUBACCOUNT}:sub-token-0123",
            TWILIO_WEBHOOK_SIGNING_KEYS="KS1:key-secret-0123,KS2:key-secret-4567",
        ),
    )

    settings = load_settings(None)

    assert settings.twilio_auth_tokens[SUBACCOUNT] == "sub-token-0123"
    for secret in ("sub-token-0123", "key-secret-0123", "key-secret-4567"):
        assert secret in settings.secret_values()

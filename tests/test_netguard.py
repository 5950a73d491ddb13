"""The outbound URL policy (SSRF guard): production refuses what could reach inside."""

from __future__ import annotations

import pytest

from frontdesk.runtime import netguard
from frontdesk.runtime.errors import SettingsError
from frontdesk.runtime.settings import load_settings
from tests.support import base_env

FAKE_DNS = {
    "api.provider.example": ["93.184.216.34"],
    "sneaky.example": ["127.0.0.1"],
    "inside.example": ["93.184.216.34", "10.1.2.3"],
}


def fake_resolver(host: str) -> list[str]:
    try:
        return FAKE_DNS[host]
    except KeyError:
        raise OSError(f"cannot resolve {host}") from None


@pytest.fixture(autouse=True)
def fake_dns():
    token = netguard.resolver_var.set(fake_resolver)
    yield
    netguard.resolver_var.reset(token)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.provider.example/v1",
        "https://93.184.216.34/x",
        "wss://api.provider.example/tts",
    ],
)
def test_public_tls_urls_are_allowed_in_production(url):
    assert netguard.check_outbound_url(url, production=True) == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://api.provider.example/v1", "must use https"),
        ("ws://api.provider.example/tts", "must use wss"),
        ("https://127.0.0.1/v1", "non-public address"),
        ("https://10.0.0.8/v1", "non-public address"),
        ("https://169.254.169.254/latest/meta-data", "non-public address"),
        ("https://[::1]/v1", "non-public address"),
        ("https://[::ffff:127.0.0.1]/v1", "non-public address"),
        ("https://sneaky.example/v1", "non-public address sneaky.example (127.0.0.1)"),
        ("https://inside.example/v1", "non-public address"),
        ("https://user:pw@api.provider.example/", "credentials"),
        ("gopher://api.provider.example/", "scheme"),
    ],
)
def test_production_refuses_plain_and_non_public_urls(url, reason):
    problems = netguard.check_outbound_url(url, production=True)

    assert any(reason in p for p in problems), problems


def test_a_name_the_system_resolves_to_loopback_is_refused():
    token = netguard.resolver_var.set(netguard.system_resolver)
    try:
        problems = netguard.check_outbound_url("https://localhost/v1", production=True)
    finally:
        netguard.resolver_var.reset(token)

    assert any("non-public address localhost" in p for p in problems)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8081/v1", "ws://localhost:9000/tts", "http://10.0.0.8/x"]
)
def test_development_allows_loopback_and_plain_http(url):
    assert netguard.check_outbound_url(url, production=False) == []


def test_production_settings_name_every_refused_url(tmp_path, monkeypatch):
    env = base_env(
        tmp_path,
        APP_ENV="production",
        V2_BACKEND_URL="https://sneaky.example/api",
        OPENAI_BASE_URL="http://api.provider.example/v1",
        DASHBOARD_CALLS_URL="https://169.254.169.254/calls",
        INWORLD_TTS_URL="wss://api.provider.example/tts",
        PUBLIC_URL="https://frontdesk.plumbing.example",
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    with pytest.raises(SettingsError) as caught:
        load_settings(None)

    names = [p.split(":")[0] for p in caught.value.problems]
    # The default provider hosts do not resolve here; a name pointing nowhere is allowed.
    assert sorted(names) == ["DASHBOARD_CALLS_URL", "OPENAI_BASE_URL", "V2_BACKEND_URL"]

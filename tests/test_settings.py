"""Settings: every problem named at once, secrets never shown, optional ones warned about."""

from __future__ import annotations

import os

import pytest

from frontdesk.runtime.errors import SettingsError
from frontdesk.runtime.settings import REQUIRED, load_settings, masked
from tests.support import SECRETS, base_env, run_main


def test_serve_without_settings_exits_2_naming_every_required_key(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}

    code, _, stderr = run_main("serve", env=env, cwd=tmp_path)

    assert code == 2
    assert stderr.count("cannot start") == 1, "one message, not one per problem"
    for name in REQUIRED:
        assert f"{name} is required but not set" in stderr
    # Production is the default, and production needs PUBLIC_URL.
    assert "PUBLIC_URL: is required in production" in stderr
    assert "(7 problems)" in stderr


def test_malformed_values_are_named_together_with_missing_ones(tmp_path):
    env = base_env(
        tmp_path,
        PORT="-1",
        MAX_TURNS_PER_CALL="0",
        IDLE_REPROMPT_SECONDS="soon",
        DASHBOARD_JOBS_URL="ftp://dashboard.example.com/jobs",
        LOG_FORMAT="xml",
    )
    del env["OPENAI_API_KEY"]

    code, _, stderr = run_main("check", env=env, cwd=tmp_path)

    assert code == 2
    for expected in (
        "OPENAI_API_KEY is required but not set",
        "PORT:",
        "MAX_TURNS_PER_CALL:",
        "IDLE_REPROMPT_SECONDS:",
        "DASHBOARD_JOBS_URL: scheme 'ftp' is not allowed",
        "LOG_FORMAT:",
    ):
        assert expected in stderr
    assert "(6 problems)" in stderr


def test_check_prints_settings_with_secrets_masked(tmp_path):
    env = base_env(tmp_path, DASHBOARD_USER_EMAIL="owner@plumbing.example")

    code, stdout, stderr = run_main("check", env=env, cwd=tmp_path)

    assert code == 0, stderr
    assert "OPENAI_API_KEY" in stdout and "********" in stdout
    assert "owner@plumbing.example" in stdout
    for secret in SECRETS.values():
        assert secret not in stdout + stderr


def test_optional_settings_missing_are_warned_about_one_each(tmp_path):
    env = base_env(tmp_path)

    code, stdout, _ = run_main("check", env=env, cwd=tmp_path)

    assert code == 0
    for name in (
        "DASHBOARD_JOBS_URL",
        "DASHBOARD_CALLS_URL",
        "DASHBOARD_ALERTS_URL",
        "INWORLD_VOICE_ID",
        "DEEPGRAM_TTS_VOICE",
        "DASHBOARD_USER_EMAIL",
    ):
        assert sum(1 for line in stdout.splitlines() if line.startswith(f"warning: {name} ")) == 1


def test_a_secret_in_a_malformed_value_is_not_echoed(tmp_path, monkeypatch):
    secret = "ghp-this-should-never-show-anywhere"
    env = base_env(tmp_path, TWILIO_ACCOUNT_SID=secret)

    code, stdout, stderr = run_main("check", env=env, cwd=tmp_path)

    assert code == 2
    assert "TWILIO_ACCOUNT_SID" in stderr
    assert secret not in stdout + stderr


def test_env_file_is_read_beneath_the_environment(tmp_path, monkeypatch):
    env_file = tmp_path / "frontdesk.env"
    env = base_env(tmp_path)
    env_file.write_text("\n".join(f"{k}={v}" for k, v in env.items()) + "\nMAX_TURNS_PER_CALL=12\n")
    for key in env:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MAX_TURNS_PER_CALL", "7")

    settings = load_settings(env_file)

    assert settings.max_turns_per_call == 7, "the environment wins over the file"
    assert settings.openai_api_key.get_secret_value() == SECRETS["OPENAI_API_KEY"]


def test_a_missing_env_file_is_a_settings_error(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.env")


def test_masked_never_returns_a_secret(tmp_path, monkeypatch):
    for key, value in base_env(tmp_path).items():
        monkeypatch.setenv(key, value)

    rows = dict(masked(load_settings(None)))

    assert rows["TWILIO_AUTH_TOKEN"] == "********"
    assert rows["DASHBOARD_WEBHOOK_SECRET"] == "********"
    assert not set(SECRETS.values()) & set(rows.values())

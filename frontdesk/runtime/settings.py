"""Frontdesk's settings: read from the environment (and a ``.env`` file), validated at once.

Every problem is collected before anything starts, so an operator fixes a broken
deployment in one pass: :func:`load_settings` raises one :class:`SettingsError`
naming every missing or malformed setting. Secrets are ``SecretStr`` and are never
shown — not in logs, not by ``main.py check``, not in error messages.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, SettingsConfigDict

from frontdesk.runtime import netguard
from frontdesk.runtime.errors import SettingsError

logger = logging.getLogger(__name__)

REQUIRED = (
    "OPENAI_API_KEY",
    "DEEPGRAM_API_KEY",
    "INWORLD_API_KEY",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "V2_BACKEND_URL",
)
"""The settings without which Frontdesk refuses to start."""

DEFAULT_PROFILE = Path(__file__).resolve().parents[2] / "profiles" / "default.yaml"
HTTP = frozenset({"http", "https"})
WEBSOCKET = frozenset({"ws", "wss"})

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


class Settings(BaseSettings):
    """Every setting of Frontdesk; see ``.env.example`` for a line on each."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    # Declared first: the URL checks below read it.
    app_env: Literal["production", "development"] = "production"

    # Required.
    openai_api_key: SecretStr
    deepgram_api_key: SecretStr
    inworld_api_key: SecretStr
    twilio_account_sid: Annotated[str, Field(pattern=r"^AC[0-9a-fA-F]{32}$")]
    twilio_auth_token: SecretStr
    v2_backend_url: str

    # Optional: warned about when missing.
    dashboard_jobs_url: str | None = None
    dashboard_calls_url: str | None = None
    dashboard_alerts_url: str | None = None
    dashboard_webhook_secret: SecretStr | None = None
    dashboard_user_email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    inworld_voice_id: str | None = None
    deepgram_tts_voice: str | None = None

    # Operational.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    log_conversation: bool | None = None
    host: str = "0.0.0.0"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    admin_port: Annotated[int, Field(ge=0, le=65535)] = 8081
    public_url: Annotated[str | None, Field(validate_default=True)] = None
    request_read_timeout_seconds: PositiveFloat = 10.0
    max_concurrent_calls: PositiveInt = 50
    max_loop_lag_ms: Annotated[float, Field(ge=0)] = 150.0
    max_request_bytes: PositiveInt = 64 * 1024
    max_turns_per_state: PositiveInt = 5
    max_turns_per_call: PositiveInt = 30
    vad_stop_seconds: Annotated[float, Field(ge=0.1, le=2.0)] = 0.5
    idle_reprompt_seconds: PositiveFloat = 8.0
    max_call_seconds: PositiveFloat = 900.0
    provider_stall_seconds: PositiveFloat = 5.0
    tts_stall_seconds: PositiveFloat = 1.5
    shutdown_grace_seconds: PositiveFloat = 30.0
    restart_max: PositiveInt = 5
    restart_window_seconds: PositiveFloat = 60.0
    v2_request_timeout_seconds: PositiveFloat = 3.0
    v2_breaker_failures: PositiveInt = 3
    v2_breaker_reset_seconds: PositiveFloat = 60.0
    tts_breaker_failures: PositiveInt = 1
    tts_breaker_reset_seconds: PositiveFloat = 30.0
    dashboard_max_retry_seconds: PositiveFloat = 24 * 3600.0
    live_check_interval_seconds: Annotated[float, Field(ge=0.0)] = 300.0
    live_check_timeout_seconds: PositiveFloat = 5.0
    outbox_path: Path = Path("data/outbox.sqlite3")
    outbox_retention_days: PositiveFloat = 7.0
    agent_profile: Path = DEFAULT_PROFILE
    profiles_dir: Path | None = None
    openai_model: str = "gpt-4.1-mini"
    deepgram_stt_model: str = "nova-3"
    inworld_tts_model: str = "inworld-tts-1"

    # One base URL per provider, so the same program reaches emulators in development.
    openai_base_url: str = "https://api.openai.com/v1"
    deepgram_base_url: str = "https://api.deepgram.com"
    inworld_tts_url: str = "wss://api.inworld.ai/tts/v1/voice:streamBidirectional"
    twilio_api_base_url: str = "https://api.twilio.com"

    # The Twilio edge: who may sign webhooks, how streams are admitted, where to hang up.
    twilio_stream_signature: Literal["require", "verify-if-present"] = "verify-if-present"
    twilio_webhook_signing_keys: SecretStr | None = None
    twilio_subaccounts: SecretStr | None = None
    twilio_region: Annotated[str, Field(pattern=r"^[a-z]{2}[0-9]$")] | None = None
    twilio_edge: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")] | None = None

    # The operator console (GET /console): off unless a token is set.
    console_token: SecretStr | None = None
    console_show_transcripts: bool = False

    @field_validator("console_token")
    @classmethod
    def _console_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (it is the console's password)")
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip() == "":
            raise PydanticUseDefault()
        return value

    @field_validator("log_level", "log_format", "app_env", mode="before")
    @classmethod
    def _case_insensitive(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return value.upper() if value.lower() in _LEVELS else value.lower()

    @field_validator(
        "v2_backend_url",
        "dashboard_jobs_url",
        "dashboard_calls_url",
        "dashboard_alerts_url",
        "openai_base_url",
        "deepgram_base_url",
        "twilio_api_base_url",
    )
    @classmethod
    def _outbound_http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _checked_url(value, info, HTTP)

    @field_validator("inworld_tts_url")
    @classmethod
    def _outbound_websocket_url(cls, value: str, info: ValidationInfo) -> str:
        checked = _checked_url(value, info, WEBSOCKET)
        assert checked is not None
        return checked

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("app_env", "production") == "production":
                raise ValueError(
                    "is required in production: without it the stream URL and the signed "
                    "URL would come from headers any client can forge"
                )
            return None
        problems = netguard.check_outbound_url(value, production=False, schemes=HTTP)
        if info.data.get("app_env") == "production" and not value.startswith("https://"):
            problems.append("must use https in production (Twilio signs the https URL)")
        if problems:
            raise ValueError("; ".join(problems))
        return value.rstrip("/")

    @field_validator("twilio_webhook_signing_keys", "twilio_subaccounts")
    @classmethod
    def _pairs(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None:
            _parse_pairs(value.get_secret_value(), what=info.field_name or "")
        return value

    @field_validator("twilio_subaccounts")
    @classmethod
    def _subaccount_sids(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            for sid in _parse_pairs(value.get_secret_value(), what="subaccounts"):
                if not _ACCOUNT_SID.match(sid):
                    raise ValueError(f"{sid[:34]!r} is not an account SID (AC + 32 hex digits)")
        return value

    @property
    def twilio_rest_url(self) -> str:
        """Twilio's REST API root: the regional host when a region or edge is set.

        Calls placed through Twilio's IE1 or AU1 regions exist only there, so hanging
        them up must go to that region's host. An overridden ``TWILIO_API_BASE_URL``
        (the emulators) wins.
        """
        if self.twilio_api_base_url != DEFAULT_TWILIO_API or not (
            self.twilio_region or self.twilio_edge
        ):
            return self.twilio_api_base_url
        region = self.twilio_region or "us1"
        host = f"api.{self.twilio_edge}.{region}" if self.twilio_edge else f"api.{region}"
        return f"https://{host}.twilio.com"

    @property
    def twilio_signing_keys(self) -> dict[str, str]:
        """Webhook signing keys by key id (``TWILIO_WEBHOOK_SIGNING_KEYS``)."""
        if self.twilio_webhook_signing_keys is None:
            return {}
        return _parse_pairs(self.twilio_webhook_signing_keys.get_secret_value(), what="keys")

    @property
    def twilio_auth_tokens(self) -> dict[str, str]:
        """Auth token by account SID: the main account's, then each configured subaccount's."""
        tokens = {self.twilio_account_sid: self.twilio_auth_token.get_secret_value()}
        if self.twilio_subaccounts is not None:
            pairs = _parse_pairs(self.twilio_subaccounts.get_secret_value(), what="subaccounts")
            tokens.update({sid: token for sid, token in pairs.items() if sid not in tokens})
        return tokens

    @property
    def conversation_logged(self) -> bool:
        """Whether what callers and the bot say is logged (personal details: off in production)."""
        return self.log_conversation if self.log_conversation is not None else not self.production

    @property
    def production(self) -> bool:
        """Whether the production policy applies."""
        return self.app_env == "production"

    @property
    def voice_inworld(self) -> str:
        """The Inworld voice to speak with."""
        return self.inworld_voice_id or DEFAULT_INWORLD_VOICE

    @property
    def voice_deepgram(self) -> str:
        """The Deepgram TTS voice to fall back to."""
        return self.deepgram_tts_voice or DEFAULT_DEEPGRAM_VOICE

    def secret_values(self) -> list[str]:
        """Every secret value that is set, for redaction from logs."""
        values = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        # A list of pairs is one setting but several secrets; each is redacted on its own.
        values.extend(self.twilio_signing_keys.values())
        values.extend(list(self.twilio_auth_tokens.values())[1:])
        return values


DEFAULT_TWILIO_API = "https://api.twilio.com"
DEFAULT_INWORLD_VOICE = "Ashley"
DEFAULT_DEEPGRAM_VOICE = "aura-2-helena-en"
_LEVELS = {"debug", "info", "warning", "error", "critical"}
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")


def _parse_pairs(text: str, *, what: str) -> dict[str, str]:
    """``name:secret,name:secret`` as a dict; a malformed entry is named without its secret."""
    pairs: dict[str, str] = {}
    for index, entry in enumerate(text.split(","), start=1):
        name, separator, secret = entry.strip().partition(":")
        if not separator or not name.strip() or not secret.strip():
            raise ValueError(f"entry {index} is not name:secret (comma-separated {what})")
        pairs[name.strip()] = secret.strip()
    return pairs


def _checked_url(value: str | None, info: ValidationInfo, schemes: frozenset[str]) -> str | None:
    if value is None:
        return None
    production = info.data.get("app_env", "production") == "production"
    problems = netguard.check_outbound_url(value, production=production, schemes=schemes)
    if problems:
        raise ValueError("; ".join(problems))
    return value


def load_settings(env_file: str | Path | None = None) -> Settings:
    """Read and validate the settings, or raise one ``SettingsError`` naming every problem.

    Args:
        env_file: A ``.env`` file read beneath the environment (the environment wins).
            Without one, ``./.env`` is read if it exists.
    """
    if env_file is not None and not Path(env_file).is_file():
        raise SettingsError([f"env file {str(env_file)!r} does not exist"])
    chosen = env_file if env_file is not None else (".env" if Path(".env").is_file() else None)
    try:
        return Settings(_env_file=chosen)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise SettingsError(_describe_errors(exc)) from None


def _describe_errors(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        name = str(error["loc"][0]).upper() if error["loc"] else "(settings)"
        if error["type"] == "missing":
            problems.append(f"{name} is required but not set")
        else:
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {message}")
    return problems


def startup_warnings(settings: Settings) -> list[str]:
    """The warnings an operator should see at startup: optional settings left unset."""
    warnings = []
    for name in ("dashboard_jobs_url", "dashboard_calls_url", "dashboard_alerts_url"):
        if getattr(settings, name) is None:
            warnings.append(
                f"{name.upper()} is not set: those records wait in the outbox until it is"
            )
    if settings.dashboard_webhook_secret is None:
        warnings.append("DASHBOARD_WEBHOOK_SECRET is not set: dashboard records wait unsent")
    if settings.dashboard_user_email is None:
        warnings.append("DASHBOARD_USER_EMAIL is not set: records carry no user email")
    if settings.profiles_dir is not None and "agent_profile" in settings.model_fields_set:
        warnings.append("AGENT_PROFILE is ignored: the profiles in PROFILES_DIR are the businesses")
    if settings.inworld_voice_id is None:
        warnings.append(f"INWORLD_VOICE_ID is not set: using {DEFAULT_INWORLD_VOICE!r}")
    if settings.deepgram_tts_voice is None:
        warnings.append(f"DEEPGRAM_TTS_VOICE is not set: using {DEFAULT_DEEPGRAM_VOICE!r}")
    if settings.public_url is None:
        warnings.append(
            "PUBLIC_URL is not set: the headers X-Forwarded-Proto and X-Forwarded-Host "
            "(else the Host header and the connection's scheme) are trusted to say which URL "
            "Twilio signed and where the media stream is; any client can set them "
            "(development only)"
        )
    for name in _url_fields():
        value = getattr(settings, name)
        if value and settings.production and netguard.unresolved_hosts(value):
            warnings.append(f"{name.upper()}: host does not resolve right now")
    return warnings


def _url_fields() -> list[str]:
    return [name for name in Settings.model_fields if name.endswith("_url")]


def masked(settings: Settings) -> list[tuple[str, str]]:
    """Every setting as (ENV_NAME, shown value), secrets masked, for ``main.py check``."""
    rows = []
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            shown = "********"
        elif value is None:
            shown = "(not set)"
        else:
            shown = str(value)
        rows.append((name.upper(), shown))
    return rows

"""The whole configuration of a process: validated settings plus the agent profile."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from frontdesk.runtime.profile import AgentProfile, load_profile
from frontdesk.runtime.settings import Settings, load_settings


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Settings and the profile they point at, validated together."""

    settings: Settings
    profile: AgentProfile


def load_config(env_file: str | Path | None = None) -> Config:
    """Read and validate the settings, then the profile ``AGENT_PROFILE`` names.

    Raises:
        SettingsError: Naming every problem of the settings, or else of the profile.
    """
    settings = load_settings(env_file)
    return Config(settings=settings, profile=load_profile(settings.agent_profile))

"""The whole configuration of a process: validated settings, the agent profile, its knowledge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from frontdesk.knowledge.index import KnowledgeIndex
from frontdesk.runtime.profile import AgentProfile, load_profile
from frontdesk.runtime.settings import Settings, load_settings


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Settings and the profile they point at, validated together."""

    settings: Settings
    profile: AgentProfile
    knowledge: KnowledgeIndex | None = None
    """The profile's knowledge sources, indexed; ``None`` when it lists none."""


def load_config(env_file: str | Path | None = None) -> Config:
    """Read and validate the settings and the profile ``AGENT_PROFILE`` names; index its knowledge.

    Reads files: run it off the event loop once calls are served.

    Raises:
        SettingsError: Naming every problem of the settings, or else of the profile or
            its knowledge files.
    """
    settings = load_settings(env_file)
    profile = load_profile(settings.agent_profile)
    knowledge = KnowledgeIndex.build(profile.knowledge) if profile.knowledge else None
    return Config(settings=settings, profile=profile, knowledge=knowledge)

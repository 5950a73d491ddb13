"""The whole configuration of a process: validated settings, the agent profile, its knowledge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from frontdesk.knowledge.index import KnowledgeIndex
from frontdesk.runtime.businesses import Businesses, load_businesses
from frontdesk.runtime.profile import AgentProfile
from frontdesk.runtime.settings import Settings, load_settings


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Settings and the businesses they point at, validated together."""

    settings: Settings
    profile: AgentProfile
    """The first business's profile (the only one without ``PROFILES_DIR``)."""
    businesses: Businesses
    knowledge: KnowledgeIndex | None = None
    """The first profile's knowledge sources, indexed; ``None`` when it lists none."""

    def secret_values(self) -> list[str]:
        """Every secret of the settings and of the businesses, for redaction from logs."""
        return [*self.settings.secret_values(), *self.businesses.secret_values()]


def load_config(env_file: str | Path | None = None) -> Config:
    """Read and validate the settings and the businesses' profiles; index their knowledge.

    The profiles are ``PROFILES_DIR``'s, or the one ``AGENT_PROFILE`` names.

    Reads files: run it off the event loop once calls are served.

    Raises:
        SettingsError: Naming every problem of the settings, or else of the profile or
            its knowledge files.
    """
    settings = load_settings(env_file)
    businesses = load_businesses(settings, env_file=env_file)
    first = businesses.all[0]
    return Config(
        settings=settings, profile=first.profile, businesses=businesses, knowledge=first.knowledge
    )

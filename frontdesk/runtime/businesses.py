"""The businesses one deployment answers for: which number reaches which, and their own settings.

Without ``PROFILES_DIR`` there is one business, the profile ``AGENT_PROFILE`` names,
answering every number. With it, every ``*.yaml`` in that folder is a business: its id
(``id:``, else the file's name without ``.yaml``), the Twilio numbers it answers
(``numbers:``, E.164), and optionally its own dashboard (``dashboard:``, the webhook
secret named by ``secret_env``, never written in the file) and backend
(``backend: {url: ...}``); what a profile leaves out comes from the deployment's
``DASHBOARD_*`` and ``V2_BACKEND_URL`` settings. Loading names every problem of every
file at once: a number claimed twice (naming both files), a missing secret variable, a
URL the outbound policy refuses.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values
from pydantic import SecretStr

from frontdesk.knowledge.index import KnowledgeIndex
from frontdesk.runtime import netguard
from frontdesk.runtime.errors import SettingsError
from frontdesk.runtime.profile import AgentProfile, load_profile
from frontdesk.runtime.settings import HTTP, Settings

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MAX_BUSINESSES = 200
"""Profiles one deployment may hold: bounds the ``business`` label of every metric."""
RECORD_KINDS = ("call", "job", "alert")


@dataclass(frozen=True, slots=True, kw_only=True)
class Dashboard:
    """Where one business's records go, and the secret they are signed with."""

    jobs_url: str | None = None
    calls_url: str | None = None
    alerts_url: str | None = None
    secret: SecretStr | None = None
    user_email: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> Dashboard:
        """The deployment's own dashboard, from the ``DASHBOARD_*`` settings."""
        return cls(
            jobs_url=settings.dashboard_jobs_url,
            calls_url=settings.dashboard_calls_url,
            alerts_url=settings.dashboard_alerts_url,
            secret=settings.dashboard_webhook_secret,
            user_email=settings.dashboard_user_email,
        )

    def url(self, kind: str) -> str | None:
        """The webhook for records of ``kind`` (``call``, ``job`` or ``alert``)."""
        return {"call": self.calls_url, "job": self.jobs_url, "alert": self.alerts_url}.get(kind)


@dataclass(frozen=True, slots=True, kw_only=True)
class Business:
    """One business: its profile and knowledge, its numbers, its dashboard and backend."""

    id: str
    profile: AgentProfile
    knowledge: KnowledgeIndex | None
    source: Path
    numbers: frozenset[str]
    """The numbers it answers; empty when it is the deployment's only business (all of them)."""
    dashboard: Dashboard
    backend_url: str


@dataclass(frozen=True, slots=True)
class Businesses:
    """Every business of the deployment, found by the number dialled or by id."""

    all: tuple[Business, ...]
    every_number: bool = False
    """One business answering every number (no ``PROFILES_DIR``)."""

    def for_number(self, number: str) -> Business | None:
        """The business answering ``number`` (Twilio's ``To``), if any."""
        if self.every_number:
            return self.all[0]
        number = number.strip()
        return next((b for b in self.all if number in b.numbers), None)

    def get(self, business_id: str | None) -> Business | None:
        """The business with ``business_id``; with one business answering all, that one.

        (A stream announced before a reload renamed the one business is still its call.)
        """
        if self.every_number:
            return self.all[0]
        return next((b for b in self.all if b.id == business_id), None)

    def dashboard_of(self, business: str | None, settings: Settings) -> Dashboard | None:
        """Where a record of ``business`` goes; ``None`` if that business is gone.

        A record of no business (the deployment's own alerts) goes to the ``DASHBOARD_*``
        settings; with one business answering all, every record goes to its dashboard.
        """
        if business is None:
            return Dashboard.of(settings)
        if self.every_number:
            return self.all[0].dashboard
        found = self.get(business)
        return found.dashboard if found is not None else None

    def using_backend(self, url: str) -> list[str]:
        """The ids of the businesses whose backend is ``url``."""
        return [b.id for b in self.all if b.backend_url.rstrip("/") == url.rstrip("/")]

    def secret_values(self) -> list[str]:
        """Every business's dashboard secret, for redaction from logs."""
        return [
            b.dashboard.secret.get_secret_value()
            for b in self.all
            if b.dashboard.secret is not None and b.dashboard.secret.get_secret_value()
        ]


def load_businesses(settings: Settings, *, env_file: str | Path | None = None) -> Businesses:
    """Read and validate every business; raise one ``SettingsError`` naming every problem.

    Args:
        settings: The deployment's validated settings.
        env_file: The ``.env`` file the settings were read from: ``secret_env`` names are
            looked up in the environment first, then there.
    """
    environment = _environment(env_file)
    if settings.profiles_dir is None:
        profile = load_profile(settings.agent_profile)
        problems: list[str] = []
        business = _business(
            profile,
            source=Path(settings.agent_profile),
            business_id=profile.id or _id_from_name(Path(settings.agent_profile).stem),
            settings=settings,
            environment=environment,
            numbers=frozenset(),
            problems=problems,
            label="",
        )
        if problems:
            raise SettingsError(problems, what="agent profile")
        assert business is not None
        return Businesses((business,), every_number=True)
    return _load_folder(settings.profiles_dir, settings=settings, environment=environment)


def _load_folder(folder: Path, *, settings: Settings, environment: Mapping[str, str]) -> Businesses:
    if not folder.is_dir():
        raise SettingsError([f"PROFILES_DIR: {folder} is not a folder"])
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise SettingsError([f"PROFILES_DIR: {folder} holds no *.yaml profile"])
    if len(files) > MAX_BUSINESSES:
        raise SettingsError([f"PROFILES_DIR: {len(files)} profiles, at most {MAX_BUSINESSES}"])
    problems: list[str] = []
    found: list[Business] = []
    for path in files:
        try:
            profile = load_profile(path)
        except SettingsError as exc:
            problems.extend(f"{path.name}: {problem}" for problem in exc.problems)
            continue
        business_id = profile.id or path.stem
        if not ID_PATTERN.match(business_id):
            problems.append(
                f"{path.name}: the file's name is not a business id (lowercase letters, digits, "
                "- and _, at most 40); rename it or set id:"
            )
            continue
        if not profile.numbers:
            problems.append(f"{path.name}: numbers: list the Twilio numbers this business answers")
        business = _business(
            profile,
            source=path,
            business_id=business_id,
            settings=settings,
            environment=environment,
            numbers=frozenset(profile.numbers),
            problems=problems,
            label=f"{path.name}: ",
        )
        if business is not None:
            found.append(business)
    problems.extend(_clashes(found))
    if problems:
        raise SettingsError(problems, what="business profiles")
    return Businesses(tuple(found))


def _business(
    profile: AgentProfile,
    *,
    source: Path,
    business_id: str,
    settings: Settings,
    environment: Mapping[str, str],
    numbers: frozenset[str],
    problems: list[str],
    label: str,
) -> Business | None:
    """The business ``profile`` describes; its problems, led by ``label``, go to ``problems``."""
    before = len(problems)
    dashboard = Dashboard.of(settings)
    if profile.dashboard is not None:
        section = profile.dashboard
        for field in ("jobs_url", "calls_url", "alerts_url"):
            _check_url(getattr(section, field), f"{label}dashboard.{field}", settings, problems)
        secret = environment.get(section.secret_env, "").strip()
        if not secret:
            problems.append(
                f"{label}dashboard.secret_env: {section.secret_env} is not set "
                "(in the environment or the .env file)"
            )
        dashboard = Dashboard(
            jobs_url=section.jobs_url,
            calls_url=section.calls_url,
            alerts_url=section.alerts_url,
            secret=SecretStr(secret) if secret else None,
            user_email=section.user_email,
        )
    backend_url = settings.v2_backend_url
    if profile.backend is not None:
        _check_url(profile.backend.url, f"{label}backend.url", settings, problems)
        backend_url = profile.backend.url
    knowledge = None
    if profile.knowledge:
        try:
            knowledge = KnowledgeIndex.build(profile.knowledge)
        except SettingsError as exc:
            problems.extend(f"{label}{problem}" for problem in exc.problems)
    if len(problems) > before:
        return None
    return Business(
        id=business_id,
        profile=profile,
        knowledge=knowledge,
        source=source,
        numbers=numbers,
        dashboard=dashboard,
        backend_url=backend_url,
    )


def _check_url(url: str | None, where: str, settings: Settings, problems: list[str]) -> None:
    if url is None:
        return
    found = netguard.check_outbound_url(url, production=settings.production, schemes=HTTP)
    if found:
        problems.append(f"{where}: {'; '.join(found)}")


def _clashes(businesses: list[Business]) -> list[str]:
    """Two files with one id, or one number claimed by two files."""
    problems = []
    ids: dict[str, Business] = {}
    owners: dict[str, Business] = {}
    for business in businesses:
        first = ids.setdefault(business.id, business)
        if first is not business:
            problems.append(
                f"business id {business.id!r} is used by both {first.source.name} "
                f"and {business.source.name}"
            )
        for number in sorted(business.numbers):
            owner = owners.setdefault(number, business)
            if owner is not business:
                problems.append(
                    f"number {number} is claimed by both {owner.source.name} "
                    f"and {business.source.name}"
                )
    return problems


def _id_from_name(stem: str) -> str:
    """A business id made from a file name (one profile: any name works)."""
    made = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_")[:40]
    return made if ID_PATTERN.match(made) else "default"


def _environment(env_file: str | Path | None) -> dict[str, str]:
    """The process's environment over the ``.env`` file, as the settings read them."""
    chosen = env_file if env_file is not None else (".env" if Path(".env").is_file() else None)
    values: dict[str, str] = {}
    if chosen is not None and Path(chosen).is_file():
        values.update({k: v for k, v in dotenv_values(chosen).items() if v is not None})
    values.update(os.environ)
    return values

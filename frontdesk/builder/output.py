"""What the interview writes: the profile YAML, its knowledge folder and the settings still missing.

- ``<profiles>/<name>.yaml``: the profile, built over the edited profile's own data (so
  sections the interview does not ask about — prompts, voices, SMS templates — are
  kept), validated by the profile model and loaded back before the interview reports
  success. Comments of an edited file are not kept.
- ``<profiles>/knowledge/<name>/``: copies of the knowledge files given from outside the
  profile folder (files already inside it are referred to where they are).
- ``.env.<name>.missing`` in the current directory (mode 600): every setting this
  business still needs, known values filled in, secrets left blank, and
  ``MAX_CONCURRENT_CALLS`` from the capacity estimate. An existing ``.env`` is never
  touched; copy the lines you need into it.
"""

from __future__ import annotations

import copy
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values

from frontdesk.builder import answers, capacity
from frontdesk.builder.questions import Context
from frontdesk.builder.trades import LANGUAGE_NAMES
from frontdesk.runtime.profile import AgentProfile, load_profile
from frontdesk.runtime.settings import REQUIRED

REPOSITORY = Path(__file__).resolve().parents[2]
"""The repository root: the folder the server runs in, here and in the image."""
PROFILE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"


@dataclass(frozen=True, slots=True, kw_only=True)
class Written:
    """What the interview wrote."""

    profile_path: Path
    profile: AgentProfile
    env_path: Path
    missing: list[str]
    copied: list[Path]


def settings_in_use(env_file: Path = Path(".env")) -> dict[str, str]:
    """Settings already given: the ``.env`` file beneath the environment (non-empty only)."""
    found = {k: v for k, v in dotenv_values(env_file).items() if v} if env_file.is_file() else {}
    found.update({k: v for k, v in os.environ.items() if v})
    return found


def integrations(ctx: Context) -> list[str]:
    """The integrations chosen, with the hand-off when a number was given."""
    chosen = list(ctx.value("integrations") or [])
    if (ctx.value("office_number") or ctx.value("oncall_number")) and "handoff" not in chosen:
        chosen.append("handoff")
    return chosen


def urls(ctx: Context) -> dict[str, str]:
    """The outside systems' URLs given, by setting name."""
    found = {}
    for question, setting in (
        ("backend_url", "V2_BACKEND_URL"),
        ("dashboard_jobs_url", "DASHBOARD_JOBS_URL"),
        ("dashboard_calls_url", "DASHBOARD_CALLS_URL"),
        ("dashboard_alerts_url", "DASHBOARD_ALERTS_URL"),
    ):
        value = ctx.value(question)
        if value:
            found[setting] = value
    return found


def knowledge_plan(ctx: Context, name: str) -> list[tuple[Path, Path]]:
    """(source file, path inside the profile folder) of each knowledge file."""
    folder = ctx.profile_folder.resolve()
    plan = []
    for path in ctx.value("knowledge") or []:
        resolved = path.resolve()
        if resolved.is_relative_to(folder):
            plan.append((resolved, resolved.relative_to(folder)))
        else:
            # Two files of the same name from different folders must not overwrite each other.
            inside = Path("knowledge") / name / path.name
            taken = {str(p) for _, p in plan}
            number = 2
            while str(inside) in taken:
                inside = Path("knowledge") / name / f"{path.stem}-{number}{path.suffix}"
                number += 1
            plan.append((resolved, inside))
    return plan


def profile_data(ctx: Context, name: str) -> dict[str, Any]:
    """The profile as its YAML will hold it, over the edited profile's data."""
    data: dict[str, Any] = copy.deepcopy(ctx.existing) if ctx.existing else {}
    # An edited service keeps its id (the backend and past records know it by that).
    old_ids = {s.get("name"): s.get("id") for s in ctx.old("services") or []}
    taken: set[str] = set()
    services = []
    for service_name, description in ctx.value("services"):
        kept = old_ids.get(service_name)
        service_id = kept if kept and kept not in taken else answers.service_id(service_name, taken)
        taken.add(service_id)
        services.append({"id": service_id, "name": service_name, "description": description})
    weekly = {
        day: ({"open": span[0], "close": span[1]} if span else None)
        for day, span in ctx.value("hours").items()
    }
    data.update(
        {
            "business_name": ctx.value("business_name"),
            "agent_name": ctx.value("agent_name"),
            "greeting": ctx.value("greeting"),
            "services": services,
            "service_area": {"zips": ctx.value("zips") or [], "cities": ctx.value("cities") or []},
            "hours": {"timezone": ctx.value("timezone"), "weekly": weekly},
            "emergency": {
                "keywords": emergency_keywords(ctx),
                "safety_message": ctx.value("safety_message"),
            },
            "callback_promise": ctx.value("callback_promise"),
        }
    )
    data["languages"] = _languages(ctx)
    plan = knowledge_plan(ctx, name)
    old_titles = {s["path"]: s["title"] for s in (ctx.old("knowledge") or [])}
    data["knowledge"] = []
    titles: set[str] = set()
    for source, inside in plan:
        title = base = old_titles.get(str(inside), _title(source))
        number = 2
        while title in titles:
            title, number = f"{base} {number}", number + 1
        titles.add(title)
        data["knowledge"].append({"title": title, "path": str(inside)})
    data["numbers"] = ctx.value("numbers") or []
    data["handoff"] = _handoff(ctx, data.get("handoff") or {})
    chosen = ctx.value("integrations") or []
    sms = dict(data.get("sms") or {})
    sms["enabled"] = "sms" in chosen
    if "sms" in chosen:
        sms["from_number"] = ctx.value("sms_from")
        sms.pop("messaging_service_sid", None)
    data["sms"] = sms
    recording = dict(data.get("recording") or {})
    recording["enabled"] = "recording" in chosen
    if "recording" in chosen:
        recording["announce"] = ctx.value("recording_announce")
    data["recording"] = recording
    return data


def emergency_keywords(ctx: Context) -> list[str]:
    """The emergency words: the answered ones, then each other language's, once each."""
    words = list(ctx.value("emergency_keywords") or [])
    for code in ctx.languages()[1:]:
        words += ctx.value(f"{code}_emergency_keywords") or []
    return list(dict.fromkeys(words))


def _title(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ").strip().capitalize() or "Notes"


def _languages(ctx: Context) -> list[dict[str, Any]]:
    old = {lang.get("code"): lang for lang in ctx.old("languages") or []}
    made = []
    for position, code in enumerate(ctx.languages()):
        name, called = LANGUAGE_NAMES[code]
        language: dict[str, Any] = dict(old.get(code) or {"code": code, "name": name})
        language.setdefault("called", called)
        if position == 0:
            # The first language's texts are the profile's own.
            for text in ("greeting", "safety_message", "callback_promise"):
                language.pop(text, None)
        else:
            for text in ("greeting", "safety_message", "callback_promise"):
                language[text] = ctx.value(f"{code}_{text}")
        made.append(language)
    return made


def _handoff(ctx: Context, old: dict[str, Any]) -> dict[str, Any]:
    handoff = dict(old)
    targets = []
    office, oncall = ctx.value("office_number"), ctx.value("oncall_number")
    if office:
        targets.append(
            {
                "name": "Office",
                "number": office,
                "hours": "business",
                "use_for": ["request", "turn_limit"],
            }
        )
    if oncall:
        targets.append(
            {"name": "On call", "number": oncall, "hours": "always", "use_for": ["emergency"]}
        )
    handoff["targets"] = targets
    if not office:
        handoff.pop("dtmf_key", None)
    return handoff


def write(ctx: Context, name: str, data: dict[str, Any], env_dir: Path) -> Written:
    """Copy the knowledge files, write the profile and the missing settings; load it back.

    The profile is written beside its final name and loaded from there first: a profile
    that does not load never replaces the one in place.

    Raises:
        SettingsError: The written profile does not load.
        OSError: A file could not be copied or written.
    """
    folder = ctx.profile_folder
    folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for source, inside in knowledge_plan(ctx, name):
        target = folder / inside
        if source != target.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            copied.append(target)
    path = folder / f"{name}.yaml"
    header = (
        "# The business Frontdesk answers for, from `python main.py new`. Validate with:\n"
        f"#   AGENT_PROFILE={path} python main.py check\n"
    )
    temporary = path.with_suffix(".yaml.tmp")
    temporary.write_text(
        header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    )
    try:
        profile = load_profile(temporary)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)
    env_path, missing = write_missing_settings(ctx, path, env_dir / f".env.{name}.missing")
    return Written(
        profile_path=path, profile=profile, env_path=env_path, missing=missing, copied=copied
    )


def profile_setting(profile_path: Path) -> str:
    """``AGENT_PROFILE`` for a profile: relative to the repository root when inside it.

    The server runs from the repository root (``/app`` in the image, which copies
    ``profiles/``), so ``profiles/<name>.yaml`` names the same file on this machine and in
    the container; a profile kept elsewhere keeps its absolute path.
    """
    path = profile_path.resolve()
    root = REPOSITORY.resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def write_missing_settings(
    ctx: Context, profile_path: Path, target: Path
) -> tuple[Path, list[str]]:
    """Write the settings this business still needs; the names of those left blank."""
    known = urls(ctx)
    chosen = integrations(ctx)
    wanted: list[tuple[str, str, str]] = [
        ("AGENT_PROFILE", profile_setting(profile_path), "the profile the interview wrote"),
        ("PUBLIC_URL", "", "the https address Twilio reaches this server at"),
    ]
    wanted += [(name, known.get(name, ""), "required") for name in REQUIRED]
    if "dashboard" in chosen:
        for name in ("DASHBOARD_JOBS_URL", "DASHBOARD_CALLS_URL", "DASHBOARD_ALERTS_URL"):
            wanted.append((name, known.get(name, ""), "the dashboard's webhook"))
        wanted.append(("DASHBOARD_WEBHOOK_SECRET", "", "signs every dashboard webhook"))
    lines = [
        f"# Settings for {profile_path.stem}: what is still missing, from `python main.py new`.",
        "# Copy these lines into .env (this file never replaces it), fill in the blanks, then",
        "# run: python main.py check",
    ]
    estimate = capacity.estimate(
        calls_per_day=ctx.value("calls_per_day"), minutes=ctx.value("call_minutes")
    )
    per_process = -(-estimate.lines // estimate.processes)
    wanted.append(
        (
            "MAX_CONCURRENT_CALLS",
            str(per_process),
            f"calls at once per process, from the estimate ({estimate.processes} process(es))",
        )
    )
    missing = []
    for name, value, note in wanted:
        if ctx.env.get(name) and not value and name != "AGENT_PROFILE":
            lines.append(f"# {name} is already set")
            continue
        if not value:
            missing.append(name)
        lines.append(f"# {note}")
        lines.append(f"{name}={value}")
    # Owners fill the secrets in here: readable by them alone.
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write("\n".join(lines) + "\n")
    return target, missing

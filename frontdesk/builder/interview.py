"""``main.py new``: the interview in the terminal, from a description to a validated profile.

The flow: the profile's name; with a model available, a free-text description whose
facts are shown back for confirmation (:mod:`frontdesk.builder.assistant`); then every
question (:mod:`frontdesk.builder.questions`) with its default in brackets — Enter keeps
it, ``-`` clears an optional one; then a review where any field can be changed; then one
check naming every problem (:mod:`frontdesk.builder.limits`), back to the review until
there are none; then the files (:mod:`frontdesk.builder.output`), the resource estimate,
and the offer to run the pre-launch test.

Ctrl-C (or the end of input) at any prompt saves the answers so far to
``<profiles>/.drafts/<name>.json``; ``new --resume`` continues where it stopped.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml
from pydantic import ValidationError

from frontdesk.builder import answers, capacity, output
from frontdesk.builder.assistant import Assistant, AssistantUnavailable, BusinessFacts
from frontdesk.builder.limits import all_problems, clean_text
from frontdesk.builder.questions import QUESTIONS, QUESTIONS_BY_ID, Context, Question
from frontdesk.runtime.errors import SettingsError

ROOT = Path(__file__).resolve().parents[2]
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
CLEAR = "-"
TRY_TIMEOUT_SECONDS = 600.0


class Console(Protocol):
    """Where questions go and answers come from (the terminal, or a script in tests)."""

    def ask(self, prompt: str) -> str:
        """Show ``prompt`` and return the line typed (``EOFError``/``KeyboardInterrupt`` end it)."""
        ...

    def say(self, text: str) -> None:
        """Show ``text``."""
        ...


class Terminal:
    """The real terminal: ``input()`` and ``print()``."""

    def ask(self, prompt: str) -> str:
        """Read one line after ``prompt``."""
        return input(prompt)

    def say(self, text: str) -> None:
        """Print ``text``."""
        print(text, flush=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """What ``main.py new`` was asked to do."""

    name: str | None = None
    resume: bool = False
    profiles_dir: Path = ROOT / "profiles"
    env_dir: Path = Path(".")
    """Where ``.env.<name>.missing`` is written, and ``.env`` read (the current folder)."""
    env_file: Path | None = None
    """The settings file read for defaults, when not ``env_dir``'s ``.env``."""
    offer_try: bool = True


def run(console: Console, options: Options, assistant: Assistant | None) -> int:
    """Run the interview; the process exit code."""
    drafts = options.profiles_dir / ".drafts"
    ctx = Context(
        profile_folder=options.profiles_dir,
        env=output.settings_in_use(options.env_file or options.env_dir / ".env"),
    )
    name = options.name
    if options.resume:
        loaded = _load_draft(drafts, name)
        if loaded is None:
            console.say("No saved interview to resume; starting a new one.")
        else:
            name, ctx.answers, facts = loaded
            ctx.facts = _facts_or_none(facts)
            _drop_unreadable(ctx)
            console.say(f"Resuming the interview for {name!r}.")
    try:
        if name is None:
            name = _ask_name(console)
        _load_existing(console, ctx, options.profiles_dir / f"{name}.yaml")
        if ctx.facts is None and "description" not in ctx.answers:
            _assisted_start(console, ctx, assistant)
        for question in QUESTIONS:
            if question.when(ctx) and question.id not in ctx.answers:
                _ask(console, ctx, question)
        data = _review_until_valid(console, ctx, name)
    except (KeyboardInterrupt, EOFError):
        if name is not None:
            path = _save_draft(drafts, name, ctx)
            console.say(f"\nProgress saved to {path}. Continue with: python main.py new --resume")
        else:
            console.say("\nNothing to save yet.")
        return EXIT_INTERRUPTED
    try:
        written = output.write(ctx, name, data, options.env_dir)
    except (OSError, SettingsError) as exc:
        path = _save_draft(drafts, name, ctx)
        console.say(f"The profile could not be written: {exc}\nYour answers are kept in {path}.")
        return EXIT_FAILED
    (drafts / f"{name}.json").unlink(missing_ok=True)
    _report(console, ctx, written)
    if options.offer_try:
        _offer_try(console, written.profile_path)
    return EXIT_OK


def _facts_or_none(facts: dict | None) -> BusinessFacts | None:
    try:
        return BusinessFacts.model_validate(facts) if facts else None
    except ValidationError:
        return None


def _drop_unreadable(ctx: Context) -> None:
    """Forget saved answers that no longer read (a file moved since), so they are asked again."""
    for question_id in list(ctx.answers):
        question = QUESTIONS_BY_ID.get(question_id)
        if question is None:
            continue
        try:
            question.read(ctx.answers[question_id], ctx)
        except ValueError:
            del ctx.answers[question_id]


def _ask_name(console: Console) -> str:
    while True:
        raw = console.ask("Profile name (lowercase letters, digits, - or _) [my-business]: ")
        name = raw.strip() or "my-business"
        if re.match(output.PROFILE_NAME_PATTERN, name):
            return name
        console.say("  Use lowercase letters, digits, - and _ only (at most 40).")


def _load_existing(console: Console, ctx: Context, path: Path) -> None:
    if not path.is_file():
        return
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        console.say(f"{path} cannot be read ({exc}); its answers start from the defaults.")
        return
    if isinstance(data, dict):
        ctx.existing = data
        console.say(f"Editing {path}: each answer starts at its current value.")


def _assisted_start(console: Console, ctx: Context, assistant: Assistant | None) -> None:
    if assistant is None:
        console.say("(No OPENAI_API_KEY: the interview asks plain questions.)")
        return
    console.say(
        "Describe the business in a sentence or two: what you do, where, when you're open "
        "(Enter to skip)."
    )
    description = console.ask("> ").strip()
    ctx.answers["description"] = description
    if not description:
        return
    console.say("Reading that...")
    try:
        facts = assistant.extract(clean_text(description))
    except AssistantUnavailable as exc:
        console.say(f"(The assistant is not available: {exc.reason}. On with plain questions.)")
        return
    console.say("I understood:")
    for line in _facts_lines(facts):
        console.say(f"  {line}")
    while True:
        raw = console.ask("Use these as the answers' defaults? [Y/n]: ").strip().lower()
        if raw in ("", "y", "yes"):
            ctx.facts = facts
            return
        if raw in ("n", "no"):
            return
        console.say("  Answer y or n.")


def _facts_lines(facts: BusinessFacts) -> list[str]:
    lines = [
        f"business: {facts.business_name or '-'}",
        f"trades: {', '.join(facts.trades) or '-'}",
        "services: " + ("; ".join(f"{s.name}: {s.description}" for s in facts.services) or "-"),
        f"cities: {', '.join(facts.cities) or '-'}",
        f"ZIP codes: {' '.join(facts.zips) or '-'}",
        f"time zone: {facts.timezone or '-'}",
        f"hours: {_facts_hours(facts) or '-'}",
    ]
    if facts.callback_promise:
        lines.append(f"callback: {facts.callback_promise}")
    if facts.calls_per_day:
        lines.append(f"calls per day: {facts.calls_per_day}")
    if facts.average_call_minutes:
        lines.append(f"minutes per call: {facts.average_call_minutes:g}")
    return lines


def _facts_hours(facts: BusinessFacts) -> str:
    table: dict[str, answers.DayHours | None] = {}
    for span in facts.hours:
        for day in span.days:
            table[day] = (span.open, span.close)
    return answers.hours_text(table)


def _ask(console: Console, ctx: Context, question: Question, *, default: str | None = None) -> None:
    """Ask until the answer reads; store it as typed."""
    if default is None:
        default = question.default(ctx)
    hint = f" [{default}]" if default else ""
    clear = f" ('{CLEAR}' for none)" if question.optional and default else ""
    while True:
        raw = console.ask(f"{question.prompt}{clear}{hint}: ").strip()
        if raw == CLEAR and question.optional:
            raw = ""
        elif not raw:
            raw = default
        if not raw and not question.optional:
            console.say("  This one needs an answer.")
            continue
        try:
            value = question.read(raw, ctx)
        except ValueError as exc:
            console.say(f"  {exc}")
            continue
        if isinstance(value, str) and value != raw:
            # Cleaned (markup, control characters, spacing): the owner sees what is kept.
            console.say(f"  kept as: {value}")
            raw = value
        ctx.answers[question.id] = raw
        return


def _review_until_valid(console: Console, ctx: Context, name: str) -> dict:
    while True:
        _review(console, ctx)
        data = output.profile_data(ctx, name)
        problems = all_problems(
            data,
            ctx.profile_folder,
            integrations=output.integrations(ctx),
            urls=output.urls(ctx),
        )
        # Knowledge files are checked where they are now; they are copied on writing.
        problems = [p for p in problems if not p.startswith("knowledge.")]
        if not problems:
            return data
        console.say(f"The profile has {len(problems)} problem(s):")
        for problem in problems:
            console.say(f"  - {problem}")
        console.say("Change the fields named above (Ctrl-C keeps your answers for later).")


def _review(console: Console, ctx: Context) -> None:
    while True:
        shown = [q for q in QUESTIONS if q.when(ctx)]
        for question in shown:
            if question.id not in ctx.answers:
                _ask(console, ctx, question)
        console.say("\nReview:")
        for number, question in enumerate(shown, start=1):
            console.say(f"  {number:2d}. {question.label}: {ctx.answers.get(question.id) or '-'}")
        raw = console.ask("Change which (number; Enter if all is right)? ").strip()
        if not raw:
            return
        if not raw.isdigit() or not 1 <= int(raw) <= len(shown):
            console.say(f"  Give a number from 1 to {len(shown)}.")
            continue
        question = shown[int(raw) - 1]
        _ask(console, ctx, question, default=ctx.answers.get(question.id, ""))


def _report(console: Console, ctx: Context, written: output.Written) -> None:
    console.say(f"\nWrote {written.profile_path}")
    for path in written.copied:
        console.say(f"  knowledge file copied to {path}")
    console.say(f"Wrote {written.env_path}")
    if written.missing:
        console.say(f"  still to fill in: {', '.join(written.missing)}")
    console.say("")
    estimate = capacity.estimate(
        calls_per_day=ctx.value("calls_per_day"), minutes=ctx.value("call_minutes")
    )
    console.say(capacity.render(estimate))


def _offer_try(
    console: Console,
    profile: Path,
    runner: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> None:
    try:
        raw = console.ask("\nRun the pre-launch test on this profile now? [Y/n]: ").strip().lower()
    except (KeyboardInterrupt, EOFError):
        raw = "n"
    if raw not in ("", "y", "yes"):
        console.say(f"Later: python main.py try {profile}")
        return
    command = [sys.executable, str(ROOT / "main.py"), "try", str(profile)]
    try:
        done = runner(command, capture_output=True, text=True, timeout=TRY_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        console.say(f"The pre-launch test did not finish within {TRY_TIMEOUT_SECONDS:g} s.")
        return
    console.say(done.stdout.rstrip())
    if done.returncode != 0:
        console.say(done.stderr.rstrip())


def _save_draft(drafts: Path, name: str, ctx: Context) -> Path:
    drafts.mkdir(parents=True, exist_ok=True)
    path = drafts / f"{name}.json"
    facts = ctx.facts.model_dump(mode="json") if ctx.facts else None
    path.write_text(json.dumps({"name": name, "answers": ctx.answers, "facts": facts}, indent=2))
    return path


def _load_draft(drafts: Path, name: str | None) -> tuple[str, dict[str, str], dict | None] | None:
    if name is not None:
        candidates = [drafts / f"{name}.json"]
    else:
        candidates = sorted(drafts.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
            saved = {
                str(k): str(v)
                for k, v in data["answers"].items()
                if k in QUESTIONS_BY_ID or k == "description"
            }
            return str(data["name"]), saved, data.get("facts")
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None

"""``python main.py try``: run the adapted suite on one profile and print its report card.

Offline (the default) the receptionist model is the OpenAI emulator and the backend is
the backend emulator, both started here on loopback: no keys, no network, a few
seconds. With ``--live`` the same scenarios are played against the model named by
``OPENAI_MODEL`` at ``OPENAI_BASE_URL`` (the real one, with ``OPENAI_API_KEY``), plus
free-form callers a second model plays from a persona line (:data:`PERSONAS`); the
report card then shows the tokens used and what they cost (:data:`PRICES_PER_MILLION`).
The backend is the emulator either way, so nothing is booked for real.

The latest report card is written as JSON beside the profile, to
``<profile folder>/.reports/<profile name>.json`` (:func:`report_path`).
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from openai import AsyncOpenAI

from actors.v2_gateway import GatewayClient, GatewayMessage, V2Gateway
from emulators.backend import BackendEmulator
from emulators.calls import CallRegistry
from emulators.openai import OpenAIEmulator
from emulators.scenario import Backend as BackendSeed
from frontdesk.conversation.receptionist import Receptionist
from frontdesk.delivery.outbox import Outbox
from frontdesk.delivery.records import Record
from frontdesk.knowledge.index import KnowledgeIndex
from frontdesk.pretest import suite
from frontdesk.pretest.harness import CallResult, ChatModel, ModelError, ScriptedCaller, TextCall
from frontdesk.runtime.profile import WEEKDAYS, AgentProfile, load_profile

DEFAULT_MODEL = "gpt-4.1-mini"
BACKEND_TIMEOUT_SECONDS = 5.0
CALL_TIMEOUT_SECONDS = 120.0
PERSONA_TURNS = 12
PRICES_AS_OF = "2025-08-01"
PRICES_PER_MILLION: dict[str, tuple[float, float, float]] = {
    "gpt-4.1": (2.00, 0.50, 8.00),
    "gpt-4.1-mini": (0.40, 0.10, 1.60),
    "gpt-4.1-nano": (0.10, 0.025, 0.40),
    "gpt-4o": (2.50, 1.25, 10.00),
    "gpt-4o-mini": (0.15, 0.075, 0.60),
}
"""US dollars per million tokens (input, cached input, output), OpenAI's list prices as of
:data:`PRICES_AS_OF`. A model not listed is reported with its tokens and no cost."""
PERSONAS: tuple[str, ...] = (
    "an elderly caller who is hard of hearing and gives the address twice",
    "a busy parent in a hurry who answers in as few words as possible",
)


@dataclass(slots=True, kw_only=True)
class ScenarioReport:
    """One scenario's line on the report card."""

    name: str
    about: str
    passed: bool
    reasons: list[str]
    greeting_ms: float | None
    outcome: str | None
    states: list[str]
    tokens: int = 0
    transcript: list[list[str]] = field(default_factory=list)
    """The call, as (who, what) pairs: kept for a failure only."""


@dataclass(slots=True, kw_only=True)
class ReportCard:
    """What ``try`` found, as printed and as saved (JSON)."""

    profile: str
    business: str
    mode: str
    model: str
    ran_at: str
    business_clock: str
    """The time the calls were placed at, as the business's clock showed it."""
    scenarios: list[ScenarioReport]
    personas: list[ScenarioReport] = field(default_factory=list)
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    prices_as_of: str = PRICES_AS_OF
    greeting_latency_measures: str = (
        "call start to the greeting's text being ready: the caller lookup at the backend "
        "(bounded as in a real call) plus the receptionist's decision; no speech synthesis"
    )

    @property
    def passed(self) -> bool:
        """Whether every scenario and persona call passed."""
        return all(s.passed for s in (*self.scenarios, *self.personas))

    def to_json(self) -> dict[str, Any]:
        """The card as JSON (what :func:`report_path` holds)."""
        return {**asdict(self), "passed": self.passed}


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveModel:
    """The real model to test against (``--live``)."""

    api_key: str
    base_url: str
    model: str


class PretestError(Exception):
    """``try`` could not run at all (the profile is invalid, or the model unreachable)."""


def report_path(profile_path: Path) -> Path:
    """Where the latest report card of the profile at ``profile_path`` is saved."""
    return profile_path.parent / ".reports" / f"{profile_path.stem}.json"


def live_model_from_env(env: dict[str, str]) -> LiveModel:
    """The ``--live`` model from ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_MODEL``.

    Raises:
        PretestError: ``OPENAI_API_KEY`` is not set.
    """
    key = env.get("OPENAI_API_KEY", "").strip()
    if not key:
        raise PretestError("--live needs OPENAI_API_KEY (in the environment or --env-file)")
    return LiveModel(
        api_key=key,
        base_url=env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",
        model=env.get("OPENAI_MODEL") or DEFAULT_MODEL,
    )


def business_clock(profile: AgentProfile, now: datetime) -> datetime:
    """When the calls are placed: an hour after the business next opens (from ``now``).

    Fixed per run so a scenario's result does not depend on the hour ``try`` is run at.
    """
    local = now.astimezone(profile.hours.zone)
    for days in range(8):
        day = (local + timedelta(days=days)).date()
        hours = profile.hours.weekly.get(WEEKDAYS[day.weekday()])
        if hours is None:
            continue
        opening = datetime.combine(
            day, datetime.strptime(hours.open, "%H:%M").time(), profile.hours.zone
        )
        moment = opening + timedelta(hours=1)
        if moment > local and profile.hours.open_at(moment):
            return moment
    return local


async def pretest(
    profile_path: Path,
    *,
    only: Sequence[str] = (),
    live: LiveModel | None = None,
    personas: Sequence[str] = PERSONAS,
) -> ReportCard:
    """Run the suite adapted to the profile at ``profile_path``; save and return its card.

    Raises:
        PretestError: The profile is invalid, or ``only`` names no scenario of the suite.
        SettingsError: The profile (or its knowledge) is invalid, naming every problem.
    """
    profile = load_profile(profile_path)
    clock = business_clock(profile, datetime.now().astimezone())
    scenarios = suite.adapt(profile, clock)
    if only:
        unknown = sorted(set(only) - {s.name for s in scenarios})
        if unknown:
            names = ", ".join(s.name for s in scenarios)
            raise PretestError(f"no scenario {', '.join(unknown)} in this suite (it has {names})")
        scenarios = [s for s in scenarios if s.name in only]
    knowledge = KnowledgeIndex.build(profile.knowledge) if profile.knowledge else None
    receptionist = Receptionist(profile, knowledge=knowledge is not None)
    async with _Rig(live) as rig:
        reports = []
        for scenario in scenarios:
            rig.backend.seed(BackendSeed(customers=list(scenario.customers)), call_sid=rig.sid())
            call = TextCall(
                receptionist=receptionist,
                model=rig.model,
                backend=rig.client,
                knowledge=knowledge,
                call_sid=rig.current,
                from_number=scenario.from_number,
                clock=lambda: clock,
            )
            result = await _bounded(call.run(ScriptedCaller(scenario.lines)))
            reasons = suite.judge(scenario, result, profile)
            reports.append(_report(scenario.name, scenario.about, result, reasons))
        persona_reports = []
        if live is not None and not only:
            for number, persona in enumerate(personas, start=1):
                persona_reports.append(
                    await _persona_call(
                        rig, receptionist, knowledge, profile, persona, clock, f"persona_{number}"
                    )
                )
    usage = rig.usage
    card = ReportCard(
        profile=str(profile_path),
        business=profile.business_name,
        mode="live" if live else "offline",
        model=live.model if live else "OpenAI emulator (built-in receptionist policy)",
        ran_at=datetime.now().astimezone().isoformat(timespec="seconds"),
        business_clock=f"{clock:%a %Y-%m-%d %H:%M} {profile.hours.timezone}",
        scenarios=reports,
        personas=persona_reports,
        prompt_tokens=usage[0],
        cached_tokens=usage[1],
        completion_tokens=usage[2],
        cost_usd=cost(live.model, *usage) if live else None,
    )
    save(card, profile_path)
    return card


def cost(model: str, prompt: int, cached: int, completion: int) -> float | None:
    """What the tokens cost at :data:`PRICES_PER_MILLION`, or ``None`` for an unlisted model."""
    prices = PRICES_PER_MILLION.get(model)
    if prices is None:
        return None
    per_input, per_cached, per_output = prices
    return ((prompt - cached) * per_input + cached * per_cached + completion * per_output) / 1e6


def save(card: ReportCard, profile_path: Path) -> Path:
    """Write ``card`` to :func:`report_path` (atomically) and return the path."""
    path = report_path(profile_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(card.to_json(), indent=2, ensure_ascii=False) + "\n")
    partial.replace(path)
    return path


def render(card: ReportCard) -> str:
    """The report card as printed."""
    lines = [
        f"Report card: {card.business} ({card.profile})",
        f"  model: {card.model}; calls placed at {card.business_clock}",
    ]
    greetings = [s.greeting_ms for s in card.scenarios if s.greeting_ms is not None]
    if greetings:
        ordered = sorted(greetings)
        lines.append(
            f"  greeting latency: median {ordered[len(ordered) // 2]:.0f} ms, "
            f"worst {ordered[-1]:.0f} ms (lookup + decision, before speech)"
        )
    for title, rows in (("Scenarios", card.scenarios), ("Persona callers", card.personas)):
        if not rows:
            continue
        lines.append(f"{title}")
        for row in rows:
            mark = "PASS" if row.passed else "FAIL"
            lines.append(f"  {mark}  {row.name:<28} {row.outcome or '-':<12} {row.about}")
            for reason in row.reasons:
                lines.append(f"        why: {reason}")
            for who, text in row.transcript:
                lines.append(f"        {who:>6}: {text}")
    if card.mode == "live":
        tokens = card.prompt_tokens + card.completion_tokens
        price = (
            f"${card.cost_usd:.4f} at list prices of {card.prices_as_of}"
            if card.cost_usd is not None
            else f"no price listed for {card.model}"
        )
        lines.append(
            f"Tokens: {card.prompt_tokens} in ({card.cached_tokens} cached), "
            f"{card.completion_tokens} out, {tokens} in all: {price}"
        )
    failed = sum(not s.passed for s in (*card.scenarios, *card.personas))
    total = len(card.scenarios) + len(card.personas)
    lines.append(
        f"{total - failed} of {total} passed" + ("" if failed else ": ready for a live call")
    )
    return "\n".join(lines)


def _report(name: str, about: str, result: CallResult | None, reasons: list[str]) -> ScenarioReport:
    if result is None:
        return ScenarioReport(
            name=name,
            about=about,
            passed=False,
            reasons=[f"the call did not finish within {CALL_TIMEOUT_SECONDS:.0f}s"],
            greeting_ms=None,
            outcome=None,
            states=[],
        )
    c = result.conversation
    passed = not reasons
    return ScenarioReport(
        name=name,
        about=about,
        passed=passed,
        reasons=reasons,
        greeting_ms=round(result.greeting_seconds * 1000, 1)
        if result.greeting_seconds is not None
        else None,
        outcome=c.outcome.value if c.outcome is not None else None,
        states=list(c.visited),
        tokens=result.usage.prompt_tokens + result.usage.completion_tokens,
        transcript=[] if passed else [[who, text] for who, text in result.transcript],
    )


async def _bounded(work: Any) -> Any:
    with anyio.move_on_after(CALL_TIMEOUT_SECONDS):
        return await work
    return None


class _Rig:
    """The backend emulator behind a real V2 gateway, and the receptionist model."""

    def __init__(self, live: LiveModel | None) -> None:
        self.live = live
        self.backend = BackendEmulator()
        self.openai: OpenAIEmulator | None = None if live else OpenAIEmulator(calls=CallRegistry())
        self.current = ""
        self._usage = [0, 0, 0]
        self._stack: Any = None

    def sid(self) -> str:
        """A new call SID, made current."""
        self.current = "CA" + secrets.token_hex(16)
        return self.current

    @property
    def usage(self) -> tuple[int, int, int]:
        """Prompt, cached and completion tokens every call used so far."""
        return tuple(self._usage)  # type: ignore[return-value]

    async def __aenter__(self) -> _Rig:
        self._folder = tempfile.TemporaryDirectory(prefix="frontdesk-try-")
        await self.backend.start()
        if self.openai is not None:
            await self.openai.start()
            key, base, name = "sk-emulated", f"{self.openai.url}/v1", DEFAULT_MODEL
        else:
            assert self.live is not None
            key, base, name = self.live.api_key, self.live.base_url, self.live.model
        self.client_openai = AsyncOpenAI(api_key=key, base_url=base, max_retries=1)
        inner = ChatModel(self.client_openai, name)
        self.model = _CountingModel(inner, self)
        self.outbox = Outbox(Path(self._folder.name) / "pending.sqlite")
        self._send, inbox = anyio.create_memory_object_stream[GatewayMessage](16)
        self.gateway = V2Gateway(
            base_url=self.backend.url,
            inbox=inbox,
            pending=self.outbox,
            submit_records=_ignore_records,
            timeout=BACKEND_TIMEOUT_SECONDS,
            failure_threshold=5,
            reset_seconds=30.0,
        )
        self.client = GatewayClient(
            self._send, timeout=lambda: BACKEND_TIMEOUT_SECONDS, pending=self.outbox
        )
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        await self._tg.start(self.gateway.run)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            self._send.close()
            await self._tg.__aexit__(None, None, None)
        finally:
            with anyio.CancelScope(shield=True):
                await self.client_openai.close()
                self.outbox.close()
                if self.openai is not None:
                    await self.openai.stop()
                await self.backend.stop()
                self._folder.cleanup()


class _CountingModel(ChatModel):
    """A model whose tokens are added to the run's as they are spent."""

    def __init__(self, inner: ChatModel, rig: _Rig) -> None:
        super().__init__(inner.client, inner.model)
        self._rig = rig

    async def complete(self, *args: Any, **kwargs: Any) -> Any:
        answer = await super().complete(*args, **kwargs)
        self._rig._usage[0] += answer.usage.prompt_tokens
        self._rig._usage[1] += answer.usage.cached_tokens
        self._rig._usage[2] += answer.usage.completion_tokens
        return answer


async def _ignore_records(records: list[Record]) -> None:
    """Alerts from the gateway: nobody's dashboard is told about a pre-launch test."""


# ------------------------------------------------------------------ persona callers

PERSONA_PROMPT = (
    "You are a caller phoning {business}, a home-services company, and you are playing "
    "this person: {persona}. Stay in character. Facts you give when asked:\n"
    "name: {name}\naddress: {address}\nzip: {zip}\nneed: {need}\n"
    "Say only your next words on the phone, one or two short sentences. When the "
    "receptionist has booked you or promised a call back, thank them and say goodbye."
)


@dataclass(slots=True)
class PersonaCaller:
    """A caller a second model plays from a persona line."""

    model: ChatModel
    prompt: str
    problem: str | None = None

    async def next_line(self, transcript: Sequence[tuple[str, str]]) -> str | None:
        """What the persona says next, having heard the bot's lines so far."""
        messages: list[dict[str, Any]] = [{"role": "system", "content": self.prompt}]
        for who, text in transcript:
            if who == "bot":
                messages.append({"role": "user", "content": text})
            elif who == "caller":
                messages.append({"role": "assistant", "content": text})
        try:
            answer = await self.model.complete(messages)
        except ModelError as exc:
            self.problem = f"the persona model failed: {exc}"
            return None
        return (answer.text or "").strip() or None


async def _persona_call(
    rig: _Rig,
    receptionist: Receptionist,
    knowledge: KnowledgeIndex | None,
    profile: AgentProfile,
    persona: str,
    clock: datetime,
    name: str,
) -> ScenarioReport:
    zip_code = profile.service_area.zips[0] if profile.service_area.zips else "00000"
    prompt = PERSONA_PROMPT.format(
        business=profile.business_name,
        persona=persona,
        name="Morgan Ellis",
        address=suite.STREET,
        zip=zip_code,
        need=suite.service_line(profile, 0),
    )
    caller = PersonaCaller(model=rig.model, prompt=prompt)
    # Each call has the backend to itself, as each scenario does.
    rig.backend.seed(BackendSeed(), call_sid=rig.sid())
    call = TextCall(
        receptionist=receptionist,
        model=rig.model,
        backend=rig.client,
        knowledge=knowledge,
        call_sid=rig.current,
        from_number=suite.CALLER_NUMBER,
        clock=lambda: clock,
    )
    result = await _bounded(call.run(caller, max_turns=PERSONA_TURNS))
    reasons: list[str] = []
    if result is not None:
        if caller.problem:
            reasons.append(caller.problem)
        reasons += _persona_problems(result)
    return _report(name, persona, result, reasons)


def _persona_problems(result: CallResult) -> list[str]:
    """A free-form call passes when the receptionist ended it with a lead and nothing invented."""
    reasons = [result.problem] if result.problem else []
    c = result.conversation
    if result.ended_by not in ("bot", "handoff"):
        reasons.append(f"the receptionist did not finish the call (ended by {result.ended_by})")
    if c.outcome is None:
        reasons.append("the call ended with no outcome: no booking, callback or emergency")
    elif c.outcome.value == "turn_limit":
        reasons.append("the conversation went round in circles until the turn limit")
    refused = [t for t in c.tool_calls if not t.ok and "not available" in str(t.result)]
    if refused:
        reasons.append(f"the model called {refused[0].name}, which was not offered then")
    said = " ".join(result.bot_lines())
    if "$" in said and not c.questions:
        reasons.append("the bot named a price nobody looked up")
    return reasons


def env_with_file(env_file: str | None) -> dict[str, str]:
    """The environment, beneath which ``env_file``'s settings are read (the environment wins)."""
    values: dict[str, str] = {}
    if env_file is not None:
        from dotenv import dotenv_values

        values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    return {**values, **os.environ}

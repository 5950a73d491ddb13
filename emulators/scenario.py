"""Scenarios: one simulated phone call, from both sides, as a YAML file in ``scenarios/``.

A scenario says what the caller says and does (lines of speech, pauses, barge-ins,
DTMF, hanging up), what the backend knows (seeded customers), how the phones around the
call behave at Twilio (who answers a hand-off, which texts arrive, who opted out), what
the LLM answers where the built-in receptionist policy is not wanted, which faults to
inject and when, and what must have happened by the end (outcome, records the dashboard
received, whether the bot hung up, hand-offs, texts, recordings).

A scenario that needs the business set up differently (texts switched on, a hand-off
number) names ``profile_overrides``: top-level profile sections that replace the default
profile's (a shallow merge). The profile belongs to the server, not to one call, so a
runner starts the server with :func:`write_profile` of its scenarios' overrides.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from emulators.faults import Fault, FaultKind

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles"

Target = Literal["openai", "deepgram", "inworld", "twilio", "backend", "dashboard"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CallerStep(_Strict):
    """One thing the caller does, in order.

    Exactly one of ``say``, ``dtmf``, ``silence`` or ``hangup`` is set.

    Attributes:
        say: A line of speech (played from its clip in ``emulators/speech/clips``).
        dtmf: Digits to press.
        silence: Stay silent this many seconds (the line still counts as waited for).
        hangup: Hang up (after waiting for the bot, unless ``wait`` is ``none``).
        wait: Before acting, wait for the bot to finish speaking (``bot``, the default),
            for the bot to start speaking (``bot_start``), or not at all (``none``).
        pause: Seconds of silence after the wait, before acting.
        barge_in: Start speaking this many seconds after the bot starts its next
            utterance instead of waiting for it to finish.
        hangup_after: Hang up this many seconds into saying the line (mid-sentence).
    """

    say: str | None = None
    dtmf: str | None = None
    silence: float | None = None
    hangup: bool = False
    wait: Literal["bot", "bot_start", "none"] = "bot"
    pause: float = 0.4
    barge_in: float | None = None
    hangup_after: float | None = None

    @model_validator(mode="after")
    def _one_action(self) -> CallerStep:
        actions = [
            self.say is not None,
            self.dtmf is not None,
            self.silence is not None,
            self.hangup,
        ]
        if sum(actions) != 1:
            raise ValueError("exactly one of say, dtmf, silence or hangup per step")
        if (self.barge_in is not None or self.hangup_after is not None) and self.say is None:
            raise ValueError("barge_in and hangup_after apply to a 'say' step")
        return self


class Customer(_Strict):
    """A customer the backend already knows."""

    phone: str
    name: str
    address: str | None = None
    zip: str | None = None
    city: str | None = None


class Backend(_Strict):
    """What the V2 backend emulator is seeded with."""

    customers: list[Customer] = Field(default_factory=list)
    taken_slots: list[str] = Field(default_factory=list)


class ToolCall(_Strict):
    """A tool call the scripted LLM makes."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class LLMTurn(_Strict):
    """A scripted LLM answer, replacing the receptionist policy for one request.

    Attributes:
        after_caller_line: Answer the first completion request made after the caller's
            Nth line (1-based) was transcribed; 0 means before any caller line.
        tool_calls: Tool calls to make, with arguments split across stream chunks.
        say: Text to say (alone, or before the tool calls in the same answer).
    """

    after_caller_line: int
    say: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)


class FaultStep(_Strict):
    """A fault switched on or off at a point of the call.

    Attributes:
        at: ``start`` (before the call is placed), ``after_caller_line: N`` (once the
            caller finished line N), ``after_seconds: S`` (S seconds into the call), or
            ``end`` (once the call is over, e.g. a dashboard coming back).
        target: Which emulator.
        fault: The fault to add; ``None`` with ``clear`` clears every fault of the target.
        clear: Clear the target's faults instead of adding one.
    """

    at: Literal["start", "end"] | dict[Literal["after_caller_line", "after_seconds"], float]
    target: Target
    fault: dict[str, Any] | None = None
    clear: bool = False

    @model_validator(mode="after")
    def _fault_or_clear(self) -> FaultStep:
        if (self.fault is None) == (not self.clear):
            raise ValueError("give either a fault or clear: true")
        if self.fault is not None:
            Fault.from_json(self.fault)
        return self

    def to_fault(self) -> Fault | None:
        """The fault to add, or ``None`` for a clear."""
        return Fault.from_json(self.fault) if self.fault is not None else None


class RecordCounts(_Strict):
    """How many records of each kind the dashboard must have received."""

    calls: int | None = None
    jobs: int | None = None
    alerts: int | None = None


class QuestionExpectation(_Strict):
    """A question the caller asked about the business, as the call record must show it.

    Attributes:
        asked: The caller's words the record holds as the question.
        found: Whether the business's knowledge had passages for it (``False``: the
            record names no source).
        sources_include: Texts each of which must be part of one of the record's sources
            (``"Prices"`` matches ``"Prices: Service call fee"``).
        answer_says: Phrases the bot must say between the question and the caller's
            next line.
        answer_never_says: Texts the bot must not say there (``"$"``: no price invented).
    """

    asked: str
    found: bool | None = None
    sources_include: list[str] = Field(default_factory=list)
    answer_says: list[str] = Field(default_factory=list)
    answer_never_says: list[str] = Field(default_factory=list)


class Expectations(_Strict):
    """What must be true once the call has ended.

    Attributes:
        outcome: The call record's outcome.
        language: The language the call record says the call ended in.
        hung_up_by: ``bot`` (hang-up through Twilio REST), ``caller``, or ``handoff``
            (the call was redirected to a person).
        states_visited: Conversation states that must appear in the call record, in order.
        bot_said: Phrases that must appear in what the bot said (from the call record).
        records: Records the dashboard must have received for this call.
        alert_kinds: Alert kinds that must be among the alerts received.
        booked: Whether the backend must hold an appointment for the caller.
        callbacks: How many callbacks the backend must hold for the caller.
        handoffs: The ``DialCallStatus`` of each hand-off, in order.
        texts: How many texts to the caller Twilio must have accepted.
        recorded: Whether Twilio must hold a completed recording of the call.
        handoff_result: The hand-off's result in the (latest revision of the) call record.
        recording_in_record: Whether the call record carries the recording's SID and URL.
        questions: The caller's questions about the business, in the order asked; when
            given, the record holds exactly these.
        language_switches: Each change of language the call record must show, in order,
            with what prompted it (``{language: es, cue: speech_recognition}``).
        callback_lead: Lead fields of the callback's job record and the backend's callback
            request, each naming text that field must contain (``{address: 12 Oak
            Street}``; the job's ``description`` is the callback request's ``reason``).
    """

    outcome: str | None = None
    language: str | None = None
    hung_up_by: Literal["bot", "caller", "handoff"] | None = None
    states_visited: list[str] = Field(default_factory=list)
    bot_said: list[str] = Field(default_factory=list)
    records: RecordCounts = Field(default_factory=RecordCounts)
    alert_kinds: list[str] = Field(default_factory=list)
    booked: bool | None = None
    callbacks: int | None = None
    handoffs: list[str] | None = None
    texts: int | None = None
    recorded: bool | None = None
    handoff_result: str | None = None
    recording_in_record: bool | None = None
    questions: list[QuestionExpectation] | None = None
    callback_lead: dict[str, str] = Field(default_factory=dict)
    language_switches: list[dict[str, str]] | None = None


class DialAnswer(_Strict):
    """How the person at a hand-off number answers (see ``emulators.twilio_dial.Answerer``)."""

    result: Literal["completed", "busy", "no-answer", "failed"] = "completed"
    talk_seconds: int = 42


class TextDelivery(_Strict):
    """What happens to texts sent to a number."""

    status: Literal["delivered", "undelivered", "failed"] = "delivered"
    error_code: int | None = None


class TwilioSetup(_Strict):
    """How the phones around the call behave at Twilio.

    Attributes:
        dial: Per dialled number, how its person answers a hand-off.
        texts: Per recipient, what happens to texts sent to it.
        opted_out: Numbers that already replied STOP to the business's number.
    """

    dial: dict[str, DialAnswer] = Field(default_factory=dict)
    texts: dict[str, TextDelivery] = Field(default_factory=dict)
    opted_out: list[str] = Field(default_factory=list)


class CallSetup(_Strict):
    """The numbers of the simulated call."""

    from_: Annotated[str, Field(alias="from")] = "+14155550123"
    to: str = "+14155550100"

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Scenario(_Strict):
    """One simulated call."""

    name: str
    description: str
    call: CallSetup = Field(default_factory=CallSetup)
    caller: list[CallerStep]
    backend: Backend = Field(default_factory=Backend)
    twilio: TwilioSetup = Field(default_factory=TwilioSetup)
    llm: list[LLMTurn] = Field(default_factory=list)
    faults: list[FaultStep] = Field(default_factory=list)
    expect: Expectations = Field(default_factory=Expectations)
    max_seconds: float = 90.0
    profile_overrides: dict[str, Any] = Field(default_factory=dict)
    """Top-level profile sections the server must run with (replacing the default's)."""

    @property
    def lines(self) -> list[str]:
        """Every line the caller speaks, in order (what the STT emulator transcribes)."""
        return [step.say for step in self.caller if step.say is not None]

    def faults_at_start(self) -> list[FaultStep]:
        """Fault steps applied before the call is placed."""
        return [f for f in self.faults if f.at == "start"]

    def faults_at_end(self) -> list[FaultStep]:
        """Fault steps applied once the call is over."""
        return [f for f in self.faults if f.at == "end"]


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a scenario by name (``scenarios/<name>.yaml``) or path.

    Raises:
        FileNotFoundError: No such scenario.
        ValueError: The file is not a valid scenario (the message names the problem).
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIO_DIR / f"{name_or_path}.yaml"
    data = yaml.safe_load(path.read_text())
    try:
        return Scenario.model_validate(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def write_profile(overrides: dict[str, Any], directory: Path) -> Path:
    """Write the default profile with ``overrides`` merged in (shallow) into ``directory``.

    The default profile's knowledge folder is copied beside it: knowledge files must stay
    inside the profile's folder. Returns the profile's path (for ``AGENT_PROFILE``).
    """
    profile = yaml.safe_load((PROFILE_DIR / "default.yaml").read_text())
    path = directory / "profile.yaml"
    path.write_text(yaml.safe_dump({**profile, **overrides}, sort_keys=False))
    shutil.copytree(PROFILE_DIR / "knowledge", directory / "knowledge", dirs_exist_ok=True)
    return path


def all_scenarios() -> list[str]:
    """Names of every scenario shipped in ``scenarios/``."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


__all__ = [
    "CallerStep",
    "Customer",
    "Expectations",
    "FaultKind",
    "FaultStep",
    "LLMTurn",
    "QuestionExpectation",
    "Scenario",
    "all_scenarios",
    "load_scenario",
    "write_profile",
]

"""Play Twilio's side of one phone call, from a scenario, against a running Frontdesk.

:func:`place_call` does what Twilio does for an inbound call:

1. generates ``CA…`` / ``MZ…`` SIDs, registers the call with the world
   (:class:`~emulators.caller_control.CallControl`) and applies ``at: start`` faults;
2. POSTs the signed incoming-call webhook to ``{server_url}/twilio/voice`` and reads
   the TwiML: a busy message ends the call there (``rejected``), a
   ``<Connect><Stream>`` is dialled over ``ws://`` (we stand in for the TLS proxy)
   with ``X-Twilio-Signature`` of the ``wss://`` URL on the upgrade;
3. sends ``connected`` and ``start``, then a ``media`` message every 20 ms against an
   absolute clock (start + n·20 ms, so it never drifts): the caller's line while
   speaking, μ-law silence otherwise;
4. plays the bot's audio into a model of Twilio's playback buffer (marks echoed once
   played, ``clear`` empties it) and follows the scenario's caller steps;
5. ends the call like Twilio: on a REST hang-up by Frontdesk (``control.wait_ended``
   says ``rest``), on the caller's hang-up, when Frontdesk closes the websocket, or at
   ``scenario.max_seconds``: ``stop``, close, then the signed ``completed`` status
   callback to ``{server_url}/twilio/status``. When Frontdesk redirects the call through
   REST (``wait_ended`` says ``handoff``), the stream ends the same way, as Twilio ends
   it when a call leaves ``<Connect><Stream>`` for new TwiML.

Caller steps, as in :class:`~emulators.scenario.CallerStep`: ``wait: bot`` waits until
a bot utterance that began after the previous action started has finished;
``bot_start`` until such an utterance has begun; then ``pause``. A ``barge_in`` step
waits instead until that utterance has played ``barge_in`` seconds (no pause) and
speaks over it. Every wait ends with the call at ``max_seconds``.

The world's side (:class:`~emulators.caller_control.CallControl`, and the HTTP API of
the world control server that :class:`~emulators.caller_control.HttpCallControl`
speaks) is documented in :mod:`emulators.caller_control`; the report in
:mod:`emulators.caller_report`.

Run one call from the command line::

    python -m emulators.caller SCENARIO --server http://127.0.0.1:8080 --control URL [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Literal, assert_never

import aiohttp
import anyio
from anyio.abc import TaskGroup

from emulators.caller_audio import SpokenLine
from emulators.caller_control import (
    CallControl,
    CallerError,
    ControlError,
    EndedBy,
    HttpCallControl,
)
from emulators.caller_report import CallEvent, CallRecorder, CallReport
from emulators.caller_stream import MediaStream
from emulators.caller_webhooks import (
    STREAM_USER_AGENT,
    USER_AGENT,
    TwimlAnswer,
    TwimlError,
    dial_url,
    incoming_call_form,
    new_call_sid,
    new_stream_sid,
    parse_twiml,
    sign,
    status_callback_form,
)
from emulators.scenario import CallerStep, FaultStep, Scenario, load_scenario
from emulators.speech import load_clip

WEBHOOK_TIMEOUT_SECONDS = 15.0
"""Twilio's own limit for the voice webhook."""
CONNECT_TIMEOUT_SECONDS = 10.0
STATUS_CALLBACK_TIMEOUT_SECONDS = 10.0
TEARDOWN_SECONDS = 10.0
ENDED_POLL_SECONDS = 10.0
"""Longest single ``wait_ended`` long-poll; the watcher asks again until the call ends."""
SERVER_CLOSE_GRACE_SECONDS = 1.5
"""After Frontdesk closes the socket, how long a REST hang-up may take to be reported."""
DTMF_GAP_SECONDS = 0.25
CLOSE_TIMEOUT_SECONDS = 2.0

EndCause = Literal["bot", "caller", "deadline", "server_closed", "handoff"]


async def place_call(
    scenario: Scenario,
    *,
    server_url: str,
    account_sid: str,
    auth_token: str,
    control: CallControl,
    call_sid: str | None = None,
) -> CallReport:
    """Play Twilio's side of one call of ``scenario`` against Frontdesk at ``server_url``.

    What went wrong on the call (Frontdesk's answers, protocol violations, a call that
    outlived ``max_seconds``) is in the report's ``errors``, not raised.

    Raises:
        emulators.speech.ClipMissing: A caller line has no clip and no synthesiser.
        ControlError: The world could not register the call.
    """
    call = _Call(
        scenario,
        server_url=server_url,
        account_sid=account_sid,
        auth_token=auth_token,
        control=control,
        call_sid=call_sid or new_call_sid(),
    )
    return await call.run()


class _Call:
    """One simulated call: the webhooks, the caller's script and the watchers around it."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        server_url: str,
        account_sid: str,
        auth_token: str,
        control: CallControl,
        call_sid: str,
    ) -> None:
        self.scenario = scenario
        self.server_url = server_url.rstrip("/")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.control = control
        self.call_sid = call_sid
        self.report = CallReport(call_sid=call_sid, scenario=scenario.name)
        self.recorder = CallRecorder(self.report, placed_at=anyio.current_time())
        self._clips: dict[str, bytes] = {}
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._stream: MediaStream | None = None
        self._answered_at: float | None = None
        self._tg: TaskGroup | None = None
        self._end_cause: EndCause | None = None
        self._next_step = 0
        self._handoffs_seen = 0

    @property
    def stream(self) -> MediaStream:
        assert self._stream is not None
        return self._stream

    @property
    def deadline(self) -> float:
        return self.recorder.placed_at + self.scenario.max_seconds

    # ----------------------------------------------------------------- the call

    async def run(self) -> CallReport:
        self._clips = {line: load_clip(line) for line in self.scenario.lines}
        self.recorder.placed_at = anyio.current_time()
        await self.control.register(self.call_sid, self.scenario)
        for step in self.scenario.faults_at_start():
            await self._apply_fault(step)
        async with aiohttp.ClientSession() as http:
            self._http = http
            try:
                answer = await self._ring()
                if answer is not None and not answer.rejected:
                    await self._converse(answer)
                    while self._end_cause == "handoff":
                        resumed = await self._follow_handoff()
                        if resumed is None:
                            break
                        await self._converse(resumed)
            finally:
                with anyio.move_on_after(TEARDOWN_SECONDS, shield=True):
                    await self._hang_up()
        self._finish_report()
        self.recorder.log.info("caller: %s", self.report.summary().splitlines()[0])
        return self.report

    async def _ring(self) -> TwimlAnswer | None:
        """POST the incoming-call webhook; the TwiML answer, or ``None`` if there is none."""
        assert self._http is not None
        url = f"{self.server_url}/twilio/voice"
        setup = self.scenario.call
        form = incoming_call_form(
            call_sid=self.call_sid, account_sid=self.account_sid, from_=setup.from_, to=setup.to
        )
        headers = {"X-Twilio-Signature": sign(self.auth_token, url, form), "User-Agent": USER_AGENT}
        self.recorder.event("webhook", url)
        try:
            with anyio.fail_after(WEBHOOK_TIMEOUT_SECONDS):
                async with self._http.post(url, data=form, headers=headers) as response:
                    status, body = response.status, await response.text()
        except TimeoutError:
            self.recorder.error(f"voice webhook gave no answer in {WEBHOOK_TIMEOUT_SECONDS:g} s")
            return None
        except aiohttp.ClientError as exc:
            self.recorder.error(f"voice webhook failed: {exc!r}")
            return None
        if status != 200:
            self.recorder.error(f"voice webhook answered {status}: {body[:200]}")
            return None
        try:
            answer = parse_twiml(body)
        except TwimlError as exc:
            self.recorder.error(str(exc))
            return None
        # From here Twilio counts the call as answered: it ends with a status callback.
        self._answered_at = anyio.current_time()
        if answer.rejected:
            self.report.rejected = True
            self.report.busy_text = answer.said
            self.recorder.event("rejected", answer.said)
        else:
            self.recorder.event("twiml", f"stream {answer.stream_url} {answer.parameters}")
        return answer

    async def _connect(self, answer: TwimlAnswer) -> aiohttp.ClientWebSocketResponse | None:
        """Dial the stream URL with the upgrade signed like Twilio's."""
        assert self._http is not None and answer.stream_url is not None
        headers = {
            "X-Twilio-Signature": sign(self.auth_token, answer.stream_url, {}),
            "User-Agent": STREAM_USER_AGENT,
        }
        try:
            with anyio.fail_after(CONNECT_TIMEOUT_SECONDS):
                return await self._http.ws_connect(dial_url(answer.stream_url), headers=headers)
        except aiohttp.WSServerHandshakeError as exc:
            self.recorder.error(f"media stream upgrade refused: {exc.status} {exc.message}")
        except TimeoutError:
            self.recorder.error(f"media stream not connected in {CONNECT_TIMEOUT_SECONDS:g} s")
        except aiohttp.ClientError as exc:
            self.recorder.error(f"media stream connection failed: {exc!r}")
        return None

    async def _converse(self, answer: TwimlAnswer) -> None:
        """Open the media stream and hold the conversation until the call ends."""
        self._ws = await self._connect(answer)
        if self._ws is None:
            return
        stream_sid = new_stream_sid()
        self._stream = MediaStream(
            self._ws,
            call_sid=self.call_sid,
            account_sid=self.account_sid,
            stream_sid=stream_sid,
            recorder=self.recorder,
        )
        if not await self.stream.open(answer.parameters):
            self.recorder.error("the media stream closed before start was sent")
            return
        self.report.connected = True
        self.report.stream_sid = stream_sid
        self.recorder.event("start", stream_sid)
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._stream_until_closed)
            tg.start_soon(self._run_script)
            tg.start_soon(self._watch_rest_hangup)
            tg.start_soon(self._deadline)
            for step in self.scenario.faults:
                if isinstance(step.at, dict) and "after_seconds" in step.at:
                    tg.start_soon(self._fault_after_seconds, step, float(step.at["after_seconds"]))

    async def _follow_handoff(self) -> TwimlAnswer | None:
        """After a redirect: the new stream that brings the caller back, if Twilio opens one.

        Waits (up to the call's deadline) for the dial to finish; when the dial action's
        TwiML connects a new stream, the old one is stopped and closed first, as Twilio
        does, and the caller's script carries on where it was.
        """
        remaining = max(0.1, self.deadline - anyio.current_time())
        try:
            handoff = await self.control.wait_handoff(
                self.call_sid, remaining, after=self._handoffs_seen
            )
        except ControlError as exc:
            self.recorder.error(f"world control: {exc}")
            return None
        if handoff is None:
            self.recorder.error("the hand-off had not finished by max_seconds")
            return None
        self._handoffs_seen += 1
        self.report.handoffs.append(handoff.status or "redirected")
        self.recorder.event("handoff", f"{handoff.status} {handoff.number}")
        if handoff.stream_url is None:
            return None
        await self._leave_stream()
        self._end_cause = None
        self._tg = None
        self.recorder.event("resumed", handoff.stream_url)
        return TwimlAnswer(stream_url=handoff.stream_url, parameters=handoff.parameters)

    async def _leave_stream(self) -> None:
        """``stop`` and close the current stream."""
        if self._stream is not None:
            await self.stream.stop()
        if self._ws is not None and not self._ws.closed:
            with anyio.move_on_after(CLOSE_TIMEOUT_SECONDS):
                await self._ws.close()

    async def _stream_until_closed(self) -> None:
        reason = await self.stream.run()
        self._end("server_closed", reason)

    def _end(self, cause: EndCause, detail: str = "") -> None:
        """End the call for ``cause`` (the first cause wins) and stop every task of it."""
        if self._end_cause is None:
            self._end_cause = cause
            self.recorder.event("call_ends", f"{cause}: {detail}" if detail else cause)
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def _hang_up(self) -> None:
        """Finish the call at Twilio: ``stop``, close, tell the world, status callback."""
        if self.report.connected:
            self.report.hung_up_by = await self._final_cause()
        await self._leave_stream()
        if self.report.hung_up_by == "caller":
            try:
                await self.control.caller_hung_up(self.call_sid)
            except ControlError as exc:
                self.recorder.error(f"world control: {exc}")
        if self._answered_at is not None:
            await self._status_callback()

    async def _final_cause(self) -> Literal["bot", "caller", "server_closed", "handoff"]:
        """Who ended the call, as the report tells it."""
        match self._end_cause:
            case None:
                self.recorder.error("the call was cancelled before it ended")
                return "caller"
            case "caller" | "deadline":
                return "caller"
            case "bot":
                return "bot"
            case "handoff":
                return "handoff"
            case "server_closed":
                # Frontdesk may hang up through REST and close the socket at once; the
                # REST hang-up can be reported a moment after the close.
                match await self._ended_by(SERVER_CLOSE_GRACE_SECONDS):
                    case "rest":
                        return "bot"
                    case "handoff":
                        return "handoff"
                    case _:
                        return "server_closed"
            case _:
                assert_never(self._end_cause)

    async def _status_callback(self) -> None:
        assert self._http is not None and self._answered_at is not None
        url = f"{self.server_url}/twilio/status"
        setup = self.scenario.call
        form = status_callback_form(
            call_sid=self.call_sid,
            account_sid=self.account_sid,
            from_=setup.from_,
            to=setup.to,
            duration=anyio.current_time() - self._answered_at,
        )
        headers = {"X-Twilio-Signature": sign(self.auth_token, url, form), "User-Agent": USER_AGENT}
        try:
            with anyio.fail_after(STATUS_CALLBACK_TIMEOUT_SECONDS):
                async with self._http.post(url, data=form, headers=headers) as response:
                    status = response.status
                    await response.read()
        except TimeoutError:
            self.recorder.error("status callback gave no answer in time")
            return
        except aiohttp.ClientError as exc:
            self.recorder.error(f"status callback failed: {exc!r}")
            return
        if not 200 <= status < 300:
            self.recorder.error(f"status callback answered {status}")
        self.recorder.event("status_callback", str(status))

    def _finish_report(self) -> None:
        report = self.report
        if self._stream is not None:
            bot = self._stream.bot
            report.bot_frames = bot.frames
            report.bot_utterances = bot.utterances
            report.late_frames = bot.late_frames
            report.worst_gap = bot.worst_gap
        report.call_seconds = anyio.current_time() - self.recorder.placed_at

    # --------------------------------------------------------------- the caller

    async def _run_script(self) -> None:
        """The caller's steps, in order; then stay on the line for Frontdesk to hang up.

        After a hand-off brings the caller back on a new stream, the script carries on
        from the first step not yet taken.
        """
        since = 0
        steps = self.scenario.caller
        while self._next_step < len(steps):
            step = steps[self._next_step]
            if step.barge_in is not None:
                await self._wait_barge_in_point(since, step.barge_in)
            else:
                await self._wait_for_bot(step.wait, since)
                if step.pause > 0:
                    await anyio.sleep(step.pause)
            self._next_step += 1
            since = self.stream.bot.utterances
            if step.say is not None:
                if not await self._say(step, step.say):
                    return
            elif step.dtmf is not None:
                await self._press(step.dtmf)
            elif step.silence is not None:
                self.recorder.event("caller_silent", f"{step.silence:g} s")
                await anyio.sleep(step.silence)
            else:
                self.recorder.event("caller_hangs_up")
                self._end("caller")
                return
        self.recorder.event("script_done", "waiting for the bot to hang up")

    async def _wait_for_bot(self, wait: Literal["bot", "bot_start", "none"], since: int) -> None:
        bot = self.stream.bot
        match wait:
            case "none":
                return
            case "bot_start":
                await self.stream.wait_until(
                    lambda: bot.utterances > since, "the bot to start speaking"
                )
            case "bot":
                await self.stream.wait_until(
                    lambda: bot.utterances > since and not bot.speaking,
                    "the bot to finish speaking",
                )
            case _:
                assert_never(wait)

    async def _wait_barge_in_point(self, since: int, seconds: float) -> None:
        bot = self.stream.bot
        await self.stream.wait_until(lambda: bot.utterances > since, "the bot's next utterance")
        await anyio.sleep_until(bot.starts[since] + seconds)
        if not bot.speaking:
            self.recorder.event("note", "the bot had finished before the barge-in point")

    async def _say(self, step: CallerStep, text: str) -> bool:
        """Speak one line; ``False`` if the caller hung up while saying it (``hangup_after``)."""
        line = self.stream.speak(self._clips[text])
        number = line.index + 1
        self.recorder.event("caller_line_starts", f"{number}: {text}")
        if step.hangup_after is None:
            await line.done.wait()
            self._line_ended(line)
            return True
        hang_up_at = anyio.current_time() + step.hangup_after
        with anyio.move_on_after(step.hangup_after):
            await line.done.wait()
        if line.done.is_set():
            self._line_ended(line)
        else:
            self.stream.voice.stop()
        await anyio.sleep_until(hang_up_at)
        self.recorder.event("caller_hangs_up", f"{step.hangup_after:g} s into line {number}")
        self._end("caller")
        return False

    def _line_ended(self, line: SpokenLine) -> None:
        number = line.index + 1
        self.stream.line_ended(line)
        self.recorder.event("caller_line_ends", str(number))
        for fault in self.scenario.faults:
            if isinstance(fault.at, dict) and fault.at.get("after_caller_line") == number:
                assert self._tg is not None
                self._tg.start_soon(self._apply_fault, fault)

    async def _press(self, digits: str) -> None:
        for position, digit in enumerate(digits):
            if position:
                await anyio.sleep(DTMF_GAP_SECONDS)
            await self.stream.press(digit)
            self.recorder.event("dtmf", digit)

    # ------------------------------------------------------------ the world

    async def _apply_fault(self, step: FaultStep) -> None:
        fault = step.to_fault()
        self.recorder.event("fault", f"{step.target}: {fault.kind.value if fault else 'clear'}")
        try:
            await self.control.apply_fault(step)
        except ControlError as exc:
            self.recorder.error(f"world control: {exc}")

    async def _fault_after_seconds(self, step: FaultStep, seconds: float) -> None:
        await anyio.sleep_until(self.stream.started_at + seconds)
        await self._apply_fault(step)

    async def _watch_rest_hangup(self) -> None:
        """Long-poll the world until Frontdesk hangs up through REST."""
        while True:
            remaining = self.deadline - anyio.current_time()
            try:
                by = await self.control.wait_ended(
                    self.call_sid, max(0.1, min(ENDED_POLL_SECONDS, remaining))
                )
            except ControlError as exc:
                self.recorder.error(f"world control: {exc}")
                return
            if by == "rest":
                self._end("bot", "Frontdesk hung up through Twilio REST")
                return
            if by == "caller":
                self._end("caller", "the world says the caller hung up")
                return
            if by == "handoff":
                self._end("handoff", "Frontdesk redirected the call through Twilio REST")
                return

    async def _ended_by(self, grace: float) -> str | None:
        try:
            return await self.control.wait_ended(self.call_sid, grace)
        except ControlError as exc:
            self.recorder.error(f"world control: {exc}")
            return None

    async def _deadline(self) -> None:
        await anyio.sleep_until(self.deadline)
        waiting = self.stream.waiting_for
        suffix = f" while waiting for {waiting}" if waiting else ""
        self.recorder.error(
            f"call still up after max_seconds={self.scenario.max_seconds:g}{suffix}"
        )
        self._end("deadline")


# ------------------------------------------------------------------ command line


def main(argv: list[str] | None = None) -> int:
    """Place one call from the command line; exit status 1 if the report has errors."""
    parser = argparse.ArgumentParser(
        prog="python -m emulators.caller", description="Place one simulated Twilio call."
    )
    parser.add_argument("scenario", help="scenario name (scenarios/NAME.yaml) or path")
    parser.add_argument("--server", required=True, help="Frontdesk's base URL")
    parser.add_argument("--control", required=True, help="the world control server's base URL")
    parser.add_argument("--account-sid", default=os.environ.get("TWILIO_ACCOUNT_SID", ""))
    parser.add_argument("--auth-token", default=os.environ.get("TWILIO_AUTH_TOKEN", ""))
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if not args.account_sid or not args.auth_token:
        parser.error("give --account-sid/--auth-token or set TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    scenario = load_scenario(args.scenario)

    async def call() -> CallReport:
        async with HttpCallControl(args.control) as control:
            return await place_call(
                scenario,
                server_url=args.server,
                account_sid=args.account_sid,
                auth_token=args.auth_token,
                control=control,
            )

    report = anyio.run(call, backend="asyncio")
    print(json.dumps(report.to_json(), indent=2) if args.json else report.summary())
    return 1 if report.errors else 0


__all__ = [
    "CallControl",
    "CallEvent",
    "CallReport",
    "CallerError",
    "ControlError",
    "EndedBy",
    "HttpCallControl",
    "place_call",
]


if __name__ == "__main__":
    sys.exit(main())

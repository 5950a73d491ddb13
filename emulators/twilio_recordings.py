"""Twilio's call Recordings API: start a recording of a live call, report it when done.

``POST /2010-04-01/Accounts/{AC}/Calls/{CA}/Recordings.json`` (``RecordingChannels``
``mono``/``dual``, ``RecordingStatusCallback``, ``RecordingStatusCallbackEvent``
``in-progress``/``completed``/``absent``, space-separated or repeated,
``RecordingStatusCallbackMethod``, ``RecordingTrack``) answers 201 with a Recording
resource (``RE…``, status ``in-progress``, source ``StartCallRecordingAPI``). When the
call ends, or the recording is stopped (``POST …/Recordings/{RE}.json Status=stopped``),
the recording completes and, when asked for, the signed status callback reports
``RecordingSid``, ``RecordingUrl``, ``RecordingStatus=completed``, ``RecordingDuration``,
``RecordingChannels``, ``RecordingStartTime``, ``RecordingSource``, ``RecordingTrack``,
``CallSid``, ``AccountSid`` and ``ErrorCode=0``.

:meth:`Recordings.hold` keeps completion callbacks back until :meth:`Recordings.release`,
for tests of a callback that arrives late.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from aiohttp import web

from emulators.twilio_callbacks import CallbackSender
from emulators.twilio_common import (
    API_VERSION,
    Background,
    Credentials,
    form_of,
    new_sid,
    not_found,
    now,
    rfc2822,
    twilio_error,
    unauthenticated,
)

logger = logging.getLogger(__name__)

RECORDING_EVENTS = frozenset({"in-progress", "completed", "absent"})
SOURCE = "StartCallRecordingAPI"


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingState:
    """A snapshot of one recording."""

    sid: str
    call_sid: str
    channels: int
    track: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    status_callback: str | None
    callback_method: str
    events: frozenset[str]

    @property
    def duration(self) -> int:
        """Whole seconds recorded (``-1`` while recording, as Twilio shows it)."""
        if self.ended_at is None:
            return -1
        return max(0, round((self.ended_at - self.started_at).total_seconds()))


class Recordings:
    """The call Recordings routes and the completion of each recording."""

    def __init__(
        self,
        *,
        credentials: Credentials,
        sender: CallbackSender,
        call_live: Callable[[str], bool | None],
        base_url: Callable[[], str],
    ) -> None:
        """Create the recordings half of the Twilio emulator.

        Args:
            credentials: The account.
            sender: Makes the signed status callbacks.
            call_live: Whether a call is live (``None`` when the emulator never saw it).
            base_url: The emulator's own base URL (recording URLs point at it).
        """
        self._credentials = credentials
        self._sender = sender
        self._call_live = call_live
        self._base_url = base_url
        self._lock = threading.Lock()
        self._recordings: dict[str, RecordingState] = {}
        self._held = False
        self._waiting: list[str] = []
        self._background = Background()

    @property
    def _account_sid(self) -> str:
        return self._credentials.account_sid

    def install(self, app: web.Application) -> None:
        """Add the Recordings routes."""
        call = f"/{API_VERSION}/Accounts/{{account_sid}}/Calls/{{call_sid:[^/.]+}}"
        app.router.add_post(f"{call}/Recordings.json", self._create, name="recordings")
        app.router.add_post(
            f"{call}/Recordings/{{sid:[^/.]+}}.json", self._update, name="recording"
        )
        app.router.add_get(
            f"{call}/Recordings/{{sid:[^/.]+}}.json", self._fetch, name="recording_fetch"
        )

    async def close(self) -> None:
        """Cancel every pending status callback."""
        await self._background.close()

    # ------------------------------------------------------------------ Python API

    def recordings(self, call_sid: str | None = None) -> list[RecordingState]:
        """Every recording (or those of ``call_sid``), oldest first."""
        with self._lock:
            return [r for r in self._recordings.values() if call_sid in (None, r.call_sid)]

    def hold(self) -> None:
        """Keep completion callbacks back until :meth:`release`."""
        with self._lock:
            self._held = True

    def release(self) -> None:
        """Send the completion callbacks held back, and stop holding."""
        with self._lock:
            self._held = False
            waiting, self._waiting = self._waiting, []
        for sid in waiting:
            self._background.spawn(self._report(sid, "completed"))

    def call_ended(self, call_sid: str) -> None:
        """The call ended: every recording of it completes."""
        for recording in self.recordings(call_sid):
            if recording.status == "in-progress":
                self._complete(recording.sid)

    # --------------------------------------------------------------------- routes

    async def _create(self, request: web.Request) -> web.Response:
        if not self._credentials.accept(request):
            return unauthenticated()
        call_sid = request.match_info["call_sid"]
        live = self._call_live(call_sid)
        if live is None:
            return not_found(request.path)
        if not live:
            return twilio_error(
                400, 21220, "Invalid call state: the call is not in-progress. Cannot record."
            )
        params, every = await form_of(request)
        channels = params.get("RecordingChannels", "mono")
        if channels not in ("mono", "dual"):
            return twilio_error(400, None, f"RecordingChannels must be mono or dual: {channels}")
        track = params.get("RecordingTrack", "both")
        asked = every.get("RecordingStatusCallbackEvent", [])
        events = frozenset(word for value in asked for word in value.split()) or frozenset(
            {"completed"}
        )
        unknown = events - RECORDING_EVENTS
        if unknown:
            return twilio_error(
                400, None, f"Invalid RecordingStatusCallbackEvent: {' '.join(sorted(unknown))}"
            )
        recording = RecordingState(
            sid=new_sid("RE"),
            call_sid=call_sid,
            channels=2 if channels == "dual" else 1,
            track=track,
            status="in-progress",
            started_at=now(),
            ended_at=None,
            status_callback=params.get("RecordingStatusCallback") or None,
            callback_method=(params.get("RecordingStatusCallbackMethod") or "POST").upper(),
            events=events,
        )
        with self._lock:
            self._recordings[recording.sid] = recording
        logger.info("twilio: recording %s of %s started", recording.sid, call_sid)
        if "in-progress" in events:
            self._background.spawn(self._report(recording.sid, "in-progress"))
        return web.json_response(self._resource(recording), status=201)

    async def _update(self, request: web.Request) -> web.Response:
        if not self._credentials.accept(request):
            return unauthenticated()
        recording = self._find(request)
        if recording is None:
            return not_found(request.path)
        params, _ = await form_of(request)
        if params.get("Status") != "stopped":
            return twilio_error(400, None, "The emulator supports only Status=stopped")
        if recording.status == "in-progress":
            self._complete(recording.sid)
        return web.json_response(self._resource(self._recordings[recording.sid]))

    async def _fetch(self, request: web.Request) -> web.Response:
        if not self._credentials.accept(request):
            return unauthenticated()
        recording = self._find(request)
        if recording is None:
            return not_found(request.path)
        return web.json_response(self._resource(recording))

    def _find(self, request: web.Request) -> RecordingState | None:
        with self._lock:
            recording = self._recordings.get(request.match_info["sid"])
        if recording is None or recording.call_sid != request.match_info["call_sid"]:
            return None
        return recording

    # ----------------------------------------------------------------- completion

    def _complete(self, sid: str) -> None:
        with self._lock:
            recording = replace(self._recordings[sid], status="completed", ended_at=now())
            self._recordings[sid] = recording
            if self._held:
                self._waiting.append(sid)
                return
        self._background.spawn(self._report(sid, "completed"))

    async def _report(self, sid: str, event: str) -> None:
        with self._lock:
            recording = self._recordings[sid]
        if recording.status_callback is None or event not in recording.events:
            return
        form = {
            "AccountSid": self._account_sid,
            "CallSid": recording.call_sid,
            "RecordingSid": recording.sid,
            "RecordingUrl": self.recording_url(recording.sid),
            "RecordingStatus": event,
            "RecordingDuration": str(recording.duration if event == "completed" else 0),
            "RecordingChannels": str(recording.channels),
            "RecordingStartTime": rfc2822(recording.started_at),
            "RecordingSource": SOURCE,
            "RecordingTrack": recording.track,
            "ErrorCode": "0",
        }
        if event != "completed":
            del form["RecordingDuration"]
        await self._sender.send(
            "recording_status", recording.status_callback, form, method=recording.callback_method
        )

    def recording_url(self, sid: str) -> str:
        """Where the recording's media lives (no extension, as Twilio gives it)."""
        return f"{self._base_url()}/{API_VERSION}/Accounts/{self._account_sid}/Recordings/{sid}"

    def _resource(self, recording: RecordingState) -> dict[str, Any]:
        uri = (
            f"/{API_VERSION}/Accounts/{self._account_sid}/Calls/{recording.call_sid}"
            f"/Recordings/{recording.sid}.json"
        )
        return {
            "account_sid": self._account_sid,
            "api_version": API_VERSION,
            "call_sid": recording.call_sid,
            "conference_sid": None,
            "date_created": rfc2822(recording.started_at),
            "date_updated": rfc2822(recording.ended_at or recording.started_at),
            "start_time": rfc2822(recording.started_at),
            "duration": str(recording.duration),
            "sid": recording.sid,
            "price": None,
            "price_unit": "USD",
            "status": recording.status,
            "channels": recording.channels,
            "source": SOURCE,
            "error_code": None,
            "uri": uri,
            "encryption_details": None,
            "track": recording.track,
        }

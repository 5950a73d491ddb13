"""After the call: every record reaches the dashboard once, or is dead-lettered with an alert.

Issue 6. DESIGN.md invariant 1: a lead is never lost — every call's records are durable
before the call counts as finished, and are delivered or dead-lettered (with an alert)
across dashboard outages and process restarts.

Most tests run the real DashboardSync against the real dashboard emulator on loopback,
which verifies signature, timestamp, Idempotency-Key and docs/schemas/. Where time
matters, the outbox and the actor share a clock the test moves and ``deliver_due()`` is
called explicitly, so nothing waits out a backoff. The end-to-end tests run the real
server process (tests/stack.py), kill it or stop it, and start another on the same
outbox.
"""

from __future__ import annotations

import functools
import json
import shutil
import signal
import tempfile
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from actors.dashboard_sync import RETRY_MAX_SECONDS, DashboardMessage, DashboardSync
from actors.web import WebActor
from emulators.caller import place_call
from emulators.caller_control import HttpCallControl
from emulators.caller_webhooks import new_call_sid
from emulators.dashboard import DashboardEmulator
from emulators.faults import Fault, FaultKind
from emulators.scenario import Scenario, load_scenario
from frontdesk.delivery.outbox import Outbox
from frontdesk.delivery.records import SCHEMA_DIR, AlertKind
from frontdesk.runtime.metrics import CallbackCollector, Metrics
from supervisor import Supervisor
from tests.dashboard_sync_support import (
    ROUTES,
    SECRET,
    USER_EMAIL,
    Answer,
    FakeClock,
    LoseAnswer,
    WatchedOutbox,
    Wiretap,
    abandoned_call,
    booked_call,
    call_alert,
    callback_job,
    dashboard_settings,
    expected_signature,
    new_sid,
    poll_emulator,
    running_sync,
)
from tests.stack import Stack, stack
from tests.support import SECRETS, base_env, run_main, running_server


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # module scope, so one crashed call can serve two tests


@pytest.fixture
async def dashboard():
    async with DashboardEmulator(secret=SECRET, schema_dir=SCHEMA_DIR) as emulator:
        yield emulator


@pytest.fixture
async def outbox(tmp_path):
    box = WatchedOutbox(tmp_path / "outbox.sqlite3")
    yield box
    box.close()


def attempts_for(dashboard: DashboardEmulator, record_id: str) -> list[int]:
    """The status the dashboard answered to each request carrying ``record_id``."""
    return [a["status"] for a in dashboard.attempts() if a["idempotency_key"] == record_id]


def received_keys(dashboard: DashboardEmulator, route: str | None = None) -> list[str]:
    """Idempotency keys the dashboard stored, in arrival order."""
    return [r["idempotency_key"] for r in dashboard.received(route)]


def offline_sync(outbox: Outbox, settings, **kwargs) -> DashboardSync:
    """A DashboardSync driven by ``deliver_due()`` alone, as ``main.py outbox retry`` does."""
    notify, inbox = anyio.create_memory_object_stream[DashboardMessage](1)
    notify.close()
    inbox.close()  # deliver_due() never reads its inbox
    return DashboardSync(outbox=outbox, inbox=inbox, settings=settings, **kwargs)


# ------------------------------------------------------------------ 1. delivery


@pytest.mark.anyio
async def test_each_record_kind_reaches_its_own_endpoint_signed_valid_and_keyed_by_record_id(
    dashboard, outbox
):
    call_sid = new_sid()
    call, job = booked_call(call_sid)
    notice = call_alert(AlertKind.EMERGENCY, call_sid, "caller reported a gas smell")
    records = {r.record_id: r for r in (call, job, notice)}
    tap = Wiretap()
    current = dashboard_settings(dashboard)

    async with running_sync(outbox, lambda: current, transport=tap) as (_, sink):
        await sink.submit(list(records.values()))
        await outbox.wait_until(lambda: outbox.stats().delivered == 3)

    assert [(r.status, r.attempts) for r in outbox.records()] == [("delivered", 1)] * 3
    assert len(tap.tapped) == 3
    for tapped in tap.tapped:
        request = tapped.request
        record = records[request.headers["Idempotency-Key"]]
        route = ROUTES[record.kind]
        assert request.url.path == f"/webhooks/{route}"
        assert request.headers["Content-Type"] == "application/json"
        stamp = request.headers["X-Frontdesk-Timestamp"]
        assert stamp.isdigit()
        assert request.headers["X-Frontdesk-Signature"] == expected_signature(
            SECRET, stamp, request.content
        )
        assert json.loads(request.content) == record.model_dump(mode="json")
        assert tapped.outcome == 201
        # The emulator checked signature, freshness, key and docs/schemas/<kind>.schema.json.
        assert received_keys(dashboard, route) == [record.record_id]
    assert [a["status"] for a in dashboard.attempts()] == [201, 201, 201]


# --------------------------------------------------------- 2. retries, exactly once


async def deliver_until_settled(
    sync: DashboardSync, outbox: Outbox, clock: FakeClock, *, passes: int = 12
) -> list[float]:
    """Delivery passes, moving the clock to each next due time; the delays seen."""
    delays = []
    for _ in range(passes):
        await sync.deliver_due()
        next_at = outbox.next_due_at()
        if next_at is None:
            return delays
        delays.append(next_at - clock())
        clock.advance_to(next_at)
    raise AssertionError(f"still pending after {passes} passes: {outbox.pending()}")


@pytest.mark.anyio
async def test_outage_then_recovery_stores_the_record_once_even_when_an_answer_was_lost(
    dashboard, tmp_path
):
    clock = FakeClock()
    outbox = Outbox(tmp_path / "outbox.sqlite3", clock=clock)
    record, _ = booked_call()
    # Three 503s; then the dashboard stores the record but its 201 never comes back.
    dashboard.faults.add(Fault(kind=FaultKind.ERROR, status=503, route="calls", times=3))
    tap = Wiretap([None, None, None, LoseAnswer()])
    sync = offline_sync(outbox, lambda: dashboard_settings(dashboard), clock=clock, transport=tap)
    outbox.put([record])

    await deliver_until_settled(sync, outbox, clock)

    (stored,) = outbox.records()
    assert (stored.status, stored.attempts) == ("delivered", 5)
    assert [t.outcome for t in tap.tapped] == [503, 503, 503, "lost", 200]
    assert attempts_for(dashboard, record.record_id) == [503, 503, 503, 201, 200]
    assert received_keys(dashboard) == [record.record_id]
    outbox.close()


@pytest.mark.parametrize(("status", "retry_after"), [(429, 1), (503, 7)])
@pytest.mark.anyio
async def test_retry_after_sets_the_next_attempt_and_nothing_is_sent_before_it(
    dashboard, tmp_path, status, retry_after
):
    clock = FakeClock()
    outbox = Outbox(tmp_path / "outbox.sqlite3", clock=clock)
    record, _ = booked_call()
    tap = Wiretap([Answer(status, {"Retry-After": str(retry_after)})])
    sync = offline_sync(outbox, lambda: dashboard_settings(dashboard), clock=clock, transport=tap)
    outbox.put([record])
    asked_at = clock()

    await sync.deliver_due()
    (waiting,) = outbox.pending()
    assert waiting.next_attempt_at == pytest.approx(asked_at + retry_after, abs=1e-6)
    assert waiting.last_error == f"HTTP {status}"

    clock.advance_to(asked_at + retry_after - 0.5)
    assert await sync.deliver_due() == 1
    assert len(tap.tapped) == 1  # not before the header allows

    clock.advance_to(asked_at + retry_after)
    assert await sync.deliver_due() == 0
    assert [t.outcome for t in tap.tapped] == [status, 201]
    assert attempts_for(dashboard, record.record_id) == [201]
    outbox.close()


@pytest.mark.anyio
async def test_without_retry_after_the_backoff_doubles_with_each_failure(dashboard, tmp_path):
    clock = FakeClock()
    outbox = Outbox(tmp_path / "outbox.sqlite3", clock=clock)
    dashboard.faults.add(Fault(kind=FaultKind.ERROR, status=503, route="calls", times=6))
    sync = offline_sync(outbox, lambda: dashboard_settings(dashboard), clock=clock)
    record, _ = booked_call()
    outbox.put([record])

    delays = await deliver_until_settled(sync, outbox, clock)

    assert len(delays) == 6
    for failures_before, delay in enumerate(delays):
        ceiling = 2.0**failures_before  # RETRY_INITIAL_SECONDS * 2**attempts, full jitter
        assert ceiling / 2 <= delay <= ceiling, delays
    assert delays == sorted(delays)
    assert attempts_for(dashboard, record.record_id) == [503] * 6 + [201]


# ------------------------------------------------------------- 3. dead letters


@pytest.fixture
async def drifted_dashboard(tmp_path):
    """A dashboard whose call schema drifted: it now insists on a ZIP code."""
    schemas = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, schemas)
    call_schema = json.loads((schemas / "call.schema.json").read_text())
    call_schema["$defs"]["Lead"]["properties"]["zip"] = {"type": "string"}
    (schemas / "call.schema.json").write_text(json.dumps(call_schema))
    async with DashboardEmulator(secret=SECRET, schema_dir=schemas) as emulator:
        yield emulator


@pytest.mark.anyio
async def test_a_refused_record_is_dead_lettered_with_the_reason_alerted_and_never_retried(
    drifted_dashboard, outbox
):
    dashboard = drifted_dashboard
    refused = abandoned_call()  # no ZIP: the drifted schema answers 400
    fine, _ = booked_call()
    current = dashboard_settings(dashboard)

    async with running_sync(outbox, lambda: current) as (_, sink):
        await sink.submit([refused, fine])
        await outbox.wait_until(
            lambda: outbox.stats().dead == 1 and outbox.stats().pending == 0, timeout=10
        )
        # Another pass of the same lane afterwards: the dead record must stay untouched.
        later, _ = booked_call()
        await sink.submit([later])
        await outbox.wait_until(lambda: outbox.status(later.record_id) == "delivered")

    dead = outbox.get(refused.record_id)
    assert dead.status == "dead"
    assert dead.last_error is not None
    assert dead.last_error.startswith("HTTP 400: ")
    reason = json.loads(dead.last_error.removeprefix("HTTP 400: "))
    assert reason["error"] == "schema_violation"
    assert "$.lead.zip" in reason["reason"]
    assert attempts_for(dashboard, refused.record_id) == [400]

    (alert_row,) = [r for r in outbox.records() if r.kind == "alert"]
    assert alert_row.status == "delivered"
    (received,) = dashboard.received("alerts")
    body = received["body"]
    assert body["record_id"] == alert_row.record_id
    assert body["alert"] == "record_dead_lettered"
    assert body["severity"] == "critical"
    assert body["call_sid"] == refused.call_sid
    assert body["user_email"] == USER_EMAIL
    assert body["details"] == {"record_id": refused.record_id}
    assert "HTTP 400" in body["message"]
    assert set(received_keys(dashboard, "calls")) == {fine.record_id, later.record_id}


@pytest.mark.anyio
async def test_a_dead_lettered_alert_raises_no_alert_of_its_own(drifted_dashboard, tmp_path):
    dashboard = drifted_dashboard
    dashboard.faults.add(Fault(kind=FaultKind.ERROR, status=400, route="alerts"))
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    sync = offline_sync(outbox, lambda: dashboard_settings(dashboard))
    refused = abandoned_call()
    outbox.put([refused])

    left = await sync.deliver_due()  # the call dies, its alert is sent and dies too
    assert await sync.deliver_due() == left == 0

    rows = outbox.records()
    assert [(r.kind, r.status) for r in rows] == [("call", "dead"), ("alert", "dead")]
    assert json.loads(rows[1].body)["details"] == {"record_id": refused.record_id}
    assert rows[1].last_error is not None and rows[1].last_error.startswith("HTTP 400")
    assert [a["kind"] for a in dashboard.attempts()] == ["calls", "alerts"]
    outbox.close()


@pytest.mark.anyio
async def test_a_record_undeliverable_for_longer_than_the_limit_is_dead_lettered_and_alerted(
    dashboard, tmp_path
):
    clock = FakeClock()
    outbox = Outbox(tmp_path / "outbox.sqlite3", clock=clock)
    dashboard.faults.add(Fault(kind=FaultKind.ERROR, status=503, route="calls"))
    sync = offline_sync(
        outbox,
        lambda: dashboard_settings(dashboard, dashboard_max_retry_seconds=60),
        clock=clock,
    )
    record, _ = booked_call()
    outbox.put([record])

    await deliver_until_settled(sync, outbox, clock)

    dead, notice = outbox.records()
    assert (dead.record_id, dead.status) == (record.record_id, "dead")
    assert dead.last_error == "undelivered for over 60s"
    assert clock() - dead.created_at > 60
    assert set(attempts_for(dashboard, record.record_id)) == {503}
    assert notice.status == "delivered"
    assert json.loads(notice.body)["details"] == {"record_id": record.record_id}
    outbox.close()


# ----------------------------------------------------------------- 4. ordering


@pytest.mark.anyio
async def test_a_calls_later_record_waits_behind_its_failing_earlier_one_but_other_calls_go(
    dashboard, outbox
):
    x, y = new_sid(), new_sid()
    first = call_alert(AlertKind.TTS_FAILOVER, x, "voice failed over to deepgram")
    second = call_alert(AlertKind.TURN_LIMIT, x, "call escalated after 12 turns")
    other = call_alert(AlertKind.EMERGENCY, y, "caller reported a gas smell")
    # Only the first request to the alerts endpoint fails: that is X's first alert.
    dashboard.faults.add(Fault(kind=FaultKind.ERROR, status=503, route="alerts", times=1))
    current = dashboard_settings(dashboard)

    async with running_sync(outbox, lambda: current) as (_, sink):
        await sink.submit([first, second, other])
        await outbox.wait_until(lambda: outbox.stats().delivered == 3)

    order = received_keys(dashboard, "alerts")
    assert attempts_for(dashboard, first.record_id) == [503, 201]
    assert order.index(first.record_id) < order.index(second.record_id), (
        "call X's second alert reached the dashboard before its first"
    )
    assert order.index(other.record_id) < order.index(first.record_id), (
        "call Y's alert waited for call X's retry"
    )


@pytest.mark.anyio
async def test_a_slow_jobs_endpoint_does_not_hold_up_calls_and_alerts(dashboard, outbox):
    sid = new_sid()
    call, job = booked_call(sid)
    notice = call_alert(AlertKind.EMERGENCY, sid, "caller reported a gas smell")
    dashboard.faults.add(Fault(kind=FaultKind.LATENCY, route="jobs", seconds=5, times=1))
    current = dashboard_settings(dashboard)

    async with running_sync(outbox, lambda: current) as (_, sink):
        await sink.submit([job, call, notice])
        await outbox.wait_until(
            lambda: outbox.status(call.record_id) == outbox.status(notice.record_id) == "delivered",
            timeout=4,
        )
        assert outbox.status(job.record_id) == "pending"
        assert received_keys(dashboard, "jobs") == []


# -------------------------------------------------------- 5. missing settings


@pytest.mark.parametrize(
    ("missing", "alerts_configured"),
    [({"dashboard_calls_url": None}, True), ({"dashboard_webhook_secret": None}, False)],
    ids=["no-calls-url", "no-secret"],
)
@pytest.mark.anyio
async def test_records_wait_unattempted_until_the_dashboard_is_configured(
    dashboard, tmp_path, missing, alerts_configured
):
    clock = FakeClock()
    outbox = WatchedOutbox(tmp_path / "outbox.sqlite3", clock=clock)
    current = {"settings": dashboard_settings(dashboard, **missing)}
    call, _ = booked_call()
    notice = call_alert(AlertKind.TTS_FAILOVER, call.call_sid, "voice failed over")

    def unconfigured(record_id: str) -> bool:
        return outbox.get(record_id).last_error == "dashboard not configured"

    async with running_sync(outbox, lambda: current["settings"], clock=clock) as (sync, sink):
        await sink.submit([call, notice])
        await outbox.wait_until(lambda: unconfigured(call.record_id))
        if alerts_configured:
            await outbox.wait_until(lambda: outbox.status(notice.record_id) == "delivered")
        else:
            await outbox.wait_until(lambda: unconfigured(notice.record_id))
        waiting = outbox.get(call.record_id)
        assert (waiting.status, waiting.attempts) == ("pending", 0)
        assert attempts_for(dashboard, call.record_id) == []

        current["settings"] = dashboard_settings(dashboard)
        clock.advance_to(waiting.next_attempt_at)  # the actor's next look at the settings
        sync.wake()
        await outbox.wait_until(lambda: outbox.stats().pending == 0)

    assert [(r.status, r.attempts) for r in outbox.records()] == [("delivered", 1)] * 2
    assert attempts_for(dashboard, call.record_id) == [201]
    assert attempts_for(dashboard, notice.record_id) == [201]
    outbox.close()


# ------------------------------------------------- 6. durability across kill -9


def outbox_rows(path: Path) -> list:
    """Every record in the outbox file at ``path`` (another process may own it)."""
    box = Outbox(path)
    try:
        return box.records()
    finally:
        box.close()


def metric_values(text: str) -> dict[tuple[str, tuple], float]:
    """Prometheus text as {(sample name, sorted labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.anyio
async def test_records_pending_when_the_server_is_killed_are_delivered_once_by_the_next_one(
    tmp_path,
):
    scenario = load_scenario("caller_hangs_up_mid_sentence")
    async with stack(tmp_path) as s:
        dashboard = s.world.dashboard
        dashboard.faults.add(Fault(kind=FaultKind.REFUSE))
        await dashboard.faults_applied()
        sids: list[str] = []

        async def call() -> None:
            sids.append((await s.run(scenario, settle_seconds=0)).report.call_sid)

        with anyio.fail_after(40):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                tg.start_soon(call)
            # "call finished" is logged once the records are committed to the outbox. A
            # refusal is logged before it is written down, so wait for each record's
            # second refusal: by then the first is on disk.
            finished, refusals = 0, defaultdict[str, int](int)
            while finished < 2 or len(refusals) < 2 or min(refusals.values()) < 2:
                line = await s.log.wait_for(
                    r"call finished|call record (\S+) not delivered \(ConnectError\)"
                )
                if line.group(1):
                    refusals[line.group(1)] += 1
                else:
                    finished += 1
        refused = set(refusals)

        outbox_path = Path(s.env["OUTBOX_PATH"])
        rows = outbox_rows(outbox_path)
        assert {r.call_sid for r in rows} == set(sids)
        assert {r.record_id for r in rows} == refused
        assert all(r.status == "pending" and r.attempts >= 1 for r in rows), rows
        metrics = metric_values(await s.metrics())
        assert metrics[("frontdesk_outbox_pending", ())] == 2
        assert metrics[("frontdesk_outbox_deliveries_total", (("result", "retried"),))] >= 2
        assert metrics[("frontdesk_outbox_deliveries_total", (("result", "delivered"),))] == 0
        assert metrics[("frontdesk_outbox_oldest_pending_seconds", ())] > 0

        s.server.signal(signal.SIGKILL)
        with anyio.fail_after(10):
            await s.server.process.wait()
        dashboard.faults.clear()
        await dashboard.faults_applied()

        async with running_server(s.env, args=("--env-file", str(tmp_path / "world.env"))) as (
            server,
            _,
        ):
            await poll_emulator(
                lambda: set(received_keys(dashboard)) == refused,
                what="the new process delivers what the killed one left pending",
            )
            server.signal(signal.SIGTERM)
            with anyio.fail_after(30):
                await server.process.wait()

    assert sorted(received_keys(dashboard)) == sorted(refused)
    for record_id in refused:
        assert attempts_for(dashboard, record_id) == [201], "sent more than once"
    assert all(r.status == "delivered" for r in outbox_rows(outbox_path))


# ---------------------------------------------- 7. crashed and cut-off calls


def caller_on_hold() -> Scenario:
    """A caller who says nothing for a long while, so the call is still up when we act."""
    return Scenario.model_validate(
        {
            "name": "caller_on_hold",
            "description": "The caller stays silent; the test crashes or stops the call.",
            "call": {"from": "+14155550166", "to": "+14155550100"},
            "caller": [{"silence": 25}],
            "max_seconds": 35,
        }
    )


def bodies_for(dashboard: DashboardEmulator, route: str, call_sid: str) -> list[dict]:
    """Bodies the dashboard stored on ``route`` for ``call_sid``."""
    return [r["body"] for r in dashboard.received(route) if r["body"].get("call_sid") == call_sid]


async def call_in_flight(s: Stack, call_sid: str, act: Callable[[], object]) -> None:
    """Place a call; once the server has started it, ``await act()``; wait for the call's end."""
    async with HttpCallControl(s.world.control_url) as control:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    functools.partial(
                        place_call,
                        caller_on_hold(),
                        server_url=s.url,
                        account_sid=s.env["TWILIO_ACCOUNT_SID"],
                        auth_token=s.env["TWILIO_AUTH_TOKEN"],
                        control=control,
                        call_sid=call_sid,
                    )
                )
                await s.log.wait_for(rf"call_sid={call_sid} call started")
                await act()  # type: ignore[misc]


@dataclass(frozen=True)
class CrashedCall:
    """What the dashboard received for a call crashed on purpose."""

    records: list[dict]
    alerts: list[dict]


@pytest.fixture(scope="module")
async def crashed_call(tmp_path_factory) -> CrashedCall:
    sid = new_call_sid()
    async with stack(tmp_path_factory.mktemp("crash"), IDLE_REPROMPT_SECONDS="60") as s:

        async def crash() -> None:
            async with httpx.AsyncClient(base_url=s.url) as http:
                answer = await http.post(f"/debug/calls/{sid}/crash")
            assert answer.status_code == 200, answer.text

        await call_in_flight(s, sid, crash)
        dashboard = s.world.dashboard
        await poll_emulator(
            lambda: bodies_for(dashboard, "calls", sid) and bodies_for(dashboard, "alerts", sid),
            what="the crashed call's record and alert",
        )
    return CrashedCall(
        records=bodies_for(dashboard, "calls", sid), alerts=bodies_for(dashboard, "alerts", sid)
    )


@pytest.mark.anyio
async def test_a_crashed_call_still_yields_its_record_with_outcome_error(crashed_call):
    (record,) = crashed_call.records
    assert record["outcome"] == "error"
    assert record["ended_by"] == "error"
    assert record["hangup"] == "hung_up"
    assert record["error"]
    (crashed,) = crashed_call.alerts
    assert crashed["alert"] == "call_crashed"
    assert crashed["severity"] == "critical"


@pytest.mark.anyio
async def test_a_crashed_calls_record_and_alert_name_what_crashed(crashed_call):
    (record,) = crashed_call.records
    (crashed,) = crashed_call.alerts
    # The operator reads these to diagnose the crash; a bare "ExceptionGroup" says nothing.
    assert "CrashInjected" in record["error"], record["error"]
    assert "CrashInjected" in crashed["message"], crashed["message"]


@pytest.mark.anyio
async def test_a_call_cut_by_shutdown_still_yields_its_record(tmp_path):
    sid = new_call_sid()
    async with stack(tmp_path, IDLE_REPROMPT_SECONDS="60", SHUTDOWN_GRACE_SECONDS="1") as s:

        async def stop_server() -> None:
            s.server.signal(signal.SIGTERM)
            with anyio.fail_after(45):
                await s.server.process.wait()

        await call_in_flight(s, sid, stop_server)
        dashboard = s.world.dashboard
        # All the call's records (the call, and the callback its goodbye promised) were
        # committed before the process exited, though maybe not yet delivered: then
        # the next process on the same outbox delivers them.
        rows = [r for r in outbox_rows(Path(s.env["OUTBOX_PATH"])) if r.call_sid == sid]
        (call_row,) = [r for r in rows if r.kind == "call"]
        assert json.loads(call_row.body)["ended_by"] == "shutdown"
        if any(r.status == "pending" for r in rows):
            async with running_server(s.env, args=("--env-file", str(tmp_path / "world.env"))):
                await poll_emulator(
                    lambda: {r.record_id for r in rows} <= set(received_keys(dashboard)),
                    what="the next process delivers the cut-off call's records",
                )

    (record,) = bodies_for(dashboard, "calls", sid)
    assert record["ended_by"] == "shutdown"
    assert record["record_id"] == call_row.record_id
    for row in rows:
        # Stored once. A POST the stop cut off after the dashboard had stored it is sent
        # again by the last pass under the same key, and answered as a duplicate (200):
        # the at-least-once delivery the webhook contract documents.
        first, *repeats = attempts_for(dashboard, row.record_id)
        assert first == 201 and all(status == 200 for status in repeats), row


# ------------------------------------------------------------ 8. the property


@dataclass(frozen=True)
class Reply:
    """The dashboard answers with ``status`` (and maybe ``Retry-After``)."""

    status: int
    retry_after: str | None = None


@dataclass(frozen=True)
class Broken:
    """No answer: refused, timed out, or stored and then the connection dropped."""

    how: str


RETRYABLE_STATUSES = [408, 429, 500, 502, 503, 504]
ANSWERS = st.one_of(
    st.builds(Reply, st.sampled_from([200, 201, 202, 204])),
    st.builds(Reply, st.sampled_from(RETRYABLE_STATUSES)),
    st.builds(
        Reply,
        st.sampled_from([429, 503]),
        st.sampled_from(["0", "1", "2", "30", "120", "86400", "soon"]),
    ),
    st.builds(Reply, st.sampled_from([400, 401, 404])),
    st.builds(Broken, st.sampled_from(["connect_error", "timeout", "stored_then_dropped"])),
)
RECORD_SPECS = st.tuples(st.sampled_from(["call", "job", "alert"]), st.sampled_from("XYZ-"))


def delivered_answer(answer: Reply | Broken) -> bool:
    return isinstance(answer, Reply) and 200 <= answer.status < 300


def refused_answer(answer: Reply | Broken) -> bool:
    return isinstance(answer, Reply) and answer.status in (400, 401, 404)


def least_delay(answer: Reply | Broken, failures_before: int) -> float:
    """The shortest wait DashboardSync may leave after ``answer``."""
    if isinstance(answer, Reply) and answer.retry_after is not None:
        try:
            return min(RETRY_MAX_SECONDS, max(0.0, float(answer.retry_after)))
        except ValueError:
            pass
    return min(RETRY_MAX_SECONDS, 2.0 ** min(failures_before, 10)) / 2


class ScriptedDashboard:
    """A dashboard behind httpx.MockTransport answering from a script, then 201 for ever."""

    def __init__(self, answers: list[Reply | Broken], clock: FakeClock) -> None:
        self.script = deque(answers)
        self.clock = clock
        self.stored: set[str] = set()
        self.requests: dict[str, list[tuple[float, Reply | Broken]]] = defaultdict(list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = request.headers["Idempotency-Key"]
        stamp = request.headers["X-Frontdesk-Timestamp"]
        assert request.headers["X-Frontdesk-Signature"] == expected_signature(
            SECRET, stamp, request.content
        )
        answer = self.script.popleft() if self.script else Reply(201)
        self.requests[key].append((self.clock(), answer))
        match answer:
            case Broken(how="connect_error"):
                raise httpx.ConnectError("connection refused", request=request)
            case Broken(how="timeout"):
                raise httpx.ReadTimeout("timed out", request=request)
            case Broken():
                self.stored.add(key)
                raise httpx.RemoteProtocolError("server disconnected", request=request)
            case Reply(status=status, retry_after=retry_after):
                if 200 <= status < 300:
                    self.stored.add(key)
                headers = {"Retry-After": retry_after} if retry_after is not None else {}
                return httpx.Response(status, headers=headers, json={"status": status})
        raise AssertionError(answer)


def build_record(kind: str, call: str):
    sid = None if call == "-" else f"CA{call * 32}"
    match kind:
        case "call":
            return booked_call(sid or f"CA{'W' * 32}")[0]
        case "job":
            return callback_job(sid or f"CA{'W' * 32}")
        case _:
            return call_alert(AlertKind.TTS_FAILOVER, sid, "voice failed over to deepgram")


@pytest.mark.anyio
@given(
    batches=st.lists(st.lists(RECORD_SPECS, min_size=1, max_size=5), min_size=1, max_size=4),
    answers=st.lists(ANSWERS, max_size=40),
    max_retry=st.sampled_from([20.0, 600.0, 86400.0]),
)
@settings(max_examples=60, deadline=None)
async def test_whatever_the_dashboard_answers_each_record_ends_delivered_once_or_dead_alerted(
    batches, answers, max_retry
):
    with tempfile.TemporaryDirectory() as directory:
        clock = FakeClock(1_800_000_000.0)
        outbox = Outbox(Path(directory) / "outbox.sqlite3", clock=clock)
        dashboard = ScriptedDashboard(answers, clock)
        current = dashboard_settings("http://dashboard.test", dashboard_max_retry_seconds=max_retry)
        sync = offline_sync(
            outbox, lambda: current, clock=clock, transport=httpx.MockTransport(dashboard)
        )
        enqueued: list[str] = []
        # Put each batch, make a delivery pass, move the clock to the next due record;
        # the script of answers runs out, after which the dashboard answers 201.
        for step in range(len(answers) + len(batches) + 20):
            if step < len(batches):
                records = [build_record(kind, call) for kind, call in batches[step]]
                outbox.put(records)
                enqueued.extend(r.record_id for r in records)
            left = await sync.deliver_due()
            if left == 0 and step >= len(batches) - 1:
                break
            next_at = outbox.next_due_at()
            if next_at is not None:
                clock.advance_to(next_at)
        rows = {r.record_id: r for r in outbox.records()}
        outbox.close()

    # Never lost, never pending for ever once the answers stop failing.
    assert set(enqueued) <= set(rows)
    assert {r.status for r in rows.values()} <= {"delivered", "dead"}, [
        r for r in rows.values() if r.status == "pending"
    ]
    dead_letter_alerts: dict[str, list[str]] = defaultdict(list)
    for row in rows.values():
        body = json.loads(row.body)
        if row.kind == "alert" and body["alert"] == "record_dead_lettered":
            dead_letter_alerts[body["details"]["record_id"]].append(row.record_id)
    assert set(rows) == set(enqueued) | {a for ids in dead_letter_alerts.values() for a in ids}

    for record_id, row in rows.items():
        requests = dashboard.requests[record_id]
        answered = [answer for _, answer in requests]
        successes = [i for i, answer in enumerate(answered) if delivered_answer(answer)]
        # Delivered exactly once: one 2xx, and nothing sent after it.
        if row.status == "delivered":
            assert successes == [len(requests) - 1], answered
            assert record_id in dashboard.stored
        else:
            assert successes == [], answered
            refusals = [i for i, answer in enumerate(answered) if refused_answer(answer)]
            if refusals:
                assert refusals == [len(requests) - 1], answered
            else:
                assert clock() - row.created_at > max_retry, "dead without a reason"
        # Only failures worth retrying were retried, never sooner than allowed, and
        # never once the record was older than DASHBOARD_MAX_RETRY_SECONDS.
        assert not any(refused_answer(a) for a in answered[:-1]), answered
        assert all(sent - row.created_at <= max_retry for sent, _ in requests), row
        for i in range(1, len(requests)):
            (sent, answer), (resent, _) = requests[i - 1], requests[i]
            assert resent - sent >= least_delay(answer, i - 1) - 1e-6, (answer, i)
        # Dead letters raise exactly one alert each; a dead alert raises none.
        alerts_about = dead_letter_alerts.get(record_id, [])
        if row.status == "dead" and row.kind != "alert":
            assert len(alerts_about) == 1, row
        else:
            assert alerts_about == [], row


# --------------------------------------------------------------- 9. the CLI


@pytest.mark.anyio
async def test_outbox_cli_lists_waiting_and_dead_records_and_resends_dead_letters(
    dashboard, tmp_path
):
    env = base_env(tmp_path)
    assert SECRETS["DASHBOARD_WEBHOOK_SECRET"] == SECRET
    env_file = tmp_path / "dashboard.env"
    env_file.write_text(
        "".join(
            f"DASHBOARD_{kind.upper()}_URL={dashboard.url}/webhooks/{kind}\n"
            for kind in ("calls", "jobs", "alerts")
        )
    )
    outbox = Outbox(Path(env["OUTBOX_PATH"]))
    # The operator had rotated the secret on one side only: refused with 401, for good.
    stale = offline_sync(
        outbox, lambda: dashboard_settings(dashboard, dashboard_webhook_secret="stale-secret")
    )
    refused, _ = booked_call()
    outbox.put([refused])
    await stale.deliver_due()
    # A later record meets a busy dashboard that asks for five minutes' peace.
    busy = offline_sync(
        outbox,
        lambda: dashboard_settings(dashboard),
        transport=Wiretap([Answer(503, {"Retry-After": "300"})]),
    )
    waiting = callback_job()
    outbox.put([waiting])
    await busy.deliver_due()
    (dead_alert,) = [r for r in outbox.records() if r.kind == "alert"]
    outbox.close()
    cli = functools.partial(run_main, env=env)

    code, out, err = await anyio.to_thread.run_sync(
        cli, "outbox", "list", "--env-file", str(env_file)
    )
    assert code == 0, err
    lines = {line.split()[2]: line for line in out.splitlines() if len(line.split()) > 2}
    assert lines[refused.record_id].startswith("dead ")
    assert "HTTP 401" in lines[refused.record_id]
    assert "bad_signature" in lines[refused.record_id]
    assert lines[dead_alert.record_id].startswith("dead ")
    assert "HTTP 401" in lines[dead_alert.record_id]
    assert lines[waiting.record_id].startswith("pending ")
    assert "HTTP 503" in lines[waiting.record_id]
    assert out.splitlines()[-1] == "1 pending, 0 delivered, 2 dead"

    code, out, err = await anyio.to_thread.run_sync(
        cli, "outbox", "retry", "--deliver", "--env-file", str(env_file)
    )
    assert code == 0, err
    assert "2 dead-lettered records queued again" in out
    assert "delivery pass done; 1 still pending" in out
    assert attempts_for(dashboard, refused.record_id) == [401, 201]
    assert attempts_for(dashboard, dead_alert.record_id) == [401, 201]
    assert received_keys(dashboard, "calls") == [refused.record_id]
    assert received_keys(dashboard, "alerts") == [dead_alert.record_id]
    assert received_keys(dashboard, "jobs") == []
    statuses = {r.record_id: r.status for r in outbox_rows(Path(env["OUTBOX_PATH"]))}
    assert statuses == {
        refused.record_id: "delivered",
        dead_alert.record_id: "delivered",
        waiting.record_id: "pending",
    }


# ----------------------------------------------------------------- 10. metrics


@pytest.mark.anyio
async def test_metrics_follow_the_outbox_through_retries_deliveries_and_dead_letters(
    dashboard, tmp_path
):
    clock = FakeClock()
    outbox = Outbox(tmp_path / "outbox.sqlite3", clock=clock)
    sync = offline_sync(outbox, lambda: dashboard_settings(dashboard), clock=clock)
    metrics = Metrics()
    metrics.register(CallbackCollector(sync.metric_families))  # as frontdesk/app.py wires it
    web = WebActor(
        supervisor=Supervisor(),
        metrics=metrics,
        host="127.0.0.1",
        port=0,
        max_calls=lambda: 1,
        max_request_bytes=1 << 20,
        development=False,
    )

    async with anyio.create_task_group() as tg, httpx.AsyncClient() as http:
        await tg.start(web.run)

        async def scrape() -> dict[str, float]:
            answer = await http.get(f"http://127.0.0.1:{web.port}/metrics")
            values = metric_values(answer.text)
            shown = {
                name: values[(name, ())]
                for name in (
                    "frontdesk_outbox_pending",
                    "frontdesk_outbox_dead_letters",
                    "frontdesk_outbox_oldest_pending_seconds",
                )
            }
            for result in ("delivered", "retried", "dead_lettered"):
                shown[result] = values[("frontdesk_outbox_deliveries_total", (("result", result),))]
            return shown

        def expect(pending, dead, oldest, delivered, retried, dead_lettered):
            return {
                "frontdesk_outbox_pending": pending,
                "frontdesk_outbox_dead_letters": dead,
                "frontdesk_outbox_oldest_pending_seconds": oldest,
                "delivered": delivered,
                "retried": retried,
                "dead_lettered": dead_lettered,
            }

        assert await scrape() == expect(0, 0, 0, 0, 0, 0)

        record, job = booked_call()
        outbox.put([record])
        clock.advance_to(clock() + 42)
        assert await scrape() == expect(1, 0, 42, 0, 0, 0)

        dashboard.faults.add(Fault(kind=FaultKind.ERROR, status=503, route="calls", times=1))
        await sync.deliver_due()
        assert await scrape() == expect(1, 0, 42, 0, 1, 0)

        clock.advance_to(outbox.next_due_at() or 0)
        await sync.deliver_due()
        assert await scrape() == expect(0, 0, 0, 1, 1, 0)

        dashboard.faults.add(Fault(kind=FaultKind.ERROR, status=400, route="jobs", times=1))
        outbox.put([job])
        await sync.deliver_due()  # the job dies; its alert is delivered in the same pass
        assert await scrape() == expect(0, 1, 0, 2, 1, 1)
        tg.cancel_scope.cancel()
    outbox.close()


@pytest.mark.anyio
@pytest.mark.parametrize("status", [301, 302, 307])
async def test_a_redirect_is_not_followed_but_alerted_with_its_location_and_the_record_kept(
    dashboard, outbox, status
):
    record, _ = booked_call()
    moved_to = "https://dashboard.example/v2/webhooks/calls"
    tap = Wiretap([Answer(status, headers={"Location": moved_to})])
    current = dashboard_settings(dashboard)

    async with running_sync(outbox, lambda: current, transport=tap) as (_, sink):
        await sink.submit([record])
        await poll_emulator(lambda: len(dashboard.received("alerts")) == 1, what="the alert")

    assert outbox.status(record.record_id) == "pending", "kept for when the URL is fixed"
    assert outbox.get(record.record_id).last_error == f"HTTP {status} redirect to {moved_to}"
    (received,) = dashboard.received("alerts")
    body = received["body"]
    assert body["alert"] == "dashboard_redirected"
    assert body["details"]["location"] == moved_to
    assert body["details"]["status"] == status
    assert moved_to in body["message"]
    assert [t.request.url.host for t in tap.tapped].count("dashboard.example") == 0


# ------------------------------------------------------------ many businesses


@pytest.mark.anyio
async def test_each_business_s_records_go_to_its_own_dashboard_signed_with_its_own_secret(
    dashboard, outbox
):
    from pydantic import SecretStr

    from frontdesk.runtime.businesses import Dashboard

    sparks_secret = "sparks-secret-0123456789"
    async with DashboardEmulator(secret=sparks_secret, schema_dir=SCHEMA_DIR) as sparks:
        sparks_dashboard = Dashboard(
            calls_url=f"{sparks.url}/webhooks/calls",
            jobs_url=f"{sparks.url}/webhooks/jobs",
            alerts_url=f"{sparks.url}/webhooks/alerts",
            secret=SecretStr(sparks_secret),
        )
        current = dashboard_settings(dashboard)
        dashboards = {
            None: Dashboard.of(current),
            "bayside": Dashboard.of(current),
            "sparks": sparks_dashboard,
        }
        bayside_call, _ = booked_call()
        sparks_call, sparks_job = booked_call()
        gone_call = abandoned_call()
        records = [
            bayside_call.model_copy(update={"business": "bayside"}),
            sparks_call.model_copy(update={"business": "sparks"}),
            sparks_job.model_copy(update={"business": "sparks"}),
            gone_call.model_copy(update={"business": "gone"}),
            call_alert(AlertKind.ACTOR_RESTARTED, None, "actor web was restarted"),
        ]
        outbox.put(records)
        sync = offline_sync(outbox, lambda: current, dashboards=dashboards.get)

        left = await sync.deliver_due()

        bayside_keys = received_keys(dashboard)
        sparks_keys = received_keys(sparks)
        sparks_bodies = [r["body"] for r in sparks.received()]

    assert sorted(bayside_keys) == sorted([records[0].record_id, records[4].record_id])
    assert sorted(sparks_keys) == sorted([records[1].record_id, records[2].record_id])
    assert {body["business"] for body in sparks_bodies} == {"sparks"}
    assert left == 1, "a record of a business no longer configured waits"
    [waiting] = outbox.records("pending")
    assert waiting.record_id == gone_call.record_id
    assert waiting.last_error == "business gone not configured"


@pytest.mark.anyio
async def test_one_business_s_slow_dashboard_does_not_hold_up_another_s(dashboard, outbox):
    from pydantic import SecretStr

    from frontdesk.runtime.businesses import Dashboard

    slow_secret = "slow-secret-0123456789"
    async with DashboardEmulator(secret=slow_secret, schema_dir=SCHEMA_DIR) as slow:
        slow.faults.add(Fault(kind=FaultKind.LATENCY, route="calls", seconds=5, times=1))
        current = dashboard_settings(dashboard)
        dashboards = {
            "bayside": Dashboard.of(current),
            "slow": Dashboard(
                calls_url=f"{slow.url}/webhooks/calls", secret=SecretStr(slow_secret)
            ),
        }
        slow_call = abandoned_call().model_copy(update={"business": "slow"})
        bayside_call = abandoned_call().model_copy(update={"business": "bayside"})

        async with running_sync(outbox, lambda: current, dashboards=dashboards.get) as (_, sink):
            await sink.submit([slow_call, bayside_call])
            await outbox.wait_until(
                lambda: outbox.status(bayside_call.record_id) == "delivered", timeout=4
            )
            assert outbox.status(slow_call.record_id) == "pending"
            assert received_keys(slow) == []

"""The dashboard emulator verifies signed, idempotent webhooks the way a dashboard owner should."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from jsonschema.exceptions import SchemaError

from emulators.dashboard import DashboardEmulator
from emulators.faults import Fault, FaultKind

pytestmark = pytest.mark.anyio

SECRET = "dash-test-secret"
CALL_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["call_sid", "outcome", "started_at"],
    "properties": {
        "call_sid": {"type": "string"},
        "outcome": {"enum": ["booked", "callback", "abandoned"]},
        "started_at": {"type": "string", "format": "date-time"},
        "caller": {
            "type": "object",
            "properties": {"phone": {"type": "string", "pattern": r"^\+[1-9]\d{1,14}$"}},
        },
    },
}
CALL_RECORD = {
    "call_sid": "CA" + "c" * 32,
    "outcome": "booked",
    "started_at": "2026-11-24T09:00:00-08:00",
    "caller": {"phone": "+14155550123"},
}


def signed(
    body: object,
    *,
    key: str | None = "idem-1",
    secret: str = SECRET,
    timestamp: int | None = None,
) -> dict[str, object]:
    """Request arguments for httpx: the raw body and the headers Frontdesk sends."""
    raw = json.dumps(body).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + raw, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Frontdesk-Timestamp": stamp,
        "X-Frontdesk-Signature": f"v1={digest}",
    }
    if key is not None:
        headers["Idempotency-Key"] = key
    return {"content": raw, "headers": headers}


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    (tmp_path / "call.schema.json").write_text(json.dumps(CALL_SCHEMA))
    return tmp_path


@pytest.fixture
async def dashboard(schema_dir: Path) -> AsyncIterator[DashboardEmulator]:
    async with DashboardEmulator(secret=SECRET, schema_dir=schema_dir) as emulator:
        yield emulator  # type: ignore[misc]


@pytest.fixture
async def http(dashboard: DashboardEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=dashboard.url, trust_env=False, timeout=5) as client:
        yield client


async def test_a_valid_signed_record_is_201_and_stored(dashboard, http):
    response = await http.post("/webhooks/calls", **signed(CALL_RECORD))

    assert response.status_code == 201
    assert response.json() == {"status": "accepted"}
    [stored] = dashboard.received("calls")
    assert stored["body"] == CALL_RECORD
    assert stored["kind"] == "calls"
    assert stored["idempotency_key"] == "idem-1"
    assert stored["received_at"]
    assert dashboard.received("jobs") == []


async def test_a_repeated_idempotency_key_is_200_duplicate_and_stored_once(dashboard, http):
    first = await http.post("/webhooks/calls", **signed(CALL_RECORD))
    again = await http.post("/webhooks/calls", **signed(CALL_RECORD))

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate"}
    assert len(dashboard.received()) == 1
    assert [a["status"] for a in dashboard.attempts()] == [201, 200]


async def test_the_same_key_on_another_kind_is_a_new_record(dashboard, http):
    await http.post("/webhooks/calls", **signed(CALL_RECORD))
    response = await http.post("/webhooks/alerts", **signed({"kind": "backend_down"}))

    assert response.status_code == 201
    assert [r["kind"] for r in dashboard.received()] == ["calls", "alerts"]


async def test_a_wrong_secret_is_401_bad_signature(dashboard, http):
    response = await http.post("/webhooks/calls", **signed(CALL_RECORD, secret="not-the-secret"))

    assert response.status_code == 401
    assert response.json()["error"] == "bad_signature"
    assert "HMAC-SHA256" in response.json()["reason"]
    assert dashboard.received() == []


async def test_a_body_changed_after_signing_is_401(dashboard, http):
    request = signed(CALL_RECORD)
    request["content"] = json.dumps({**CALL_RECORD, "outcome": "callback"}).encode()

    response = await http.post("/webhooks/calls", **request)

    assert response.status_code == 401
    assert response.json()["error"] == "bad_signature"


async def test_a_stale_timestamp_is_401_even_when_correctly_signed(dashboard, http):
    response = await http.post(
        "/webhooks/calls", **signed(CALL_RECORD, timestamp=int(time.time()) - 301)
    )

    assert response.status_code == 401
    assert response.json()["error"] == "stale_timestamp"
    assert "300" in response.json()["reason"]
    assert dashboard.received() == []


async def test_a_timestamp_from_the_future_is_401(http):
    response = await http.post(
        "/webhooks/calls", **signed(CALL_RECORD, timestamp=int(time.time()) + 3600)
    )

    assert response.status_code == 401
    assert response.json()["error"] == "stale_timestamp"


@pytest.mark.parametrize(
    ("drop", "replace", "error"),
    [
        ("X-Frontdesk-Signature", None, "missing_signature"),
        ("X-Frontdesk-Timestamp", None, "missing_timestamp"),
        (None, ("X-Frontdesk-Signature", "sha256=abc"), "malformed_signature"),
        (None, ("X-Frontdesk-Timestamp", "yesterday"), "malformed_timestamp"),
    ],
)
async def test_missing_or_malformed_signature_headers_are_401(http, drop, replace, error):
    request = signed(CALL_RECORD)
    headers = dict(request["headers"])
    if drop:
        del headers[drop]
    if replace:
        headers[replace[0]] = replace[1]

    response = await http.post("/webhooks/calls", content=request["content"], headers=headers)

    assert response.status_code == 401
    assert response.json()["error"] == error


async def test_a_schema_violation_is_400_naming_the_field(dashboard, http):
    record = {**CALL_RECORD, "outcome": "exploded"}

    response = await http.post("/webhooks/calls", **signed(record))

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "schema_violation"
    assert "$.outcome" in body["reason"]
    assert "exploded" in body["reason"]
    assert dashboard.received() == []


async def test_a_missing_required_field_is_400_naming_it(http):
    record = {k: v for k, v in CALL_RECORD.items() if k != "started_at"}

    response = await http.post("/webhooks/calls", **signed(record))

    assert response.status_code == 400
    assert "'started_at' is a required property" in response.json()["reason"]


async def test_a_nested_violation_names_its_path(http):
    record = {**CALL_RECORD, "caller": {"phone": "415-555-0123"}}

    response = await http.post("/webhooks/calls", **signed(record))

    assert response.status_code == 400
    assert "$.caller.phone" in response.json()["reason"]


async def test_a_date_time_without_offset_breaks_the_format(http):
    record = {**CALL_RECORD, "started_at": "yesterday at nine"}

    response = await http.post("/webhooks/calls", **signed(record))

    assert response.status_code == 400
    assert "$.started_at" in response.json()["reason"]


async def test_a_missing_idempotency_key_is_400(dashboard, http):
    response = await http.post("/webhooks/calls", **signed(CALL_RECORD, key=None))

    assert response.status_code == 400
    assert response.json()["error"] == "missing_idempotency_key"
    assert dashboard.received() == []


async def test_a_kind_without_a_schema_file_accepts_any_object_but_not_an_array(dashboard, http):
    accepted = await http.post("/webhooks/jobs", **signed({"anything": [1, 2]}, key="job-1"))
    refused = await http.post("/webhooks/jobs", **signed([1, 2], key="job-2"))

    assert accepted.status_code == 201
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_json"
    assert [r["body"] for r in dashboard.received("jobs")] == [{"anything": [1, 2]}]


async def test_an_error_fault_answers_503_and_stores_nothing(dashboard, http):
    dashboard.faults.add(Fault(kind=FaultKind.ERROR, route="calls", status=503))

    response = await http.post("/webhooks/calls", **signed(CALL_RECORD))

    assert response.status_code == 503
    assert dashboard.received() == []
    assert [a["status"] for a in dashboard.attempts()] == [503]
    dashboard.faults.clear()
    retried = await http.post("/webhooks/calls", **signed(CALL_RECORD))
    assert retried.status_code == 201
    assert len(dashboard.received("calls")) == 1


async def test_the_received_route_reports_records_and_attempts(http):
    await http.post("/webhooks/calls", **signed(CALL_RECORD))
    await http.post("/webhooks/calls", **signed(CALL_RECORD, key=None))

    state = (await http.get("/__received")).json()

    assert [r["body"] for r in state["received"]] == [CALL_RECORD]
    assert [(a["status"], a["error"]) for a in state["attempts"]] == [
        (201, None),
        (400, "missing_idempotency_key"),
    ]


async def test_an_invalid_schema_file_stops_the_emulator_from_starting(tmp_path):
    (tmp_path / "alert.schema.json").write_text(json.dumps({"type": "not-a-type"}))
    emulator = DashboardEmulator(secret=SECRET, schema_dir=tmp_path)

    with pytest.raises(SchemaError):
        await emulator.start()
    await emulator.stop()


def test_an_empty_secret_is_refused(tmp_path):
    with pytest.raises(ValueError, match="secret"):
        DashboardEmulator(secret="", schema_dir=tmp_path)

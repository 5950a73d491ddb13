"""Logging: one format for us and Pipecat, call_sid on every call line, secrets scrubbed."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal

import anyio
import httpx
import pytest
from loguru import logger as loguru_logger

from frontdesk.runtime import logs
from tests.support import SECRETS, base_env, running_server


@pytest.fixture
def captured():
    stream = io.StringIO()
    logs.configure("DEBUG", "text", stream=stream)
    yield stream
    logs.redactor.set_secrets([])
    logs.configure("INFO", "text")


def test_pipecat_loguru_lines_come_out_in_our_format(captured):
    loguru_logger.info("pipeline started")

    line = captured.getvalue().strip()
    assert line.endswith("| INFO | tests.test_logging | pipeline started")
    assert line.count(" | ") == 3


def test_loguru_lines_below_the_level_are_dropped():
    stream = io.StringIO()
    logs.configure("WARNING", "text", stream=stream)
    try:
        loguru_logger.debug("frame pushed")
        loguru_logger.warning("provider slow")
    finally:
        logs.configure("INFO", "text")

    assert "frame pushed" not in stream.getvalue()
    assert "provider slow" in stream.getvalue()


@pytest.mark.anyio
async def test_every_line_from_inside_a_call_carries_its_call_sid(captured):
    async def inside_a_task():
        logging.getLogger("frontdesk.call.pipeline").info("turn %d", 3)
        loguru_logger.info("tts started")

    with logs.bind_call_sid("CA0123"):
        logging.getLogger("actors.call").info("call started")
        await asyncio.get_running_loop().create_task(inside_a_task())
    logging.getLogger("actors.web").info("outside any call")

    lines = [
        line
        for line in captured.getvalue().splitlines()
        if line.endswith(("call started", "turn 3", "tts started", "outside any call"))
    ]
    assert [("call_sid=CA0123" in line) for line in lines] == [True, True, True, False]


def test_json_format_is_one_object_per_line_with_call_sid():
    stream = io.StringIO()
    logs.configure("INFO", "json", stream=stream)
    try:
        with logs.bind_call_sid("CA9"):
            logging.getLogger("actors.call").warning("caller silent")
    finally:
        logs.configure("INFO", "text")

    entry = json.loads(stream.getvalue())
    assert entry["level"] == "WARNING" and entry["logger"] == "actors.call"
    assert entry["call_sid"] == "CA9" and entry["message"] == "caller silent"


@pytest.mark.anyio
async def test_every_line_of_a_call_carries_its_business_in_both_formats(captured):
    async def inside_a_task():
        loguru_logger.info("tts started")

    with logs.bind_business("sparks"), logs.bind_call_sid("CA7"):
        logging.getLogger("actors.call").info("call started")
        await asyncio.get_running_loop().create_task(inside_a_task())
    logging.getLogger("actors.web").info("outside any call")
    stream = io.StringIO()
    logs.configure("INFO", "json", stream=stream)
    try:
        with logs.bind_business("sparks"), logs.bind_call_sid("CA7"):
            logging.getLogger("actors.call").info("call finished")
    finally:
        logs.configure("DEBUG", "text", stream=captured)

    lines = [
        line
        for line in captured.getvalue().splitlines()
        if line.endswith(("call started", "tts started", "outside any call"))
    ]
    assert [("business=sparks call_sid=CA7 " in line) for line in lines] == [True, True, False]
    entry = json.loads(stream.getvalue())
    assert entry["business"] == "sparks" and entry["call_sid"] == "CA7"


def test_secret_values_are_scrubbed_from_messages_and_tracebacks(captured):
    logs.redactor.set_secrets(["sk-live-abcdef123456"])
    try:
        raise RuntimeError("auth failed for sk-live-abcdef123456")
    except RuntimeError:
        logging.getLogger("x").exception("request with key %s failed", "sk-live-abcdef123456")
    loguru_logger.error("header Authorization: Bearer sk-live-abcdef123456")

    output = captured.getvalue()
    assert "sk-live-abcdef123456" not in output
    assert output.count("********") >= 3


@pytest.mark.anyio
async def test_no_secret_reaches_the_servers_log_at_debug_level(tmp_path):
    env = base_env(tmp_path, LOG_LEVEL="DEBUG")
    async with running_server(env) as (server, reader):
        async with httpx.AsyncClient(base_url=server.url) as http:
            await http.get("/readyz")
            await http.get("/metrics")
        server.signal(signal.SIGTERM)
        with anyio.fail_after(20):
            await reader.drain()

    text = "\n".join(server.lines)
    assert "serving on port" in text
    for secret in SECRETS.values():
        assert secret not in text

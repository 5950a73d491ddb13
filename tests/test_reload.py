"""A reload (SIGHUP) reaches every consumer of the settings, and no old secret leaks."""

from __future__ import annotations

import io
import logging

import anyio
import pytest

from emulators.twilio_rest import TwilioEmulator
from frontdesk.app import Frontdesk
from frontdesk.runtime import logs
from frontdesk.runtime.config import load_config
from tests.support import base_env

pytestmark = pytest.mark.anyio

ACCOUNT = "AC" + "0" * 32
CALL = "CA" + "7" * 32
OLD_TOKEN = "twilio-old-token-0123456789"
NEW_TOKEN = "twilio-new-token-9876543210"


@pytest.fixture
def captured():
    stream = io.StringIO()
    logs.configure("INFO", "text", stream=stream)
    yield stream
    logs.redactor.set_secrets([])
    logs.configure("INFO", "text")


async def test_a_rotated_twilio_token_hangs_up_and_both_tokens_stay_scrubbed(
    tmp_path, monkeypatch, captured
):
    async with TwilioEmulator(account_sid=ACCOUNT, auth_token=NEW_TOKEN) as twilio:
        twilio.register_call(CALL, from_="+14155550123", to="+14155550100")
        env = base_env(tmp_path, TWILIO_AUTH_TOKEN=OLD_TOKEN, TWILIO_API_BASE_URL=twilio.url)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        config = load_config(None)
        logs.redactor.set_secrets(config.settings.secret_values())  # as `serve` starts
        frontdesk = Frontdesk(config, load_config=lambda: load_config(None))
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(frontdesk.config.run)
                monkeypatch.setenv("TWILIO_AUTH_TOKEN", NEW_TOKEN)  # Twilio rotated it

                reloaded = await frontdesk.reload()
                with anyio.fail_after(10):
                    hangup = await frontdesk.twilio.hang_up(CALL)
                # A call that started before the reload may still log with the old one.
                logging.getLogger("actors.call").warning("tokens: %s %s", OLD_TOKEN, NEW_TOKEN)
                tg.cancel_scope.cancel()
        finally:
            await frontdesk.twilio.aclose()
            await frontdesk.providers.aclose()
            frontdesk.outbox.close()
            frontdesk.pending_callbacks.close()

    assert reloaded.applied
    assert hangup.value == "hung_up", "the hang-up used the rotated token"
    log = captured.getvalue()
    assert "tokens: ******** ********" in log
    assert OLD_TOKEN not in log and NEW_TOKEN not in log

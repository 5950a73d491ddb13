"""The opt-out ledger: STOP sticks across a restart, START lifts it, HELP and repeats
(a second STOP, a webhook Twilio retries) change nothing."""

from __future__ import annotations

from frontdesk.delivery.sms import SmsKeyword
from frontdesk.delivery.sms_optouts import OptOutLedger

CALLER = "+14155550123"


def test_stop_survives_a_restart_and_start_lifts_it(tmp_path):
    path = tmp_path / "state" / "optouts.sqlite"
    ledger = OptOutLedger(path)
    assert ledger.record(CALLER, SmsKeyword.OPT_OUT, message_sid="SM1") is True
    ledger.close()

    reopened = OptOutLedger(path)
    assert reopened.opted_out(CALLER)
    assert not reopened.opted_out("+14155550124")
    assert reopened.record(CALLER, SmsKeyword.OPT_IN, message_sid="SM2") is True
    assert not reopened.opted_out(CALLER)
    reopened.close()


def test_help_and_repeats_change_nothing(tmp_path):
    ledger = OptOutLedger(tmp_path / "optouts.sqlite")

    assert ledger.record(CALLER, SmsKeyword.HELP, message_sid="SM1") is False
    assert not ledger.opted_out(CALLER)
    assert ledger.record(CALLER, SmsKeyword.OPT_OUT, message_sid="SM2") is True
    assert ledger.record(CALLER, SmsKeyword.OPT_OUT, message_sid="SM3") is False
    assert ledger.opted_out(CALLER)
    ledger.close()

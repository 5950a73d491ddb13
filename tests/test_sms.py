"""Texting callers, decided purely: reply keywords, who can be texted, one key per text."""

from __future__ import annotations

import pytest

from frontdesk.delivery.sms import (
    SmsKeyword,
    parse_keyword,
    render_sms,
    sms_idempotency_key,
    textable,
)
from frontdesk.runtime.profile_features import SmsTemplates

BUSINESS = "+14155550100"


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", SmsKeyword.OPT_OUT),
        ("  stop\n", SmsKeyword.OPT_OUT),
        ("Stop.", SmsKeyword.OPT_OUT),
        ("stopall", SmsKeyword.OPT_OUT),
        ("Unsubscribe", SmsKeyword.OPT_OUT),
        ("cancel", SmsKeyword.OPT_OUT),
        ("END", SmsKeyword.OPT_OUT),
        ("quit", SmsKeyword.OPT_OUT),
        ("revoke", SmsKeyword.OPT_OUT),
        ("OptOut", SmsKeyword.OPT_OUT),
        ("START", SmsKeyword.OPT_IN),
        ("yes", SmsKeyword.OPT_IN),
        ("unstop", SmsKeyword.OPT_IN),
        ("help", SmsKeyword.HELP),
        ("INFO!", SmsKeyword.HELP),
        ("stop please", None),
        ("please cancel my appointment", None),
        ("opt out", None),
        ("", None),
        ("Thanks, see you Tuesday", None),
    ],
)
def test_only_a_single_keyword_is_a_keyword(body, keyword):
    assert parse_keyword(body) is keyword


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("+14155550123", None),
        ("+447700900123", None),
        (" +14155550123 ", None),
        ("4155550123", "not_e164"),
        ("anonymous", "not_e164"),
        (None, "not_e164"),
        ("", "not_e164"),
        ("+266696687", "withheld"),
        ("+7378742833", "withheld"),
        ("+2562533", "withheld"),
        ("+8656696", "withheld"),
        ("+86282452253", "withheld"),
        (BUSINESS, "business_number"),
    ],
)
def test_only_a_real_callers_number_can_be_texted(number, reason):
    assert textable(number, business_numbers=[BUSINESS]) == reason


def test_the_key_is_stable_for_the_same_text_and_differs_for_any_other():
    key = sms_idempotency_key(purpose="booking_confirmation", reference="apt-42", to=BUSINESS)

    assert key == sms_idempotency_key(
        purpose="booking_confirmation", reference=" apt-42 ", to=BUSINESS
    )
    others = {
        sms_idempotency_key(purpose="callback_promise", reference="apt-42", to=BUSINESS),
        sms_idempotency_key(purpose="booking_confirmation", reference="apt-43", to=BUSINESS),
        sms_idempotency_key(purpose="booking_confirmation", reference="apt-42", to="+1415555"),
    }
    assert key not in others and len(others) == 3
    assert key.startswith("sms_") and len(key) == 44


def test_a_key_needs_a_reference_and_a_number():
    with pytest.raises(ValueError):
        sms_idempotency_key(purpose="help_reply", reference=" ", to=BUSINESS)


def test_the_default_templates_render_on_one_line():
    text = render_sms(
        SmsTemplates().booking_confirmation,
        {
            "business_name": "Bayside Plumbing & Heating",
            "service": "Plumbing",
            "when": "Tue Dec 8,\n9-11am",
            "address": "12 Main St",
            "business_phone": BUSINESS,
        },
    )

    assert text == (
        "Bayside Plumbing & Heating: you're booked for Plumbing on Tue Dec 8, 9-11am at "
        "12 Main St. To change it, call +14155550100. Reply STOP to opt out."
    )


def test_a_missing_value_is_named():
    with pytest.raises(KeyError, match="business_phone"):
        render_sms(SmsTemplates().help_reply, {"business_name": "Bayside"})

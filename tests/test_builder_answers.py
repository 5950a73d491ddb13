"""The interview's typed answers: read into values, and written back as the same answers."""

from __future__ import annotations

import pytest

from frontdesk.builder import answers


@pytest.mark.parametrize(
    ("typed", "span"),
    [
        ("08:00-18:00", ("08:00", "18:00")),
        ("8am-6pm", ("08:00", "18:00")),
        ("8 to 6", ("08:00", "18:00")),
        ("7:30 until 4:30pm", ("07:30", "16:30")),
        ("12pm-1pm", ("12:00", "13:00")),
        ("9 to 9", ("09:00", "21:00")),
    ],
)
def test_time_ranges_read_as_an_owner_writes_them(typed, span):
    assert answers.day_range(typed) == span


@pytest.mark.parametrize("typed", ["18:00-08:00", "09:00-09:00", "25:00-26:00", "morning"])
def test_ranges_that_do_not_make_sense_are_refused(typed):
    with pytest.raises(ValueError):
        answers.day_range(typed)


def test_opening_hours_by_day_groups_and_ranges():
    weekly = answers.hours("weekdays 8-5, sat 09:00-12:00, sun closed")

    assert weekly["mon"] == weekly["fri"] == ("08:00", "17:00")
    assert weekly["sat"] == ("09:00", "12:00")
    assert weekly["sun"] is None
    assert answers.hours_text(weekly) == "mon-fri 08:00-17:00, sat 09:00-12:00"
    assert answers.hours(answers.hours_text(weekly)) == weekly


@pytest.mark.parametrize("typed", ["", "mon", "fri-mon 8-5", "someday 8-5", "sun closed"])
def test_hours_without_an_open_day_or_with_a_bad_day_are_refused(typed):
    with pytest.raises(ValueError):
        answers.hours(typed)


def test_services_round_trip_and_get_unique_ids():
    pairs = answers.services("Plumbing: leaks, drains; Water heaters: repair")
    assert answers.services(answers.services_text(pairs)) == pairs
    taken = {"plumbing"}
    assert answers.service_id("Plumbing", taken) == "plumbing_2"
    assert answers.service_id("24h emergencies", set()) == "s_24h_emergencies"
    with pytest.raises(ValueError):
        answers.services("Plumbing")


def test_zip_codes_are_five_digits():
    assert answers.zips("94110, 94112 94110") == ["94110", "94112"]
    with pytest.raises(ValueError, match="9411"):
        answers.zips("94110 9411")

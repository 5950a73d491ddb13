"""The load benchmark's arithmetic, on made-up numbers: no processes, no sockets."""

from __future__ import annotations

import logging
import math
from collections import Counter

import pytest

from bench.faults import lost_caller_lines, repeated_sentences
from bench.report import (
    bucket_deltas,
    caller_side,
    drop_reason,
    evaluate_targets,
    histogram_buckets,
    histogram_quantile,
    percentile,
    ratio,
    render_table,
)
from bench.sample import Sample, Sampler, parse_exposition
from frontdesk.call.caller_lines import CALL_ENDED, PASSED_OVER, CallerLines
from frontdesk.runtime.logs import CallContextFilter, TextFormatter, bind_call_sid

EXPOSITION_BEFORE = """\
# HELP frontdesk_turn_own_seconds Frontdesk's own share of a turn.
# TYPE frontdesk_turn_own_seconds histogram
frontdesk_turn_own_seconds_bucket{le="0.01"} 2.0
frontdesk_turn_own_seconds_bucket{le="0.05"} 4.0
frontdesk_turn_own_seconds_bucket{le="0.1"} 4.0
frontdesk_turn_own_seconds_bucket{le="+Inf"} 4.0
frontdesk_turn_own_seconds_count 4.0
frontdesk_turn_own_seconds_sum 0.1
# HELP frontdesk_bot_audio_chunks Bot audio chunks sent to callers.
# TYPE frontdesk_bot_audio_chunks counter
frontdesk_bot_audio_chunks_total 1000.0
"""

EXPOSITION_AFTER = """\
# HELP frontdesk_turn_own_seconds Frontdesk's own share of a turn.
# TYPE frontdesk_turn_own_seconds histogram
frontdesk_turn_own_seconds_bucket{le="0.01"} 12.0
frontdesk_turn_own_seconds_bucket{le="0.05"} 94.0
frontdesk_turn_own_seconds_bucket{le="0.1"} 104.0
frontdesk_turn_own_seconds_bucket{le="+Inf"} 104.0
frontdesk_turn_own_seconds_count 104.0
frontdesk_turn_own_seconds_sum 3.0
# HELP frontdesk_bot_audio_chunks Bot audio chunks sent to callers.
# TYPE frontdesk_bot_audio_chunks counter
frontdesk_bot_audio_chunks_total 3000.0
"""


# ------------------------------------------------------------------ percentiles


def test_percentile_interpolates_between_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 5.0
    assert percentile(values, 95) == pytest.approx(4.8)


def test_percentile_skips_missing_values_and_is_none_for_nothing() -> None:
    assert percentile([None, 2.0, None], 99) == 2.0
    assert percentile([], 50) is None
    assert percentile([None], 50) is None


def test_quantile_of_the_calls_between_two_scrapes_uses_only_their_buckets() -> None:
    before = histogram_buckets(parse_exposition(EXPOSITION_BEFORE), "frontdesk_turn_own_seconds")
    after = histogram_buckets(parse_exposition(EXPOSITION_AFTER), "frontdesk_turn_own_seconds")
    deltas = bucket_deltas(before, after)
    # 100 turns in the wave: 10 under 10 ms, 80 in 10-50 ms, 10 in 50-100 ms.
    assert deltas == [(0.01, 10.0), (0.05, 90.0), (0.1, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(deltas, 0.5) == pytest.approx(0.01 + 0.04 * 40 / 80)
    assert histogram_quantile(deltas, 0.95) == pytest.approx(0.05 + 0.05 * 5 / 10)
    assert histogram_quantile(deltas, 0.05) == pytest.approx(0.01 * 5 / 10)


def test_quantile_in_the_overflow_bucket_is_the_largest_finite_bound() -> None:
    buckets = [(0.01, 1.0), (0.05, 2.0), (math.inf, 10.0)]
    assert histogram_quantile(buckets, 0.99) == 0.05


def test_quantile_of_an_empty_histogram_is_none() -> None:
    assert histogram_quantile([(0.01, 0.0), (math.inf, 0.0)], 0.5) is None
    assert histogram_quantile([], 0.5) is None


def test_quantile_skips_empty_buckets_below_the_rank() -> None:
    # Nothing between 10 and 50 ms: the median lies in the 50-100 ms bucket.
    buckets = [(0.01, 0.0), (0.05, 0.0), (0.1, 4.0), (math.inf, 4.0)]
    assert histogram_quantile(buckets, 0.5) == pytest.approx(0.075)


# ------------------------------------------------------------------ dropped calls


def call(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "connected": True,
        "rejected": False,
        "errors": [],
        "hung_up_by": "bot",
        "greeting_latency": 0.3,
        "turn_latencies": [0.6, 0.7],
        "barge_in_reactions": [],
        "bot_frames": 100,
        "late_frames": 0,
        "worst_gap": 0.04,
    }
    return base | fields


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, None),
        ({"hung_up_by": "caller"}, None),
        ({"rejected": True, "connected": False}, "rejected"),
        ({"connected": False, "errors": ["media stream upgrade refused: 403"]}, "not connected"),
        ({"errors": ["call still up after max_seconds=90"]}, "error"),
        ({"hung_up_by": "server_closed"}, "server closed the stream"),
    ],
)
def test_a_call_is_dropped_when_the_caller_did_not_get_a_whole_call(
    fields: dict[str, object], reason: str | None
) -> None:
    assert drop_reason(call(**fields)) == reason


def test_caller_side_counts_drops_late_frames_and_unanswered_turns() -> None:
    calls = [
        call(bot_frames=300, late_frames=3, worst_gap=0.2, turn_latencies=[0.5, None]),
        call(hung_up_by="server_closed", bot_frames=100, late_frames=1),
        call(barge_in_reactions=[0.25, None], greeting_latency=0.9),
    ]
    side = caller_side(calls)
    assert side["calls"] == 3
    assert side["calls_dropped"] == 1
    assert side["drop_reasons"] == {"server closed the stream": 1}
    assert side["late_frame_share"] == pytest.approx(4 / 500)
    assert side["worst_gap"] == 0.2
    assert side["turns_unanswered"] == 1
    assert side["turns_measured"] == 5
    assert side["greeting_latency_max"] == 0.9
    assert side["barge_in_reaction_p50"] == 0.25
    assert side["barge_ins_without_clear"] == 1


# ------------------------------------------------------------------ targets


def level(system: str, calls: int, **fields: object) -> dict[str, object]:
    return {"system": system, "concurrency": calls, **fields}


GOOD_50 = level(
    "frontdesk",
    50,
    calls_dropped=0,
    late_frame_share=0.004,
    own_turn_latency_p95=0.03,
    greeting_latency_max=0.8,
    server_cpu_percent_per_call=2.5,
    server_rss_mb_per_call_over_fresh=9.0,
)


def verdicts(results, webhook=None, leak=None) -> dict[str, bool | None]:
    return {t.target: t.met for t in evaluate_targets(results, webhook, leak)}


def test_targets_are_met_when_every_figure_is_inside_its_limit() -> None:
    results = [GOOD_50, level("frontdesk", 100, calls_dropped=0)]
    met = verdicts(results, {"latency_p99": 0.012}, {"rss_growth_mb": 4.0, "calls": 200})
    assert all(met.values()), met


def test_each_figure_over_its_limit_misses_its_target() -> None:
    bad_50 = GOOD_50 | {
        "calls_dropped": 1,
        "late_frame_share": 0.02,
        "own_turn_latency_p95": 0.07,
        "greeting_latency_max": 1.2,
        "server_cpu_percent_per_call": 3.5,
        "server_rss_mb_per_call_over_fresh": 16.0,
    }
    met = verdicts(
        [bad_50, level("frontdesk", 100, calls_dropped=2)],
        {"latency_p99": 0.025},
        {"rss_growth_mb": 25.0, "calls": 200},
    )
    assert not any(met.values()), met


def test_limits_stated_as_at_most_are_met_on_the_limit_itself() -> None:
    edge = GOOD_50 | {
        "server_cpu_percent_per_call": 3.0,
        "server_rss_mb_per_call_over_fresh": 15.0,
    }
    met = verdicts([edge])
    assert met["50 calls: at most 3% of one core per call"] is True
    rss = next(name for name in met if "MB RSS per call" in name)
    assert met[rss] is True


def test_targets_of_levels_not_run_are_not_measured_and_baseline_rows_do_not_count() -> None:
    met = verdicts([level("baseline", 50, calls_dropped=0), level("frontdesk", 10)])
    assert set(met.values()) == {None}


# ------------------------------------------------------------------ table and sampler


def test_the_table_shows_frontdesk_over_baseline() -> None:
    results = [
        level("frontdesk", 10, calls_dropped=0, server_cpu_percent=20.0, turn_latency_p50=0.5),
        level("baseline", 10, calls_dropped=3, server_cpu_percent=100.0, turn_latency_p50=1.0),
    ]
    table = render_table(results)
    ratio_row = next(line for line in table.splitlines() if "FD/base" in line)
    assert "0.20x" in ratio_row
    assert "0.50x" in ratio_row
    assert ratio(1.0, 0.0) is None
    assert ratio(None, 1.0) is None


def test_cpu_percent_interpolates_between_samples() -> None:
    sampler = Sampler()
    # 0.5 CPU seconds per wall second: 50% of one core.
    sampler.samples = [
        Sample(at=100.0 + t, cpu={"server": 0.5 * t}, rss={"server": 0}, machine_cpu=1.5 * t)
        for t in range(0, 11)
    ]
    assert sampler.cpu_percent("server", 102.25, 107.75) == pytest.approx(50.0)
    assert sampler.machine_cpu_percent(101.0, 103.0) == pytest.approx(150.0)
    assert sampler.cpu_percent("server", 105.0, 105.0) is None


# ------------------------------------------------- the fault run's two counts


def test_a_sentence_said_twice_in_a_row_after_a_failover_is_counted() -> None:
    record = {
        "failovers": [{"kind": "tts"}],
        "transcript": [
            {"role": "bot", "text": "Thanks, Ana. You're booked for Tuesday."},
            {"role": "caller", "text": "Great."},
            {"role": "bot", "text": "you're booked for Tuesday. Anything else?"},
        ],
    }
    assert repeated_sentences(record) == 1
    assert repeated_sentences({**record, "failovers": []}) == 0
    assert repeated_sentences(None) == 0


def test_caller_lines_lost_are_read_from_frontdesks_own_log_lines(tmp_path) -> None:
    """The bench reads the very line a call's books write when a caller line is dropped."""
    log = tmp_path / "frontdesk.log"
    handler = logging.FileHandler(log)
    handler.setFormatter(TextFormatter())
    handler.addFilter(CallContextFilter())
    books = logging.getLogger("frontdesk.call.caller_lines")
    books.addHandler(handler)
    try:
        with bind_call_sid("CA1"):
            lines = CallerLines()
            lines.heard_line("Yes.")
            lines.heard_line("Book it.")
            lines.became_turn("Book it.")
            lines.heard_line("Bye.")
            lines.settle()
    finally:
        books.removeHandler(handler)
        handler.close()

    assert lost_caller_lines(tmp_path) == {"CA1": Counter({PASSED_OVER: 1, CALL_ENDED: 1})}


# ------------------------------------------------------------ 1 worker vs N workers


def test_workers_compares_one_process_with_n_at_50_and_100_calls_by_default():
    from bench.__main__ import options_from, parser

    options = options_from(parser().parse_args(["--workers", "2"]))
    custom = options_from(parser().parse_args(["--workers", "3", "--levels", "5"]))
    plain = options_from(parser().parse_args([]))

    assert (options.workers, options.levels, options.baseline_levels, options.leak_calls) == (
        2,
        [50, 100],
        [],
        0,
    )
    assert (custom.workers, custom.levels) == (3, [5])
    assert plain.workers is None and plain.levels == [1, 10, 25, 50, 100]
    for wrong in ("1", "two"):
        with pytest.raises(SystemExit):
            parser().parse_args(["--workers", wrong])


def test_the_table_shows_n_workers_beside_one_with_their_ratio():
    row = {"calls": 50, "turn_latency_p95": 0.8, "server_cpu_percent": 90.0}
    results = [
        {"system": "frontdesk", "concurrency": 50, **row},
        {"system": "frontdesk-2w", "concurrency": 50, **row, "turn_latency_p95": 0.4},
    ]
    columns = [("turn p95", "turn_latency_p95", "ms"), ("CPU%", "server_cpu_percent", "f0")]

    table = render_table(results, columns).splitlines()

    assert [line.split()[1] for line in table[1:]] == ["frontdesk", "frontdesk-2w", "2w/1w"]
    assert table[3].split()[2:] == ["0.50x", "1.00x"]

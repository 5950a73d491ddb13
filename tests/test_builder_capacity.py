"""The capacity estimate: Erlang B against published tables, figures from the benchmark."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from frontdesk.builder import capacity
from tests.support import ROOT

# Published Erlang B tables (e.g. the ITU-T / Siemens tables reproduced in every
# teletraffic textbook): traffic in erlangs a number of lines carries at 1% blocking.
# 11 lines carry 5.16 E, 18 lines 10.44 E, 30 lines 20.34 E — so 5, 10 and 20 E need
# 11, 18 and 30 lines, and one line fewer is not enough.
ONE_PERCENT = [(5.0, 11), (10.0, 18), (20.0, 30)]


@pytest.mark.parametrize(("erlangs", "lines"), ONE_PERCENT)
def test_lines_needed_at_one_percent_match_the_published_table(erlangs, lines):
    assert capacity.lines_needed(erlangs, 0.01) == lines
    assert capacity.erlang_b(erlangs, lines) <= 0.01 < capacity.erlang_b(erlangs, lines - 1)


@pytest.mark.parametrize(
    ("erlangs", "lines", "blocking"),
    [
        (1.0, 1, 1 / 2),  # A / (1 + A)
        (1.0, 2, 1 / 5),  # (A²/2) / (1 + A + A²/2)
        (5.0, 11, 0.0083),  # the table's entry, to its four decimals
        (10.0, 18, 0.0071),
    ],
)
def test_erlang_b_gives_the_textbook_blocking_probabilities(erlangs, lines, blocking):
    assert capacity.erlang_b(erlangs, lines) == pytest.approx(blocking, abs=5e-5)


def test_a_looser_blocking_target_needs_fewer_lines():
    assert capacity.lines_needed(10.0, 0.05) < capacity.lines_needed(10.0, 0.01)


def test_bad_traffic_or_blocking_is_refused():
    with pytest.raises(ValueError):
        capacity.lines_needed(5.0, 0.0)
    with pytest.raises(ValueError):
        capacity.estimate(calls_per_day=0, minutes=4)


def test_without_bench_results_the_reference_figures_are_used(tmp_path):
    assert capacity.measured_cost(tmp_path / "latest.json") == capacity.REFERENCE
    (tmp_path / "latest.json").write_text("{not json")
    assert capacity.measured_cost(tmp_path / "latest.json") == capacity.REFERENCE


def bench_report(path: Path) -> Path:
    report = {
        "machine": {"commit": "abc1234", "date": "2027-01-02T03:04:05+00:00", "cores": 8,
                    "cpu": "Test CPU"},
        "levels": [
            {"system": "frontdesk", "concurrency": 50, "calls_dropped": 0,
             "server_cpu_percent_per_call": 1.0, "server_rss_mb_per_call_over_fresh": 2.0,
             "server_rss_mb_fresh": 150.0},
            {"system": "frontdesk", "concurrency": 100, "calls_dropped": 0,
             "server_cpu_percent_per_call": 0.5, "server_rss_mb_per_call_over_fresh": 1.5,
             "server_rss_mb_fresh": 160.0},
            {"system": "frontdesk", "concurrency": 200, "calls_dropped": 7,
             "server_cpu_percent_per_call": 0.4, "server_rss_mb_per_call_over_fresh": 1.0},
            {"system": "baseline", "concurrency": 300, "calls_dropped": 0,
             "server_cpu_percent_per_call": 9.0, "server_rss_mb_per_call_over_fresh": 9.0},
        ],
    }  # fmt: skip
    path.write_text(json.dumps(report))
    return path


def test_the_busiest_frontdesk_level_without_drops_gives_the_per_call_cost(tmp_path):
    cost = capacity.measured_cost(bench_report(tmp_path / "latest.json"))

    assert (cost.cores_per_call, cost.mb_per_call, cost.idle_mb) == (0.005, 1.5, 160.0)
    assert "abc1234" in cost.source and "2027-01-02" in cost.source and "100 calls" in cost.source


def test_the_estimate_for_200_calls_a_day_of_4_minutes():
    result = capacity.estimate(calls_per_day=200, minutes=4, cost=capacity.REFERENCE)

    # 200 * 15% * 4 / 60 = 2 erlangs; Erlang B at 1%: 7 lines (6 give 1.2%).
    assert result.erlangs == pytest.approx(2.0)
    assert result.lines == 7
    assert result.processes == 1
    assert result.cores == 1.0
    assert result.memory_mb == 256
    assert result.monthly_minutes == 200 * 4 * 30


def test_a_large_business_is_spread_over_processes_with_cores_and_memory_to_match():
    result = capacity.estimate(calls_per_day=5000, minutes=5, cost=capacity.REFERENCE)

    assert result.lines == capacity.lines_needed(5000 * 0.15 * 5 / 60)
    assert result.processes == -(-result.lines // capacity.CALLS_PER_PROCESS)
    assert result.cores >= result.lines * capacity.REFERENCE.cores_per_call
    assert result.memory_mb >= result.processes * capacity.REFERENCE.idle_mb
    assert f"--workers {result.processes}" in capacity.render(result)


def test_the_estimate_command_prints_calls_at_once_and_the_figures_source():
    done = subprocess.run(
        [sys.executable, "main.py", "estimate", "--calls-per-day", "200", "--minutes", "4"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "2.00 erlangs" in done.stdout
    assert "MAX_CONCURRENT_CALLS=7" in done.stdout
    assert "provider minutes    24,000 a month" in done.stdout
    assert "per-call figures" in done.stdout


def test_the_estimate_command_refuses_nonsense():
    done = subprocess.run(
        [sys.executable, "main.py", "estimate", "--calls-per-day", "-3"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 2
    assert "above zero" in done.stderr

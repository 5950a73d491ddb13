"""How long the knowledge index takes to build, how big it is, how long a search takes.

Run from the repository root::

    .venv/bin/python -m bench.knowledge [--size 51200] [--questions 200] [--repeat 5]

Ten sources of ``--size`` characters each (the test sources, grown with more sections
written from their own words) are loaded through the profile loader and indexed; the
build is timed ``--repeat`` times. Then ``--questions`` questions — the callers'
questions of the tests, questions nothing answers, and questions made of the sources'
words — are each searched ``--repeat`` times on one thread, as the event loop would,
and once more through ``anyio.to_thread.run_sync``, as a call would off the loop.

The added sections are filler written from the same words, so they compete with the
real sections for every question: how often the tests' questions still find their
section first (and in the top 3) among them is a stress figure, not the index's quality
on real files (the tests measure that).
Prints the figures and writes them to ``bench/results/knowledge.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import tempfile
import time
from pathlib import Path

import anyio

from frontdesk.knowledge.index import KnowledgeIndex
from frontdesk.knowledge.words import STOP_WORDS
from frontdesk.runtime.profile import load_profile
from frontdesk.runtime.settings import DEFAULT_PROFILE
from tests.knowledge_support import QUESTIONS, UNRELATED_QUESTIONS, grown_sources, profile_with

RESULTS = Path(__file__).parent / "results" / "knowledge.json"


def questions(count: int, sources: dict[str, tuple[str, str]], *, seed: int = 11) -> list[str]:
    """``count`` questions: the tests' questions first, then ones made of the sources' words."""
    rng = random.Random(seed)
    words = sorted(
        {w for _, text in sources.values() for w in re.findall(r"[a-z]{3,}", text.lower())}
        - STOP_WORDS
    )
    openers = ["do you", "how much is", "can you", "what about", "is there a", "I need"]
    asked = [q for q, _, _ in QUESTIONS] + UNRELATED_QUESTIONS
    while len(asked) < count:
        asked.append(f"{rng.choice(openers)} {' '.join(rng.sample(words, rng.randint(1, 5)))}?")
    return asked[:count]


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50, p95, p99 and max of ``seconds``, in microseconds."""
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return {
        "p50_us": round(cuts[49] * 1e6, 1),
        "p95_us": round(cuts[94] * 1e6, 1),
        "p99_us": round(cuts[98] * 1e6, 1),
        "max_us": round(max(seconds) * 1e6, 1),
    }


def time_searches(index: KnowledgeIndex, asked: list[str], repeat: int) -> list[float]:
    """The time of each search of each question, ``repeat`` times over."""
    taken = []
    for _ in range(repeat):
        for question in asked:
            start = time.perf_counter()
            index.search(question)
            taken.append(time.perf_counter() - start)
    return taken


async def time_searches_off_the_loop(index: KnowledgeIndex, asked: list[str]) -> list[float]:
    """The time of each search run through a worker thread, as the loop waits for it."""
    taken = []
    for question in asked:
        start = time.perf_counter()
        await anyio.to_thread.run_sync(index.search, question)
        taken.append(time.perf_counter() - start)
    return taken


def measure(size: int, count: int, repeat: int) -> dict[str, object]:
    """Every figure, for ten sources of ``size`` characters and ``count`` questions."""
    sources = grown_sources(size)
    with tempfile.TemporaryDirectory() as folder:
        profile = profile_with(Path(folder), sources)
        builds = []
        for _ in range(repeat):
            start = time.perf_counter()
            index = KnowledgeIndex.build(profile.knowledge)
            builds.append(time.perf_counter() - start)
            if len(builds) < repeat:
                index.close()
    asked = questions(count, sources)
    answered = [index.search(q) for q in asked]
    found = [_rank(index, question, (title, heading)) for question, title, heading in QUESTIONS]
    shipped = KnowledgeIndex.build(load_profile(DEFAULT_PROFILE).knowledge)
    return {
        "sources": len(sources),
        "source_bytes": sum(len(text.encode()) for _, text in sources.values()),
        "passages": index.passage_count,
        "index_bytes": index.size_bytes,
        "build_ms": {
            "median": round(statistics.median(builds) * 1e3, 1),
            "max": round(max(builds) * 1e3, 1),
        },
        "questions": len(asked),
        "answered": sum(1 for passages in answered if passages),
        "tests_questions_answered_first_among_filler": f"{found.count(0)}/{len(found)}",
        "tests_questions_answered_in_top_3_among_filler": (
            f"{sum(1 for rank in found if rank is not None)}/{len(found)}"
        ),
        "search_on_loop": percentiles(time_searches(index, asked, repeat)),
        "search_via_to_thread": percentiles(anyio.run(time_searches_off_the_loop, index, asked)),
        "shipped_profile_search": percentiles(time_searches(shipped, asked, repeat)),
    }


def _rank(index: KnowledgeIndex, question: str, section: tuple[str, str]) -> int | None:
    """Where ``section`` (title, heading) comes among the passages found, if at all."""
    sections = [(passage.source, passage.heading) for passage in index.search(question)]
    return sections.index(section) if section in sections else None


def main() -> None:
    """Measure, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=50 * 1024)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    figures = measure(args.size, args.questions, args.repeat)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

"""The business's knowledge: files checked at load, cut at headings, found by questions."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import anyio
import pytest

from bench.knowledge import measure
from frontdesk.knowledge.chunks import CHUNK_CHARS, Chunk, chunk_markdown, chunk_plain_text
from frontdesk.knowledge.index import KnowledgeIndex, Passage
from frontdesk.knowledge.sources import MAX_SOURCE_BYTES
from frontdesk.runtime.errors import SettingsError
from frontdesk.runtime.profile import load_profile
from frontdesk.runtime.settings import DEFAULT_PROFILE
from tests.knowledge_support import (
    QUESTIONS,
    TEN_SOURCES,
    UNRELATED_QUESTIONS,
    profile_with,
    write_profile,
    write_sources,
)
from tests.support import base_env, run_main

SERVICE_CALL = {"prices.md": TEN_SOURCES["prices.md"]}


@pytest.fixture(scope="module")
def ten_sources(tmp_path_factory) -> KnowledgeIndex:
    return KnowledgeIndex.build(profile_with(tmp_path_factory.mktemp("ten"), TEN_SOURCES).knowledge)


@pytest.fixture(scope="module")
def shipped() -> KnowledgeIndex:
    return KnowledgeIndex.build(load_profile(DEFAULT_PROFILE).knowledge)


# Cutting files into passages


def test_markdown_is_cut_at_headings_and_each_passage_keeps_its_heading():
    text = """---
title: front matter is not knowledge
---
Welcome to [Bayside](https://example.com).

# Prices

## Service call fee ##
The **service call fee** is $89,
waived if you go ahead with the repair.

Hours
=====
* Monday to Friday 8 to 6
* Saturday 9 to 2

```
# not a heading inside a fence
```
<!-- a note for the editor -->
"""

    assert chunk_markdown(text) == [
        Chunk(heading="", text="Welcome to Bayside."),
        Chunk(
            heading="Service call fee",
            text="The service call fee is $89, waived if you go ahead with the repair.",
        ),
        Chunk(
            heading="Hours",
            text="- Monday to Friday 8 to 6\n- Saturday 9 to 2\n\n# not a heading inside a fence",
        ),
    ]


def test_windows_line_ends_and_a_rule_under_a_list_cut_the_same_way():
    text = "---\nauthor: office\n---\n## Payment\n- Cards\n- Cash\n---\nChecks too.\n"

    assert chunk_markdown(text.replace("\n", "\r\n")) == chunk_markdown(text)
    assert chunk_markdown(text) == [Chunk(heading="Payment", text="- Cards\n- Cash\n\nChecks too.")]


def test_a_long_section_is_split_between_paragraphs_and_every_piece_keeps_its_heading():
    paragraphs = [f"Paragraph {n} " + "about water heaters and their care. " * 8 for n in range(6)]
    chunks = chunk_markdown("## Water heaters\n\n" + "\n\n".join(paragraphs))

    assert len(chunks) > 1
    assert all(chunk.heading == "Water heaters" for chunk in chunks)
    assert all(len(chunk.text) <= CHUNK_CHARS for chunk in chunks)
    assert "\n\n".join(chunk.text for chunk in chunks) == "\n\n".join(p.strip() for p in paragraphs)


def test_a_paragraph_longer_than_a_passage_is_split_between_sentences():
    sentence = "Our technicians carry the common parts for tank and tankless heaters. "
    chunks = chunk_markdown("## Parts\n\n" + sentence * 30)

    assert len(chunks) > 1
    assert all(len(c.text) <= CHUNK_CHARS and c.text.endswith("heaters.") for c in chunks)


def test_in_plain_text_a_short_line_heads_the_paragraphs_after_it():
    text = "Service call fee\n\nIt is $89.\nWaived with the repair.\n\nPayment\n\nCards or cash."

    assert chunk_plain_text(text) == [
        Chunk(heading="Service call fee", text="It is $89. Waived with the repair."),
        Chunk(heading="Payment", text="Cards or cash."),
    ]


# Finding passages


@pytest.mark.parametrize(("question", "title", "heading"), QUESTIONS)
def test_a_question_finds_the_section_that_answers_it_among_ten_sources(
    ten_sources, question, title, heading
):
    best = ten_sources.search(question)[0]

    assert (best.source, best.heading) == (title, heading)


@pytest.mark.parametrize("question", UNRELATED_QUESTIONS)
def test_a_question_the_knowledge_does_not_cover_finds_nothing(ten_sources, question):
    assert ten_sources.search(question) == []


@pytest.mark.parametrize(
    "question",
    ["do you install ceiling fans", "can you install solar panels", "do you sell solar panels?"],
)
def test_one_word_in_common_does_not_answer_a_question_about_something_else(
    ten_sources, shipped, question
):
    # "install" is in how EV chargers and water heaters are installed; "panels" is in
    # breaker panels: neither answers the question, and nothing is better than a guess.
    assert ten_sources.search(question) == []
    assert shipped.search(question) == []
    assert [p.heading for p in ten_sources.search("do you install EV chargers for my car")][:1] == [
        "EV chargers"
    ]


def test_a_question_of_stop_words_only_finds_nothing(ten_sources):
    assert ten_sources.search("can you tell me what it is, please?") == []


def test_a_word_in_more_than_half_of_the_passages_does_not_make_one_relevant(tmp_path):
    sections = "\n".join(f"## Part {n}\nBayside does job number {n}.\n" for n in range(6))
    index = KnowledgeIndex.build(profile_with(tmp_path, {"a.md": ("A", sections)}).knowledge)

    assert index.search("bayside") == []
    assert [p.heading for p in index.search("bayside number 3")] == ["Part 3"]


@pytest.mark.parametrize(
    "question",
    [
        '"',
        "*",
        "OR",
        "NEAR(",
        "fee AND NOT",
        'fee" OR "*',
        "heading: fee",
        "^fee",
        "NEAR(fee price, 2)",
        "(((",
        "fee -price +cost",
        "{fee}",
        "'; DROP TABLE passages; --",
        "",
        "   ",
        "¿Cuánto cuesta la visita?",
        "fee " * 500,
    ],
)
def test_fts_syntax_in_a_question_is_read_as_words(ten_sources, question):
    passages = ten_sources.search(question)

    assert all(isinstance(p, Passage) for p in passages)
    if "fee" in question:
        assert passages[0].heading in {"Service call fee", "Cancellation"}


def test_at_most_limit_passages_and_max_chars_of_text_are_returned(ten_sources):
    question = "water heaters furnace tune-up"

    assert len(ten_sources.search(question, limit=1)) == 1
    assert ten_sources.search(question, limit=0) == []
    for max_chars in (50, 200, 400):
        passages = ten_sources.search(question, max_chars=max_chars)
        assert passages and sum(len(p.text) for p in passages) <= max_chars


def test_a_best_passage_longer_than_max_chars_is_cut_short(ten_sources):
    [passage] = ten_sources.search("tankless heaters", limit=1, max_chars=60)

    assert passage.heading == "Tankless water heaters"
    assert len(passage.text) <= 60 and passage.text.endswith("…")
    assert passage.text.startswith("We install, repair and descale")


def test_passages_come_best_first_with_their_scores(ten_sources):
    passages = ten_sources.search("furnace filter tune-up", limit=3)

    assert len(passages) == 3
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)


@pytest.mark.anyio
async def test_searches_run_on_worker_threads_at_once(ten_sources):
    found: list[str] = []
    threads: set[int] = set()

    def search(question: str) -> None:
        threads.add(threading.get_ident())
        found.append(ten_sources.search(question)[0].heading)

    async with anyio.create_task_group() as tg:
        for question, _, _ in QUESTIONS:
            tg.start_soon(anyio.to_thread.run_sync, search, question)

    assert threading.get_ident() not in threads
    assert sorted(found) == sorted(heading for _, _, heading in QUESTIONS)


def test_the_index_reports_its_sources_and_size(ten_sources):
    assert [s.title for s in ten_sources.sources] == [t for t, _ in TEN_SOURCES.values()]
    assert all(s.passages == 3 for s in ten_sources.sources)
    assert ten_sources.passage_count == 30
    assert ten_sources.size_bytes > 0


def test_no_knowledge_builds_an_empty_index_that_finds_nothing(tmp_path):
    index = KnowledgeIndex.build(load_profile(write_profile(tmp_path, [])).knowledge)

    assert index.passage_count == 0
    assert index.search("do you charge to come out?") == []


# The shipped profile


@pytest.mark.parametrize(
    ("question", "title", "heading"),
    [
        ("do you charge to come out?", "Prices", "Service call fee"),
        ("do you work on tankless heaters?", "Frequently asked questions", "Water heaters"),
        ("are you open on Saturdays?", "Frequently asked questions", "Hours"),
        ("what do you charge after hours?", "Prices", "Emergency and after-hours fee"),
        ("how can I pay?", "Prices", "Payment methods"),
        ("is there a warranty on the work?", "Policies", "Warranty"),
        ("can I cancel my appointment?", "Policies", "Cancellation and rescheduling"),
    ],
)
def test_the_shipped_knowledge_answers_callers_common_questions(shipped, question, title, heading):
    best = shipped.search(question)[0]

    assert (best.source, best.heading) == (title, heading)


def test_the_shipped_knowledge_agrees_with_the_shipped_profile(shipped):
    [fee] = [p for p in shipped.search("service call fee") if p.heading == "Service call fee"]
    [hours] = shipped.search("are you open on Saturdays?", limit=1)

    assert "$89" in fee.text and "waived" in fee.text
    assert "Saturday from 9 am to 2 pm" in hours.text and "closed on Sundays" in hours.text


def test_check_lists_the_knowledge_sources_it_loaded(tmp_path):
    code, stdout, stderr = run_main("check", env=base_env(tmp_path), cwd=tmp_path)

    assert code == 0, stderr
    assert "knowledge    3 sources, 18 passages" in stdout
    assert "    Prices (knowledge/prices.md): 6 passages" in stdout


def test_check_lists_the_languages_it_loaded(tmp_path):
    code, stdout, stderr = run_main("check", env=base_env(tmp_path), cwd=tmp_path)

    assert code == 0, stderr
    assert (
        "languages    en (Ashley/aura-2-helena-en), es (Diego/aura-2-celeste-es, key 9)" in stdout
    )


# Checked at load


def problems(folder: Path, knowledge: list[dict[str, str]]) -> list[str]:
    """What loading the default profile with ``knowledge`` from ``folder`` refuses."""
    with pytest.raises(SettingsError) as refused:
        load_profile(write_profile(folder, knowledge))
    return refused.value.problems


def test_a_path_out_of_the_profile_folder_is_refused(tmp_path):
    (tmp_path / "secret.md").write_text("the admin password")
    profile = tmp_path / "profile"
    profile.mkdir()

    named = problems(profile, [{"title": "Secret", "path": "../secret.md"}])
    named += problems(profile, [{"title": "Secret", "path": str(tmp_path / "secret.md")}])

    assert named == [
        "knowledge.0.path: may not leave the profile's folder ('..')",
        "knowledge.0.path: must be relative to the profile's folder",
    ]


def test_a_symlink_out_of_the_profile_folder_is_refused(tmp_path):
    (tmp_path / "secret.md").write_text("the admin password")
    profile = tmp_path / "profile"
    (profile / "knowledge").mkdir(parents=True)
    (profile / "knowledge" / "faq.md").symlink_to(tmp_path / "secret.md")
    (profile / "elsewhere").symlink_to(tmp_path, target_is_directory=True)

    named = problems(
        profile,
        [
            {"title": "FAQ", "path": "knowledge/faq.md"},
            {"title": "Also", "path": "elsewhere/secret.md"},
        ],
    )

    assert named == [
        "knowledge.0.path: knowledge/faq.md points outside the profile's folder",
        "knowledge.1.path: elsewhere/secret.md points outside the profile's folder",
    ]


def test_a_symlink_inside_the_profile_folder_is_followed(tmp_path):
    write_sources(tmp_path, SERVICE_CALL)
    (tmp_path / "knowledge" / "current.md").symlink_to(tmp_path / "knowledge" / "prices.md")

    [source] = load_profile(
        write_profile(tmp_path, [{"title": "Prices", "path": "knowledge/current.md"}])
    ).knowledge

    assert source.path == (tmp_path / "knowledge" / "prices.md").resolve()


def test_a_missing_file_is_refused(tmp_path):
    assert problems(tmp_path, [{"title": "FAQ", "path": "knowledge/faq.md"}]) == [
        "knowledge.0.path: file not found: knowledge/faq.md"
    ]


def test_a_file_over_the_size_limit_is_refused(tmp_path):
    (tmp_path / "big.md").write_text("x" * (MAX_SOURCE_BYTES + 1))
    (tmp_path / "just.md").write_text("x" * MAX_SOURCE_BYTES)

    named = problems(
        tmp_path, [{"title": "Just", "path": "just.md"}, {"title": "Big", "path": "big.md"}]
    )

    assert named == ["knowledge.1.path: is larger than the limit of 256 KB"]


def test_more_than_ten_sources_are_refused(tmp_path):
    sources = {f"s{n}.md": (f"Source {n}", f"# Part {n}\nText {n}.") for n in range(11)}

    named = problems(tmp_path, write_sources(tmp_path, sources))

    assert named == ["knowledge: List should have at most 10 items after validation, not 11"]
    assert len(profile_with(tmp_path, dict(list(sources.items())[:10])).knowledge) == 10


@pytest.mark.parametrize(
    ("content", "path", "problem"),
    [
        (b"%PDF-1.7", "prices.pdf", "must be a Markdown (.md) or plain text (.txt) file"),
        (b"\xff\xfe p\x00r\x00i\x00c\x00e\x00", "prices.md", "is not UTF-8 text"),
        (b"  \n\n ", "prices.md", "has no text"),
    ],
)
def test_a_file_that_is_not_usable_text_is_refused(tmp_path, content, path, problem):
    (tmp_path / path).write_bytes(content)

    assert problems(tmp_path, [{"title": "Prices", "path": path}]) == [
        f"knowledge.0.path: {problem}"
    ]


def test_a_directory_is_refused(tmp_path):
    (tmp_path / "notes.md").mkdir()

    assert problems(tmp_path, [{"title": "Notes", "path": "notes.md"}]) == [
        "knowledge.0.path: notes.md is not a regular file"
    ]


def test_two_sources_with_one_title_are_refused(tmp_path):
    entries = write_sources(tmp_path, {"a.md": ("Prices", "a"), "b.md": ("prices", "b")})

    assert problems(tmp_path, entries) == ["knowledge: duplicate title(s): prices"]


def test_a_title_with_markup_is_refused(tmp_path):
    entries = write_sources(tmp_path, {"a.md": ("Prices {system}", "a")})

    [named] = problems(tmp_path, entries)
    assert named.startswith("knowledge.0.title: may not contain braces")


def test_a_file_gone_since_loading_stops_the_build_naming_the_field(tmp_path):
    profile = profile_with(tmp_path, TEN_SOURCES)
    os.remove(tmp_path / "knowledge" / "hvac.md")

    with pytest.raises(SettingsError) as refused:
        KnowledgeIndex.build(profile.knowledge)

    assert refused.value.problems == ["knowledge.4.path: cannot be read: No such file or directory"]


def test_the_benchmark_measures_build_size_and_search_times():
    figures = measure(size=3000, count=40, repeat=2)

    assert figures["sources"] == 10 and figures["questions"] == 40
    assert figures["passages"] > 30 and figures["index_bytes"] > 0
    for percentiles in ("search_on_loop", "search_via_to_thread", "shipped_profile_search"):
        times = figures[percentiles]
        assert 0 < times["p50_us"] <= times["p95_us"] <= times["max_us"]

"""The knowledge index: passages of the business's files, found by a caller's question.

SQLite FTS5 in memory, ranked by BM25 (a word of a heading counts twice one of the text
or the source's title), words stemmed by the Porter stemmer over the ``unicode61``
tokenizer (accents folded). A question is never passed to FTS5 as syntax: its words are
taken out, stop words dropped, a few everyday words widened to the words businesses
write ("charge" also looks for "fee", "cost" and "price", at half weight), and each is
quoted as a plain term. A passage's score is the sum over the question's words of BM25's
weight for the word (or the best of its wider words), plus that of neighbouring words
found side by side ("come out").

Relevance: a word found in more than half of all passages cannot tell one from another
(FTS5's BM25 gives it no weight either), so it does not count. A passage is returned
only if it contains at least half (:data:`MIN_COVERAGE`) of the question's other words,
each itself or one of its wider words. A word the business writes nowhere still
counts, as one the passage lacks: it is what the question is about. So one word in
common is not enough for a question about something else ("do you install ceiling
fans?" is not answered by how EV chargers are installed), and a question no passage
covers gets no passages at all: the caller is offered a callback rather than a guess.

The index is built once and then only read. One connection serves every search under a
lock, so searches may run on worker threads (``anyio.to_thread.run_sync``).
"""

from __future__ import annotations

import itertools
import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from frontdesk.knowledge.chunks import Chunk, chunk_markdown, chunk_plain_text
from frontdesk.knowledge.sources import KnowledgeSource, read_sources
from frontdesk.knowledge.words import PHRASE_WORDS, STOP_WORDS, wider_words

MAX_QUESTION_CHARS = 500
MAX_QUESTION_WORDS = 12
# A passage that has the caller's own word beats one that has only a wider word for it.
WIDER_WORD_WEIGHT = 0.5
MIN_COVERAGE = 0.5
"""The share of a question's words a passage must contain to be returned at all."""
_WORD = re.compile(r"[^\W_]+")
_SCHEMA = """
CREATE VIRTUAL TABLE passages USING fts5(
    source, heading, body, tokenize = 'porter unicode61 remove_diacritics 2'
);
INSERT INTO passages(passages, rank) VALUES ('rank', 'bm25(1.0, 2.0, 1.0)');
"""
_COUNT = "SELECT count(*) FROM passages WHERE passages MATCH ?"
_TERM = "SELECT rowid, rank FROM passages WHERE passages MATCH ?"
_PASSAGE = "SELECT source, heading, body FROM passages WHERE rowid = ?"
_COMMON: dict[int, float] = {}
"""The weights of a word too common to tell passages apart: none (compared by identity)."""


@dataclass(frozen=True, slots=True)
class Passage:
    """A passage that answers a question: its source's title, its heading, its text.

    ``score`` is BM25's: higher is better, comparable only within one search.
    """

    source: str
    heading: str
    text: str
    score: float


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexedSource:
    """A knowledge source as indexed: its title, file and number of passages."""

    title: str
    path: Path
    passages: int


class KnowledgeIndex:
    """The passages of every knowledge source, searchable by a caller's question."""

    def __init__(self, connection: sqlite3.Connection, sources: Sequence[IndexedSource]) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self.sources: tuple[IndexedSource, ...] = tuple(sources)
        self.passage_count = sum(source.passages for source in sources)

    @classmethod
    def build(cls, sources: Sequence[KnowledgeSource]) -> KnowledgeIndex:
        """Read, cut and index ``sources`` (a profile's ``knowledge``), in memory.

        Reads the files: run it off the event loop once calls are being served.

        Raises:
            SettingsError: Naming each source whose file can no longer be used.
        """
        texts = read_sources(list(sources))
        connection = sqlite3.connect(":memory:", check_same_thread=False)
        connection.executescript(_SCHEMA)
        indexed: list[IndexedSource] = []
        for source, text in texts:
            chunks = _chunks(source.path, text)
            connection.executemany(
                "INSERT INTO passages(source, heading, body) VALUES (?, ?, ?)",
                [(source.title, chunk.heading, chunk.text) for chunk in chunks],
            )
            indexed.append(
                IndexedSource(title=source.title, path=source.path, passages=len(chunks))
            )
        connection.execute("INSERT INTO passages(passages) VALUES ('optimize')")
        connection.commit()
        return cls(connection, indexed)

    @property
    def size_bytes(self) -> int:
        """The index's size in memory (SQLite pages in use)."""
        with self._lock:
            (pages,) = self._connection.execute("PRAGMA page_count").fetchone()
            (page_size,) = self._connection.execute("PRAGMA page_size").fetchone()
        return pages * page_size

    def search(self, question: str, *, limit: int = 3, max_chars: int = 1200) -> list[Passage]:
        """The passages that best answer ``question``, best first; ``[]`` if none is relevant.

        At most ``limit`` passages and ``max_chars`` characters of text in all: the best
        passage is cut short if it alone is longer; a later one that does not fit is left out.
        Safe to call from any thread.
        """
        words = question_words(question)
        if not words or limit < 1:
            return []
        scores: dict[int, float] = {}
        covered: dict[int, int] = {}
        weighed: dict[str, dict[int, float]] = {}

        common: set[str] = set()

        def weights(term: str) -> dict[int, float]:
            if term not in weighed:
                weighed[term] = self._weights(term)
                if weighed[term] is _COMMON:
                    common.add(term)
            return weighed[term]

        with self._lock:
            for word, wider in words:
                best = dict(weights(word))
                for other in wider:
                    for rowid, weight in weights(other).items():
                        best[rowid] = max(best.get(rowid, 0.0), WIDER_WORD_WEIGHT * weight)
                for rowid, weight in best.items():
                    scores[rowid] = scores.get(rowid, 0.0) + weight
                    covered[rowid] = covered.get(rowid, 0) + 1
            for phrase in question_phrases(question):
                for rowid, weight in weights(phrase).items():
                    if rowid in scores:
                        scores[rowid] += weight
            telling = [word for word, _ in words if word not in common]
            relevant = {
                rowid: score
                for rowid, score in scores.items()
                if covered[rowid] >= MIN_COVERAGE * len(telling)
            }
            ranked = sorted(relevant.items(), key=lambda item: (-item[1], item[0]))[:limit]
            passages = [self._passage(rowid, score) for rowid, score in ranked]
        return _within_budget(passages, max_chars)

    def _passage(self, rowid: int, score: float) -> Passage:
        source, heading, body = self._connection.execute(_PASSAGE, (rowid,)).fetchone()
        return Passage(source, heading, body, score)

    def _weights(self, term: str) -> dict[int, float]:
        """BM25's weight of ``term`` in each passage containing it; none if too common."""
        quoted = f'"{term}"'
        # Counting is several times cheaper than ranking: skip the common words first.
        (found_in,) = self._connection.execute(_COUNT, (quoted,)).fetchone()
        if found_in > max(1, self.passage_count / 2):
            return _COMMON
        if found_in == 0:
            return {}
        return {rowid: -rank for rowid, rank in self._connection.execute(_TERM, (quoted,))}

    def close(self) -> None:
        """Free the index; searching it afterwards is an error."""
        with self._lock:
            self._connection.close()


def question_words(question: str) -> list[tuple[str, tuple[str, ...]]]:
    """The words of ``question`` worth searching for, each with its wider words.

    Only letters and digits survive, so nothing a caller says is read as FTS5 syntax.
    """
    words: list[tuple[str, tuple[str, ...]]] = []
    for word in dict.fromkeys(_WORD.findall(question[:MAX_QUESTION_CHARS].lower())):
        if word not in STOP_WORDS:
            words.append((word, wider_words(word)))
    return words[:MAX_QUESTION_WORDS]


def question_phrases(question: str) -> list[str]:
    """Neighbouring words of ``question`` that mean more together: "credit cards", "come out".

    Two words worth searching for, or one of them beside a phrase word ("after hours"). A
    passage that has them side by side is closer to the question than one that only has
    both somewhere ("come back ... no charge").
    """
    spoken = _WORD.findall(question[:MAX_QUESTION_CHARS].lower())
    pairs = [
        f"{first} {second}"
        for first, second in itertools.pairwise(spoken)
        if (first not in STOP_WORDS or second not in STOP_WORDS)
        and {first, second} & STOP_WORDS <= PHRASE_WORDS
    ]
    return list(dict.fromkeys(pairs))[:MAX_QUESTION_WORDS]


def _chunks(path: Path, text: str) -> list[Chunk]:
    if path.suffix.lower() == ".txt":
        return chunk_plain_text(text)
    return chunk_markdown(text)


def _within_budget(passages: list[Passage], max_chars: int) -> list[Passage]:
    kept: list[Passage] = []
    used = 0
    for passage in passages:
        if not kept and len(passage.text) > max_chars:
            cut = passage.text[: max(0, max_chars - 1)].rsplit(" ", 1)[0]
            passage = Passage(passage.source, passage.heading, f"{cut}…", passage.score)
        if used + len(passage.text) <= max_chars:
            kept.append(passage)
            used += len(passage.text)
    return kept

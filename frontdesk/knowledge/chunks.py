"""Knowledge files cut into passages: one per heading's section, split at paragraphs.

Markdown: ATX (``## Fees``) and setext (underlined) headings open sections; links keep
their text, emphasis markers and HTML comments go, front matter is skipped, and nothing
inside a code fence is taken for a heading. Plain text: a paragraph that is one short
line without closing punctuation is taken for the heading of the paragraphs after it.
A section longer than ``CHUNK_CHARS`` is split between paragraphs (a longer paragraph
between sentences), and every piece keeps its section's heading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CHUNK_CHARS = 700
_PLAIN_HEADING_CHARS = 80

_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_RULE = re.compile(r"^ {0,3}([-*_=])(\s*\1){2,}\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_IMAGE_OR_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1|(?<![\w*])\*(?!\s)([^*]+?)\*(?![\w*])")
_BULLET = re.compile(r"^(\s*)[*+]\s+")
_WRAPPED = re.compile(r"[ \t]*\n[ \t]*(?!- |\d+[.)] |\|)")
_LIST_ITEM = re.compile(r"^\s*(?:- |\d+[.)] )")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """One passage of a knowledge file, under the heading of its section."""

    heading: str
    text: str


def chunk_markdown(text: str) -> list[Chunk]:
    """The passages of a Markdown document, in document order."""
    text = _COMMENT.sub("", _without_front_matter(text.replace("\r\n", "\n")))
    sections: list[tuple[str, list[str]]] = [("", [])]
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        body = sections[-1][1]
        heading = None if in_fence else _ATX.match(line)
        if heading:
            sections.append((_inline(heading.group(2)), []))
        elif not in_fence and _SETEXT.match(line) and _one_line_paragraph_ends(body):
            sections.append((body.pop(), []))
        elif not in_fence and _RULE.match(line):
            body.append("")  # a rule ends the paragraph above it
        else:
            body.append(line if in_fence else _inline(_BULLET.sub(r"\1- ", line)))
    return [
        chunk
        for heading, lines in sections
        for chunk in _split(heading, _paragraphs("\n".join(lines)))
    ]


def _one_line_paragraph_ends(lines: list[str]) -> bool:
    """Whether ``lines`` end in a paragraph of one line (which an underline makes a heading)."""
    if not lines or not lines[-1].strip() or _LIST_ITEM.match(lines[-1]):
        return False
    return len(lines) == 1 or not lines[-2].strip()


def chunk_plain_text(text: str) -> list[Chunk]:
    """The passages of a plain text document, in document order."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    for paragraph in _paragraphs(text):
        if _looks_like_heading(paragraph):
            sections.append((paragraph, []))
        else:
            sections[-1][1].append(paragraph)
    return [chunk for heading, paragraphs in sections for chunk in _split(heading, paragraphs)]


def _looks_like_heading(paragraph: str) -> bool:
    return (
        "\n" not in paragraph
        and len(paragraph) <= _PLAIN_HEADING_CHARS
        and not paragraph.endswith((".", "!", "?", ",", ";"))
    )


def _without_front_matter(text: str) -> str:
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            return text[end + 5 :]
    return text


def _inline(line: str) -> str:
    line = _IMAGE_OR_LINK.sub(r"\1", line).replace("`", "")
    return _EMPHASIS.sub(lambda m: m.group(2) or m.group(3), line).rstrip()


def _paragraphs(text: str) -> list[str]:
    return [_unwrapped(p.strip()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def _unwrapped(paragraph: str) -> str:
    """``paragraph`` with its wrapped lines joined; list items and table rows stay lines."""
    return _WRAPPED.sub(" ", paragraph)


def _split(heading: str, paragraphs: list[str]) -> list[Chunk]:
    pieces = [piece for paragraph in paragraphs for piece in _pieces(paragraph)]
    chunks: list[Chunk] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 2 + len(piece) > CHUNK_CHARS:
            chunks.append(Chunk(heading=heading, text=current))
            current = piece
        else:
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(Chunk(heading=heading, text=current))
    return chunks


def _pieces(paragraph: str) -> list[str]:
    """``paragraph`` in pieces of at most ``CHUNK_CHARS``: whole sentences where possible."""
    if len(paragraph) <= CHUNK_CHARS:
        return [paragraph]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(paragraph):
        for part in _hard_wrap(sentence):
            if current and len(current) + 1 + len(part) > CHUNK_CHARS:
                pieces.append(current)
                current = part
            else:
                current = f"{current} {part}" if current else part
    if current:
        pieces.append(current)
    return pieces


def _hard_wrap(sentence: str) -> list[str]:
    if len(sentence) <= CHUNK_CHARS:
        return [sentence]
    parts: list[str] = []
    current = ""
    for word in sentence.split():
        word = word[:CHUNK_CHARS]
        if current and len(current) + 1 + len(word) > CHUNK_CHARS:
            parts.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        parts.append(current)
    return parts

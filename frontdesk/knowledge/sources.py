"""The profile's knowledge sources: local text files, checked before anything reads them.

Each source is a title and a path relative to the profile's folder, to a Markdown
(``.md``, ``.markdown``) or plain text (``.txt``) file in UTF-8 of at most
``MAX_SOURCE_BYTES``. A path may not leave the folder, not even through a symlink; a
missing, oversized, empty or undecodable file is refused with its field named.

The file checks need the profile's folder, passed as validation context under
``PROFILE_FOLDER`` (``load_profile`` does). A profile validated without it keeps the
paths as written, unchecked, and cannot be indexed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from frontdesk.runtime.errors import SettingsError

PROFILE_FOLDER = "profile_folder"
MAX_SOURCES = 10
MAX_SOURCE_BYTES = 256 * 1024
TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt"})
# Titles reach the LLM beside every passage, so they may not carry template or markup syntax.
_TITLE_FORBIDDEN = re.compile(r"[{}<>`\x00-\x1f]")


def _title(value: str) -> str:
    if _TITLE_FORBIDDEN.search(value):
        raise ValueError("may not contain braces, angle brackets, backticks or control characters")
    return " ".join(value.split())


class KnowledgeSource(BaseModel):
    """One file of the business's knowledge, with the title answers cite it by."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Annotated[str, Field(min_length=1, max_length=80), AfterValidator(_title)]
    path: Path

    @field_validator("path")
    @classmethod
    def _inside_the_profile_folder(cls, value: Path, info: ValidationInfo) -> Path:
        if value.is_absolute():
            raise ValueError("must be relative to the profile's folder")
        if ".." in value.parts:
            raise ValueError("may not leave the profile's folder ('..')")
        if value.suffix.lower() not in TEXT_SUFFIXES:
            raise ValueError("must be a Markdown (.md) or plain text (.txt) file")
        folder = (info.context or {}).get(PROFILE_FOLDER)
        if folder is None:
            return value
        resolved = _resolve_inside(Path(folder), value)
        read_text(resolved)
        return resolved


def _resolve_inside(folder: Path, relative: Path) -> Path:
    root = folder.resolve()
    try:
        resolved = (root / relative).resolve(strict=True)
    except FileNotFoundError:
        raise ValueError(f"file not found: {relative}") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop, before 3.13
        raise ValueError(f"cannot be read: {exc}") from None
    if not resolved.is_relative_to(root):
        raise ValueError(f"{relative} points outside the profile's folder")
    if not resolved.is_file():
        raise ValueError(f"{relative} is not a regular file")
    return resolved


def read_text(path: Path) -> str:
    """The text of a source file, or ``ValueError`` saying why it cannot be used."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_SOURCE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_SOURCE_BYTES:
        raise ValueError(f"is larger than the limit of {MAX_SOURCE_BYTES // 1024} KB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("is not UTF-8 text") from None
    if not text.strip():
        raise ValueError("has no text")
    return text


def _unique_titles(value: list[KnowledgeSource]) -> list[KnowledgeSource]:
    titles = [source.title.lower() for source in value]
    duplicates = sorted({t for t in titles if titles.count(t) > 1})
    if duplicates:
        raise ValueError(f"duplicate title(s): {', '.join(duplicates)}")
    return value


KnowledgeSources = Annotated[
    list[KnowledgeSource], Field(max_length=MAX_SOURCES), AfterValidator(_unique_titles)
]
"""The profile's ``knowledge:`` section: at most ``MAX_SOURCES`` sources, titles unique."""


def read_sources(sources: list[KnowledgeSource]) -> list[tuple[KnowledgeSource, str]]:
    """Each source with its text, read again now (the files may have changed since loading).

    Raises:
        SettingsError: Naming every source that can no longer be read, or that was never
            checked against its profile's folder.
    """
    texts: list[tuple[KnowledgeSource, str]] = []
    problems: list[str] = []
    for number, source in enumerate(sources):
        field = f"knowledge.{number}.path"
        if not source.path.is_absolute():
            problems.append(f"{field}: not checked against the profile's folder (use load_profile)")
            continue
        try:
            texts.append((source, read_text(source.path)))
        except ValueError as exc:
            problems.append(f"{field}: {exc}")
    if problems:
        raise SettingsError(problems, what="agent profile")
    return texts

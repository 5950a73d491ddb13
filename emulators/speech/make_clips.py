"""Build the committed speech clips: ``python -m emulators.speech.make_clips [LINE ...]``.

Synthesises every line the caller speaks in ``scenarios/*.yaml``, every line of
``emulators/speech/extra_lines.txt`` and every LINE given on the command line, and
writes ``emulators/speech/clips/<sha1(text)[:16]>.ulaw`` (8 kHz μ-law mono) plus
``clips/index.json`` mapping each text to its file. Clips that exist are kept unless
``--force``; lines no longer wanted stay in the index unless ``--prune``. ``--check``
only reports lines without a clip (exit status 1 if any) and needs no espeak-ng.

Needs espeak-ng (``apt-get install -y espeak-ng``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from emulators.scenario import SCENARIO_DIR, load_scenario
from emulators.speech import synth
from emulators.speech.clips import CLIP_DIR, INDEX_PATH, committed_clips

logger = logging.getLogger("make_clips")

EXTRA_LINES_PATH = Path(__file__).resolve().parent / "extra_lines.txt"


def wanted_lines(extra: list[str]) -> list[str]:
    """Every line that needs a clip, in first-seen order, without repeats."""
    lines: list[str] = []
    for path in sorted(SCENARIO_DIR.glob("*.yaml")):
        lines.extend(load_scenario(path).lines)
    lines.extend(read_extra_lines(EXTRA_LINES_PATH))
    lines.extend(extra)
    return list(dict.fromkeys(line for line in lines if line.strip()))


def read_extra_lines(path: Path) -> list[str]:
    """The lines of ``extra_lines.txt``, skipping blank lines and ``#`` comments."""
    if not path.exists():
        return []
    stripped = (raw.strip() for raw in path.read_text().splitlines())
    return [line for line in stripped if line and not line.startswith("#")]


def build(lines: list[str], *, force: bool, prune: bool) -> dict[str, str]:
    """Write the clips of ``lines`` and the index; return the index written."""
    CLIP_DIR.mkdir(parents=True, exist_ok=True)
    index = {} if prune else {text: path.name for text, path in committed_clips().items()}
    for text in lines:
        name = synth.clip_name(text)
        path = CLIP_DIR / name
        if force or not path.exists():
            audio = synth.synthesise(text)
            path.write_bytes(audio)
            logger.info("%s  %.2f s  %r", name, len(audio) / synth.SAMPLE_RATE, text)
        index[text] = name
    if prune:
        keep = set(index.values())
        for stale in CLIP_DIR.glob("*.ulaw"):
            if stale.name not in keep:
                stale.unlink()
                logger.info("removed %s", stale.name)
    INDEX_PATH.write_text(json.dumps(dict(sorted(index.items())), indent=2) + "\n")
    return index


def missing(lines: list[str]) -> list[str]:
    """The lines among ``lines`` that have no clip file."""
    return [text for text in lines if not (CLIP_DIR / synth.clip_name(text)).exists()]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m emulators.speech.make_clips", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("lines", nargs="*", metavar="LINE", help="extra lines to synthesise")
    parser.add_argument("--force", action="store_true", help="re-synthesise existing clips")
    parser.add_argument("--prune", action="store_true", help="drop clips no line needs")
    parser.add_argument("--check", action="store_true", help="only list lines without a clip")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    lines = wanted_lines(args.lines)
    if args.check:
        absent = missing(lines)
        for text in absent:
            logger.error("no clip for %r", text)
        logger.info("%d lines, %d without a clip", len(lines), len(absent))
        return 1 if absent else 0
    if synth.espeak_path() is None:
        logger.error("espeak-ng is not installed: apt-get install -y espeak-ng")
        return 2
    try:
        index = build(lines, force=args.force, prune=args.prune)
    except synth.SynthesisError as exc:
        logger.error("%s", exc)
        return 1
    total = sum((CLIP_DIR / name).stat().st_size for name in set(index.values()))
    seconds = total / synth.SAMPLE_RATE
    logger.info("%d clips, %.1f s of speech, in %s", len(index), seconds, CLIP_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())

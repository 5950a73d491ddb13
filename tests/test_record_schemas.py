"""The published record schemas in docs/schemas are exactly what the models produce."""

from __future__ import annotations

import json

from frontdesk.delivery.records import RECORD_TYPES, SCHEMA_DIR, schemas


def test_exported_schema_files_match_the_models():
    for kind, schema in schemas().items():
        path = SCHEMA_DIR / f"{kind}.schema.json"
        assert path.exists(), f"{path} missing: run python -m frontdesk.delivery.records"
        assert json.loads(path.read_text()) == schema, (
            f"{path} drifted from the {kind} model: run python -m frontdesk.delivery.records"
        )


def test_every_record_kind_has_a_schema_file_and_no_stray_ones():
    files = {p.name for p in SCHEMA_DIR.glob("*.schema.json")}

    assert files == {f"{kind}.schema.json" for kind in RECORD_TYPES}

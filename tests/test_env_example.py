"""`.env.example` lists every setting, each with a comment, and nothing that is not one."""

from __future__ import annotations

from frontdesk.runtime.settings import Settings
from tests.support import ROOT


def test_env_example_lists_every_setting_with_a_comment():
    lines = (ROOT / ".env.example").read_text().splitlines()
    names = [line.split("=", 1)[0] for line in lines if line and not line.startswith("#")]
    commented = [
        lines[i].split("=", 1)[0]
        for i in range(1, len(lines))
        if lines[i] and not lines[i].startswith("#") and lines[i - 1].startswith("# ")
    ]

    assert sorted(names) == sorted(name.upper() for name in Settings.model_fields)
    assert commented == names

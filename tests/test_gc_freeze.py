"""What exists at startup is left out of later garbage collections; later objects are not."""

from __future__ import annotations

import gc

from frontdesk.runtime.gc_freeze import freeze_startup_objects


def _tracked(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


def test_startup_objects_are_frozen_and_later_ones_still_collected():
    startup = [["built at startup"]]
    try:
        assert freeze_startup_objects() > 0
        assert not _tracked(startup)
        later = [["built during a call"]]
        assert _tracked(later)
    finally:
        gc.unfreeze()
    assert _tracked(startup)

"""The collector pause around a code location's load: paused inside, garbage collected, the
survivors frozen, the collector's previous state restored."""

import gc
import weakref

from clickstream_assets.defs.startup_gc import collector_paused_then_frozen


class Node:
    def __init__(self):
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_paused_inside_then_survivors_frozen_and_garbage_collected():
    assert gc.isenabled()
    frozen_before = gc.get_freeze_count()
    with collector_paused_then_frozen():
        assert not gc.isenabled()
        kept = [Node() for _ in range(100)]
        garbage = Node()
        dead = weakref.ref(garbage)
        del garbage
    assert gc.isenabled()
    assert dead() is None  # collected before freezing, not kept forever
    assert gc.get_freeze_count() >= frozen_before + len(kept)
    gc.unfreeze()  # leave the test process as it was


def test_a_disabled_collector_stays_disabled():
    gc.disable()
    try:
        with collector_paused_then_frozen():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()

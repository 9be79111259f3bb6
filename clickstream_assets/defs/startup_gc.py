"""Python's cyclic garbage collector while a code location loads.

Why: building 1,000 customers' definitions allocates ~500k long-lived container objects, and
each full collection rescans all of them: ~10 full collections cost ~1 s of ~4.4 s CPU
(`bench/code_location.py`). Paused while the location builds, then one collection (so no
garbage is kept) and `gc.freeze()`, which moves what survived (the definitions, alive for the
process's life) to the permanent generation: later collections (snapshots, sensor ticks,
runs) skip them. Reference counting still frees everything as usual.
"""

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def collector_paused_then_frozen() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.collect()
        gc.freeze()
        if was_enabled:
            gc.enable()

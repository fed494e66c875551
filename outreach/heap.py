"""How the plan and dispatch stages keep Python's cyclic garbage collector out of the way.

A batch allocates tens of thousands of small containers (rows, records, decisions) that
live until the batch is written. With CPython's default thresholds they are promoted
through every generation, and each full collection walks every object the process holds:
the phone metadata, the rule set, the compiled templates, SQLAlchemy's and Babel's caches,
about a million objects that never become garbage. That cost a tenth to a fifth of the
plan stage (docs/performance.md).

So once per process, after its first batch has loaded and compiled what it keeps, the
survivors are frozen (``gc.freeze``: the collector no longer scans them; reference
counting still frees them) and the youngest generation is collected less often. Cyclic
garbage is still found: the youngest collection runs every ``YOUNG`` allocations.

While a settled process works a batch, automatic collection pauses altogether
(``paused``): the batch's objects are alive until it is written, so collecting young
objects then finds nothing and only walks them (about a twelfth of the planning time). Its
cyclic garbage, Jinja2's render contexts among it, is collected as the batch ends.

In the daemon's own process the web app and the event loop hold a few objects of their
own at that moment; one of them that later becomes part of a reference cycle is never
collected. That is bounded (what was alive at one instant) and happens once.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Net container allocations between two young collections (CPython's default is 700).
YOUNG = 10_000
# Young collections between two middle ones, and middle ones between two full ones, as
# CPython has them: with the kept objects frozen a full collection is cheap, and cyclic
# garbage that outlived two young ones (a batch's failed sends and their tracebacks) is
# not left waiting long.
MIDDLE = 10
FULL = 10

_lock = threading.Lock()
_settled = False


def settle() -> bool:
    """Freeze what the process holds now and raise the thresholds; only the first call in
    a process does anything. True when this call did it."""
    global _settled
    with _lock:
        if _settled:
            return False
        _settled = True
    gc.collect()  # what is garbage now must not be frozen with the rest
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, FULL)
    return True


@contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside (once the process has settled), then a young
    collection for what the batch left in cycles. The pause is process-wide: other
    threads' cyclic garbage waits for the batch's end too, a fraction of a second. Left
    alone when the collector is already disabled, or paused by another thread."""
    if not _settled or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect(0)

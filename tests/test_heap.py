"""The collector settings the plan and dispatch stages use, checked in a fresh process
(a process settles once, and this one may have settled already)."""

from __future__ import annotations

import json
import subprocess
import sys

from outreach import heap

PROBE = """
import gc, json, weakref
from outreach import heap

class Node:
    pass

kept = [{"n": i} for i in range(1000)]  # what the process holds before it settles
first, second = heap.settle(), heap.settle()
frozen, threshold = gc.get_freeze_count(), gc.get_threshold()

# Cyclic garbage made afterwards is still found by the automatic young collections: no
# explicit gc.collect() here.
witness = []
for _ in range(5 * heap.YOUNG):
    a, b = Node(), Node()
    a.other, b.other = b, a
    if not witness:
        witness.append(weakref.ref(a))
    del a, b
print(json.dumps({"first": first, "second": second, "frozen": frozen,
                  "threshold": threshold, "cycle_collected": witness[0]() is None,
                  "kept_frozen": gc.is_tracked(kept) and frozen >= len(kept)}))
"""


def test_settle_freezes_once_and_young_cycles_are_still_collected() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout)
    assert (seen["first"], seen["second"]) == (True, False)
    assert seen["threshold"] == [heap.YOUNG, heap.MIDDLE, heap.FULL]
    assert seen["kept_frozen"]
    assert seen["cycle_collected"]

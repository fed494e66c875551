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


PAUSED = """
import gc, json, weakref
from outreach import heap

class Node:
    pass

def cycles(count):
    witness = []
    for _ in range(count):
        a, b = Node(), Node()
        a.other, b.other = b, a
        witness.append(weakref.ref(a))
    return witness

with heap.paused():  # not settled yet: nothing changes
    before = gc.isenabled()
heap.settle()
with heap.paused():
    during = gc.isenabled()
    made = cycles(3 * heap.YOUNG)
    alive_during = sum(ref() is not None for ref in made)
after = gc.isenabled()
alive_after = sum(ref() is not None for ref in made)
gc.disable()  # someone else's pause is left as it is
with heap.paused():
    pass
left_disabled = not gc.isenabled()
print(json.dumps({"before": before, "during": during, "after": after, "made": len(made),
                  "alive_during": alive_during, "alive_after": alive_after,
                  "left_disabled": left_disabled}))
"""


def test_a_paused_batch_collects_nothing_until_it_ends_then_its_cycles() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PAUSED], capture_output=True, text=True, check=True
    )
    seen = json.loads(done.stdout)
    assert (seen["before"], seen["during"], seen["after"]) == (True, False, True)
    assert seen["alive_during"] == seen["made"]  # three times the threshold, none collected
    assert seen["alive_after"] == 0
    assert seen["left_disabled"]

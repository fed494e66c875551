"""The event loop the daemon's processes run on: uvloop where it is installed (it is a
dependency everywhere but Windows), asyncio's own otherwise.

uvloop's loop and transports are written in C (on libuv); a dispatch tick's thousands of
concurrent requests spend much of their CPU time in the loop, and it cuts that time by a
fifth (docs/performance.md). uvicorn picks it the same way for the web app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows, or a trimmed installation
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on ``new_event_loop()``."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coroutine)

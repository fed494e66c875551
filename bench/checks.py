"""What a benchmark checks of its own run: a figure is reported only for work that was done."""

from __future__ import annotations


class BenchmarkFailed(Exception):
    """A benchmark's check failed: its figures would not measure what they say."""


def require(condition: bool, message: str) -> None:
    """Fail the run with ``message`` unless ``condition`` holds."""
    if not condition:
        raise BenchmarkFailed(message)

"""Cadences: the files in ``schedules/`` that say when to contact an account, and how."""

from __future__ import annotations

from pathlib import Path

CADENCE_SUFFIXES = (".yaml", ".yml")


def cadence_names(schedules_dir: Path) -> frozenset[str]:
    """The cadences an account may name: one per file in ``schedules_dir``, by file stem."""
    if not schedules_dir.is_dir():
        return frozenset()
    return frozenset(
        path.stem for path in schedules_dir.iterdir() if path.suffix in CADENCE_SUFFIXES
    )

"""The templates outreach sends by name: each cadence step's default template on each of
its channels, and the agents' answer templates. Retiring one would leave the daemon or
the inbox without it, so ``template_store.retire`` refuses them."""

from __future__ import annotations

from pathlib import Path

from outreach.answers import ANSWERED_CHANNELS
from outreach.cadence import load_cadences
from outreach.rendering.context import ANSWER_TEMPLATE, ANSWER_TONE


def templates_in_use(schedules_dir: Path) -> dict[str, list[str]]:
    """Template path -> what sends it ("cadence standard, step overdue-3d")."""
    users: dict[str, list[str]] = {}
    for cadence in load_cadences(schedules_dir).values():
        for step in cadence.steps:
            for channel in step.channels:
                path = f"{channel}/{step.template}.{step.tone}.j2"
                users.setdefault(path, []).append(f"cadence {cadence.name}, step {step.key}")
    for channel in ANSWERED_CHANNELS:
        path = f"{channel}/{ANSWER_TEMPLATE}.{ANSWER_TONE}.j2"
        users.setdefault(path, []).append("the agents' answers")
    return users

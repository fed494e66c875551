"""The digest of the configuration that decides contacts, to compare daemons by.

Each daemon reads from its own machine what decides who is contacted, when and how: the
cadences (``schedules/``), the channels' settings (``channels/``), the operator's
compliance rules, the company file messages come from (``templates/company.yaml``), and a
few settings. Two daemons sharing a database with different ones plan each account as
whichever claims it sees fit. The digest is of the files' content, by file name, so
touching a file or moving the folder elsewhere changes nothing; the published templates
are in the database, the same for every daemon, and are left out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from pathlib import Path

from outreach.cadence import CADENCE_SUFFIXES
from outreach.config import Settings

# What the digest covers, as a warning or a listing names it.
DIGEST_COVERS = (
    "the schedules/, channels/ and compliance rules (and templates/company.yaml, "
    "REPLY_PAUSE_DAYS, DEFAULT_REGION and the providers in use)"
)
SHORT = 12  # characters of a digest shown to people


def config_digest(settings: Settings) -> str:
    """SHA-256 (hex) of the configuration that decides contacts, as ``settings`` find it."""
    rules = settings.compliance_rules_file
    document = {
        "schedules": _folder(settings.schedules_dir, CADENCE_SUFFIXES),
        "channels": _folder(settings.channels_dir, (".yaml",)),
        "company": _file(settings.templates_dir / "company.yaml"),
        "compliance_rules": _file(rules) if rules is not None else None,
        "settings": {
            # Replies and pauses hold messages for this many days (housekeeping, dispatch).
            "reply_pause_days": settings.reply_pause_days,
            # Numbers without a country code are read in this region when planning.
            "default_region": settings.default_region,
            # The outbox on one machine and Twilio on another: half the messages never leave.
            "providers": settings.effective_providers(),
        },
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _folder(folder: Path, suffixes: Collection[str]) -> dict[str, str | None]:
    """Each file's digest by name; nothing for a missing folder (the daemon reads none)."""
    if not folder.is_dir():
        return {}
    return {
        path.name: _file(path)
        for path in sorted(folder.iterdir())
        if path.suffix in suffixes and path.is_file()
    }


def _file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
    except OSError as exc:  # the daemon could not read it either: its own failure says so
        return f"unreadable: {exc.strerror}"

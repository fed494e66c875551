"""What every command shares: the settings, the engine, the consoles."""

from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from outreach.cadence import cadence_names
from outreach.clock import Clock
from outreach.compliance.rules import load_ruleset
from outreach.config import Settings, mask_url
from outreach.db import current_known_revision, head_revision, make_engine
from outreach.errors import ConfigError
from outreach.importing.account_rows import ImportDefaults
from outreach.importing.fields import FIRST_YEAR, LAST_YEAR


def _console(*, stderr: bool = False) -> Console:
    # Written to a pipe or a log (journald), rich would fit tables into 80 columns and cut
    # their cells short: wide enough there that nothing is cut, unless COLUMNS says.
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or "COLUMNS" in os.environ else 200
    # What is printed is mostly data (names, addresses, replies, template text, file names),
    # which rich would read as markup: "Acme [/] Ltd" fails, "Ann [red]Smith" loses words.
    # So nothing is markup, table cells included, unless a print says markup=True, and then
    # the data in it goes through rich.markup.escape.
    return Console(stderr=stderr, width=width, markup=False)


out = _console()
err = _console(stderr=True)


@dataclass
class Context:
    settings: Settings
    clock: Clock
    _engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.settings)
        return self._engine


def context_of(ctx: typer.Context) -> Context:
    obj = ctx.find_root().obj
    assert isinstance(obj, Context)
    return obj


def ensure_schema(context: Context) -> None:
    missing = _missing_sqlite_file(context.settings.database_url)
    if missing is not None:
        # Refused before connecting, which would leave an empty file behind.
        raise ConfigError(
            f"there is no database at {missing}: run 'outreach init' to create it, or set "
            "DATABASE_URL to the one you use"
        )
    where = mask_url(context.settings.database_url)
    if current_known_revision(context.engine, where) != head_revision():
        raise ConfigError(
            f"the database at {where} is not initialized or is out of date: run 'outreach init'"
        )


def _missing_sqlite_file(database_url: str) -> str | None:
    """The path of a SQLite database file that does not exist, or None."""
    if not database_url.startswith("sqlite"):
        return None
    try:
        url = make_url(database_url)
    except ValueError:  # said by make_engine, with the remedy
        return None
    if url.query.get("uri"):
        return None
    if not url.database or url.database == ":memory:":
        return None
    path = Path(url.database)
    return None if path.exists() else str(path)


def with_database(ctx: typer.Context) -> Context:
    """The context of a command that reads or writes the database (refused if not migrated)."""
    context = context_of(ctx)
    ensure_schema(context)
    return context


def refuse_out_of_range(value: datetime, option: str, shown: str) -> None:
    """Refuse an instant outside the years an import accepts: near year 1 or 9999 its move
    to UTC, or a window counted from it, overflows, and no debt's dates are there (a typo).
    The year is the one written, before any move to UTC (which overflows there too)."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ConfigError(f"{option} {shown!r} is out of range (years {FIRST_YEAR} to {LAST_YEAR})")


def system_user() -> str:
    """This system's user name, recorded as who did something; "unknown" where the uid has
    no name (a container's numeric uid), which ``getpass.getuser`` answers with an error."""
    try:
        return getpass.getuser()
    except Exception:  # KeyError from pwd; OSError on Python 3.13 and later
        return "unknown"


def import_defaults(context: Context, source: str) -> ImportDefaults:
    settings = context.settings
    return ImportDefaults(
        region=settings.default_region,
        locale=settings.default_locale,
        currency=settings.default_currency,
        cadence=settings.default_cadence,
        collector_type=settings.default_collector_type,
        consent_source=f"import {source}"[:200],
        consent_at=context.clock.now(),
        known_cadences=cadence_names(settings.schedules_dir),
        region_zones=load_ruleset(settings.compliance_rules_file).region_zones,
    )

"""The daemons sharing the database, as each registered itself (``outreach.daemon_registry``).

Each daemon plans with the cadences, channels and compliance rules of its own machine's
files; the registry lets it, and the operator (``outreach daemons``), see when two daemons
plan with different ones.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from outreach.models.base import short, when


class DaemonInstance(SQLModel, table=True):
    """A running ``outreach run``: registered at its start, seen at each housekeeping tick,
    deleted at a clean stop, or by another daemon's housekeeping once it is not seen."""

    __tablename__ = "daemon_instance"
    __table_args__ = (UniqueConstraint("worker"),)

    id: int | None = Field(default=None, primary_key=True)
    worker: str = short(64)  # the daemon's name, as in the leases' acquired_by
    host: str = short(255)
    pid: int
    started_at: datetime = when()
    seen_at: datetime = when()  # on the daemon's own clock
    config_digest: str = short(64)  # sha256 hex of what decides contacts (config_digest.py)
    version: str = short(64)  # outreach's
    # Where ``pid`` names this daemon's process, and when that process started (Linux;
    # outreach.process_identity): a row whose process has ended is removed at once by a
    # daemon in the same namespace, not ten minutes later.
    pid_namespace: str | None = short(128, nullable=True, default=None)
    process_start: int | None = Field(default=None, sa_column=Column(BigInteger(), nullable=True))


class CadenceVersion(SQLModel, table=True):
    """Each cadence's steps as a daemon last started with them (``outreach.cadence_changes``):
    when they change, the accounts the cadence had finished with are looked at again."""

    __tablename__ = "cadence_version"

    name: str = Field(sa_type=String(64), primary_key=True)  # the file's stem
    digest: str = short(64)  # sha256 hex of the steps, stop conditions and hand-off
    seen_at: datetime = when()

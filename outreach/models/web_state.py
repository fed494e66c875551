"""What the web app keeps between requests: failed sign-ins and rendered previews.

In the database rather than in a process's memory, so that every web process (several
machines on one PostgreSQL) sees the same and a restart forgets nothing. Rows past their
time are deleted as new ones are written (``outreach.web.throttle``,
``outreach.web.html_previews``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from outreach.models.base import reference_to, short, text, when


class SignInState(StrEnum):
    PENDING = "pending"  # its password is being checked
    FAILED = "failed"


class SignInAttempt(SQLModel, table=True):
    """A failed sign-in, or one whose password is being checked, for a name, from a client
    address: both kept as SHA-256 hashes (anything may be typed as a name), not as typed."""

    __tablename__ = "sign_in_attempt"
    __table_args__ = (
        Index("ix_sign_in_attempt_name_key_at", "name_key", "at"),
        Index("ix_sign_in_attempt_address_key_at", "address_key", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name_key: str = short(64)  # sha256 of the name as typed, trimmed and lower-cased
    # sha256 of the client's address; None for attempts recorded before addresses were.
    address_key: str | None = short(64, nullable=True, default=None)
    state: str = short(8)
    at: datetime = when(index=True)  # reserved, then failed


class HtmlPreview(SQLModel, table=True):
    """An email's HTML rendered by the template editor, for its preview frame: served to
    the user who rendered it, for a while."""

    __tablename__ = "html_preview"
    __table_args__ = (UniqueConstraint("token"),)

    id: int | None = Field(default=None, primary_key=True)  # the newest last, per user
    token: str = short(32)
    user_id: int = reference_to("user")
    created_at: datetime = when(index=True)
    html: str = text()

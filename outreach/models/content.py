"""Message templates as published, and the people who use the web UI."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlalchemy import text as sql_text
from sqlmodel import Field, SQLModel

from outreach.models.base import short, text, when


class TemplateStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"  # the one version in use for its (channel, name, tone, locale)
    RETIRED = "retired"


class TemplateVersion(SQLModel, table=True):
    """One saved version of a template; attempts record the version they used."""

    __tablename__ = "template_version"
    __table_args__ = (
        UniqueConstraint("channel", "name", "tone", "locale", "version"),
        Index("ix_template_version_lookup", "channel", "name", "tone", "locale", "status"),
        # One published version per template, whatever a racing publish does.
        Index(
            "ux_template_version_published",
            "channel",
            "name",
            "tone",
            "locale",
            unique=True,
            sqlite_where=sql_text("status = 'published'"),
            postgresql_where=sql_text("status = 'published'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str = short(16)  # sms, email, voice, or _partials
    name: str = short(100)
    tone: str = short(16)
    locale: str = short(16, default="")  # "" is the default-language variant
    version: int
    content: str = text()
    content_hash: str = short(64)
    status: str = short(16, default=TemplateStatus.DRAFT)
    author: str = short(100)
    created_at: datetime = when()
    published_at: datetime | None = when(nullable=True)


class Role(StrEnum):
    ADMIN = "admin"  # everything, including users and settings
    MARKETER = "marketer"  # templates and cadences
    AGENT = "agent"  # the inbox, promises, disputes, contact at work, pauses
    VIEWER = "viewer"  # read-only


class User(SQLModel, table=True):
    __tablename__ = "user"
    __table_args__ = (UniqueConstraint("username"),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = short(100)
    display_name: str = short(200)
    password_hash: str = short(200)
    role: str = short(16)
    active: bool = True
    # Raised whenever the user's sessions must end (disabled, enabled, a new role or
    # password, signed out): a session cookie carries the value it was made under.
    session_epoch: int = 0
    created_at: datetime = when()
    last_login_at: datetime | None = when(nullable=True)

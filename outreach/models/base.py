"""Shared pieces of the table definitions."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, String, Text
from sqlmodel import Field, SQLModel

from outreach.db_types import JSONDocument, UTCDateTime

# Stable constraint names, so that migrations can address them on every backend
# (SQLite's batch mode needs names to drop or alter a constraint).
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    VOICE = "voice"


def when(*, nullable: bool = False, index: bool = False) -> Any:
    """An aware UTC timestamp column."""
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def text(*, nullable: bool = False) -> Any:
    return Field(sa_column=Column(Text(), nullable=nullable))


def short(length: int, *, nullable: bool = False, index: bool = False, default: Any = ...) -> Any:
    return Field(default=default, sa_type=String(length), nullable=nullable, index=index)


def money() -> Any:
    """An amount in the currency's minor units (cents): never a float."""
    return Field(sa_column=Column(BigInteger(), nullable=False))


def document(*, nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(JSONDocument, nullable=nullable))


def reference_to(table: str, *, nullable: bool = False, index: bool = True) -> Any:
    return Field(
        default=None,
        sa_column=Column(Integer(), ForeignKey(f"{table}.id"), nullable=nullable, index=index),
    )

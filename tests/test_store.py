"""Shared queries: ``among`` picks the rows ``in_`` picks, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, insert, select

from outreach.store import accounts, among, suppressions
from tests.test_bulk import _account

NOW = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize("wanted", [[], [3], [1, 3, 3, 5000], list(range(2, 1502, 2))])
def test_among_picks_the_ids_in_picks(engine: Engine, wanted: list[int]) -> None:
    # 1,500 values: more than SQLite's old limit of 999 bound parameters a statement.
    with engine.begin() as connection:
        connection.execute(insert(accounts), [_account(f"A-{i}") for i in range(1, 1501)])
        ids = list(connection.execute(select(accounts.c.id).order_by(accounts.c.id)).scalars())
        chosen = [ids[i - 1] if i <= len(ids) else 10**9 for i in wanted]
        query = select(accounts.c.reference).order_by(accounts.c.id)
        expected = list(connection.execute(query.where(accounts.c.id.in_(chosen))).scalars())
        found = list(connection.execute(query.where(among(connection, accounts.c.id, chosen))))
    assert [row.reference for row in found] == expected
    assert len(expected) == len({i for i in wanted if i <= 1500})


def test_among_compares_text_exactly(engine: Engine) -> None:
    addresses = ["+12125550101", "pat@example.com", "Pat@Example.com", "o'brien@example.com"]
    with engine.begin() as connection:
        connection.execute(
            insert(suppressions),
            [{"channel": "email" if "@" in a else "sms", "address": a, "reason": "stop",
              "source": "test", "created_at": NOW} for a in addresses],
        )  # fmt: skip
        wanted = ["pat@example.com", "o'brien@example.com", "+12125550101", "nobody@example.com"]
        found = connection.execute(
            select(suppressions.c.address).where(among(connection, suppressions.c.address, wanted))
        ).scalars()
        assert sorted(found) == sorted(wanted[:3])


def test_among_refuses_values_of_another_type(engine: Engine) -> None:
    # Bound without the column type's processing: '12' would never match the id 12.
    with engine.connect() as connection, pytest.raises(TypeError, match="int"):
        among(connection, accounts.c.id, [1, "12"])

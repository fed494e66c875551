"""How the database means to run a statement: its plan, and the statements a block runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.sql import ClauseElement


def plan_of(engine: Engine, statement: str | ClauseElement, parameters: Any = None) -> str:
    """The plan of ``statement`` on ``engine``'s database: SQL as the driver ran it (with
    its ``parameters``), or a SQLAlchemy query (its values written in). On PostgreSQL with
    sequential scans off, since a test's small tables would scan."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            explain = "EXPLAIN QUERY PLAN "
        else:
            connection.execute(text("SET enable_seqscan = off"))
            explain = "EXPLAIN "
        if isinstance(statement, ClauseElement):
            compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
            rows = connection.execute(text(explain + str(compiled))).all()
        else:
            rows = connection.exec_driver_sql(explain + statement, parameters).all()
    return " | ".join(str(row[-1]) for row in rows)


@contextmanager
def statements_run(engine: Engine, about: str = "") -> Iterator[list[tuple[str, Any]]]:
    """The statements (with their parameters) run on ``engine`` in the block that contain
    ``about``; savepoints and rollbacks left out."""
    seen: list[tuple[str, Any]] = []

    def keep(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if about in statement and not statement.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", keep)

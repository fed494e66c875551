"""One statement over many rows, with the rows' parameters prepared in one tight pass.

SQLAlchemy's executemany builds every row's parameters through its general machinery,
which cost the planner more than SQLite spent writing (about 3 us a row before the type
processors ran). On SQLite, whose driver takes positional parameters, a ``BulkStatement``
is compiled once per set of row keys; each row becomes a tuple through the very bind
processors SQLAlchemy would apply, with the statement's own constants and the columns'
scalar defaults filled in (by a function generated for the statement's columns), and
the driver runs them. What cannot be prepared exactly that way (another dialect, a
callable default, an expanding ``IN``) goes through SQLAlchemy's executemany, so the rows
written are the same either way; a test holds them equal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase

Prepare = Callable[[Mapping[str, Any]], tuple[Any, ...]]


@dataclass(frozen=True)
class PreparedRows:
    """A statement with its rows' parameters made ready, to run in a transaction later:
    a batch prepares all its writes before it takes SQLite's one writer lock, and so
    holds it for less time."""

    statement: UpdateBase
    sql: str | None  # the driver's SQL, None where SQLAlchemy executes the rows itself
    parameters: list[Any]

    def run(self, connection: Connection) -> None:
        if not self.parameters:
            return
        if self.sql is None:
            connection.execute(self.statement, self.parameters)
        else:
            connection.exec_driver_sql(self.sql, self.parameters)


class BulkStatement:
    """A statement executed over batches of rows; build it once, at import time, from a
    function of the dialect's name (an "insert or ignore" is spelt differently on each)."""

    def __init__(self, build: Callable[[str], UpdateBase]) -> None:
        self.build = build
        self._statements: dict[str, UpdateBase] = {}
        self._plans: dict[tuple[str, tuple[str, ...]], tuple[str, Prepare] | None] = {}

    def execute(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per row; every row has the same keys."""
        self.prepare(connection.dialect, rows).run(connection)

    def prepare(self, dialect: Dialect, rows: Sequence[Mapping[str, Any]]) -> PreparedRows:
        """The rows' parameters for ``dialect``, ready to run; every row has the same keys."""
        statement = self._statements.get(dialect.name)
        if statement is None:
            statement = self._statements[dialect.name] = self.build(dialect.name)
        if not rows:
            return PreparedRows(statement, None, [])
        keys = tuple(rows[0])
        if (dialect.name, keys) not in self._plans:
            self._plans[(dialect.name, keys)] = _compile(statement, dialect, keys)
        plan = self._plans[(dialect.name, keys)]
        if plan is None:
            return PreparedRows(statement, None, list(rows))
        sql, prepare = plan
        return PreparedRows(statement, sql, [prepare(row) for row in rows])


def _compile(
    statement: UpdateBase, dialect: Dialect, keys: tuple[str, ...]
) -> tuple[str, Prepare] | None:
    if dialect.name != "sqlite":
        return None
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    if not isinstance(compiled, SQLCompiler) or not compiled.positional:
        return None
    if compiled.positiontup is None or compiled.literal_execute_params:
        return None
    if compiled.post_compile_params:
        return None
    defaults: dict[str, Any] = {}
    for column in [*compiled.insert_prefetch, *compiled.update_prefetch]:
        if column.key in keys:
            continue
        default = column.default if column in compiled.insert_prefetch else column.onupdate
        if default is None or not getattr(default, "is_scalar", False):
            return None  # a callable default is SQLAlchemy's to run, row by row
        defaults[column.key] = default.arg  # type: ignore[attr-defined]
    # Each row becomes a tuple through one generated expression (as dataclasses and attrs
    # generate their __init__): the constants and processors are bound by name, and the
    # row's keys appear only as quoted literals.
    namespace: dict[str, Any] = {}
    items: list[str] = []
    for index, name in enumerate(compiled.positiontup):
        bind = compiled.binds[name]
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if name in keys:
            value = f"row[{name!r}]"
            if processor is not None:
                namespace[f"p{index}"] = processor
                value = f"p{index}({value})"
            items.append(value)
            continue
        if name in defaults:
            constant = defaults[name]
        elif not bind.required and bind.callable is None:
            constant = bind.effective_value
        else:
            return None
        namespace[f"c{index}"] = processor(constant) if processor is not None else constant
        items.append(f"c{index}")
    values = f"({', '.join(items)},)" if items else "()"
    source = f"def prepare(row):\n    return {values}\n"
    exec(source, namespace)  # noqa: S102 - the source holds only names and quoted keys
    prepare: Prepare = namespace["prepare"]
    return compiled.string, prepare

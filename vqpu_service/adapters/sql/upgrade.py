"""Additive upgrades of an existing database, the same on SQLite and PostgreSQL.

`create_all` creates the tables a database lacks but never alters one it has, so a column or index a
later release adds to a table would be missing from every database created before it. This adds them
(an index with `IF NOT EXISTS` on both databases; building one on a large table delays that start). Only
a nullable column without a default can be added this way: the rows that predate it read NULL, which
the domain reads as "not recorded". Anything else needs a real migration, and starting fails loudly.
Safe when several server processes start on one database at once: PostgreSQL adds with
`IF NOT EXISTS`; on SQLite a column another process added first is taken as done.
"""

from __future__ import annotations

import logging

from sqlalchemy import Column, Engine, MetaData, Table, inspect
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.schema import CreateIndex

log = logging.getLogger(__name__)


def add_missing_columns(engine: Engine, metadata: MetaData) -> list[str]:
    """Add to each existing table the columns `metadata` declares and it lacks; returns `table.column`s added."""
    inspector = inspect(engine)
    added = []
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                _add(engine, table, column)
                added.append(f"{table.name}.{column.name}")
    if added:
        log.warning("upgraded the database schema: added %s", ", ".join(added))
    return added


def _add(engine: Engine, table: Table, column: Column[object]) -> None:
    if not column.nullable or column.primary_key or column.server_default is not None or column.default is not None:
        raise RuntimeError(
            f"the database's {table.name} table lacks column {column.name}, which cannot be added in place "
            "(it is not a nullable column without a default): this upgrade needs a migration"
        )
    quote = engine.dialect.identifier_preparer.quote
    sqlite = engine.dialect.name == "sqlite"
    ddl = column.type.compile(dialect=engine.dialect)
    exists = "" if sqlite else "IF NOT EXISTS "
    statement = f"ALTER TABLE {quote(table.name)} ADD COLUMN {exists}{quote(column.name)} {ddl}"
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)
    except OperationalError as exc:
        if not (sqlite and "duplicate column name" in str(exc.orig)):
            raise


def add_missing_indexes(engine: Engine, metadata: MetaData) -> list[str]:
    """Create on each existing table the named indexes `metadata` declares and it lacks; returns their names."""
    inspector = inspect(engine)
    added = []
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {i["name"] for i in inspector.get_indexes(table.name)}
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            if index.name is None or index.name in present:
                continue
            try:
                with engine.begin() as conn:
                    conn.execute(CreateIndex(index, if_not_exists=True))
            except (IntegrityError, OperationalError, ProgrammingError):  # did a process starting beside this one?
                if index.name not in {i["name"] for i in inspect(engine).get_indexes(table.name)}:
                    raise
            added.append(str(index.name))
    if added:
        log.warning("upgraded the database schema: added indexes %s", ", ".join(added))
    return added

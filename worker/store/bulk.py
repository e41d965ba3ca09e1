"""Bulk writes for delivery bookkeeping: many rows, each with its own values, in one
statement (PostgreSQL: `UPDATE … FROM unnest(…)`; elsewhere an executemany)."""

from __future__ import annotations

import json
import re
from datetime import datetime

import sqlalchemy.exc
from sqlalchemy import JSON, TypeDecorator, bindparam, insert, text, update

from worker.store.db import Store
from worker.store.models import AttemptRow

_BULK_SQL: dict[tuple, object] = {}


def _pg_arrays(conn, table, columns: list[str], rows: list[dict]) -> dict[str, list]:
    """Column-wise parameter arrays, converted as the column types would convert them."""
    params = {}
    for c in columns:
        col_type = table.c[c].type
        if isinstance(col_type, JSON):
            params[c] = [None if r[c] is None else json.dumps(r[c]) for r in rows]
        elif isinstance(col_type, TypeDecorator):
            params[c] = [col_type.process_bind_param(r[c], conn.dialect) for r in rows]
        else:
            params[c] = [r[c] for r in rows]
    return params


def bulk_update(s, model, rows: list[dict]) -> None:
    """Update many rows by primary key, each with its own values, in one statement.

    On PostgreSQL: `UPDATE … FROM unnest(<one array per column>)`: one statement of fixed
    text whatever the number of rows (prepared once, cheap to run and to send). Elsewhere,
    an executemany."""
    if not rows:
        return
    table = model.__table__
    columns = [k for k in rows[0] if k != "id"]
    conn = s.connection()
    if conn.dialect.name != "postgresql":
        stmt = (update(table).where(table.c.id == bindparam("_id"))
                .values({c: bindparam(c) for c in columns}))
        conn.execute(stmt, [{"_id": r["id"], **{c: r[c] for c in columns}} for r in rows])
        return
    key = ("update", table.name, tuple(columns))
    stmt = _BULK_SQL.get(key)
    if stmt is None:
        quote = conn.dialect.identifier_preparer.quote
        names = ["id", *columns]
        arrays = ", ".join(f"CAST(:{c} AS {table.c[c].type.compile(conn.dialect)}[])" for c in names)
        stmt = _BULK_SQL[key] = text(
            f"UPDATE {quote(table.name)} SET " + ", ".join(f"{quote(c)} = v.{quote(c)}" for c in columns)
            + f" FROM unnest({arrays}) AS v({', '.join(quote(c) for c in names)})"
            + f" WHERE {quote(table.name)}.id = v.id")
    conn.execute(stmt, _pg_arrays(conn, table, ["id", *columns], rows))


def bulk_insert(conn, table, rows: list[dict], returning_ids: bool = False) -> list[int]:
    """Insert many rows (each dict with the same keys); with `returning_ids`, their new ids,
    in the order of `rows`.

    On PostgreSQL the rows go as one `COPY … FROM STDIN` (psycopg formats them in C); on
    SQLite as one driver `executemany` of a one-row INSERT (sqlite3 loops in C). Both cost
    far less than SQLAlchemy's bulk insert here: on PostgreSQL a multi-row VALUES of
    thousands of placeholders, a new text each time, which psycopg parses with regular
    expressions (and a pipelined executemany still dumps each row in Python); on SQLite,
    with ordered RETURNING, one statement per row. The ids are reserved first when the
    caller needs them: PostgreSQL takes them from the table's sequence (one query); SQLite
    inserts the first row alone, which takes the database's write lock for the rest of the
    transaction, and numbers the others after it (no other writer can insert until the
    commit). A row the database refuses raises SQLAlchemy's error, as `execute` would."""
    if not rows:
        return []
    columns = list(rows[0])
    if not returning_ids or "id" in columns:
        _send(conn, table, columns, rows)
        return [r["id"] for r in rows] if returning_ids else []
    if conn.dialect.name == "postgresql":
        ids = list(conn.execute(text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                                     "FROM generate_series(1, :n) AS g ORDER BY g"),
                                {"table": table.name, "n": len(rows)}).scalars())
        _send(conn, table, ["id", *columns], rows, ids)
        return ids
    sql, processors = _insert_sql(conn, table, ["id", *columns])
    first = conn.exec_driver_sql(sql, _bind_values(rows[:1], processors, [None])[0]).lastrowid
    ids = list(range(first, first + len(rows)))
    if len(rows) > 1:
        _send(conn, table, ["id", *columns], rows[1:], ids[1:])
    return ids


def _send(conn, table, columns: list[str], rows: list[dict], ids: list[int] | None = None) -> None:
    sql, processors = _insert_sql(conn, table, columns)
    values = _bind_values(rows, processors, ids)
    if conn.dialect.name != "postgresql":
        conn.exec_driver_sql(sql, values)
        return
    quote = conn.dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(quote(c) for c, _ in processors)}) FROM STDIN"
    dbapi_error = conn.dialect.loaded_dbapi.Error
    cursor = conn.connection.cursor()
    try:
        with cursor.copy(statement) as copy:
            for row in values:
                copy.write_row(row)
    except dbapi_error as exc:
        # As `execute` would raise it (DataError, IntegrityError…): callers tell a refused
        # article from an unreachable store by SQLAlchemy's classes.
        raise sqlalchemy.exc.DBAPIError.instance(statement, None, exc, dbapi_error, dialect=conn.dialect) from exc
    finally:
        cursor.close()


_PYFORMAT = re.compile(r"%\((\w+)\)s")


def _insert_sql(conn, table, columns: list[str]) -> tuple[str, list]:
    """`INSERT INTO table (columns…) VALUES (…)` with positional parameters, and the
    (column, bind processor) of each parameter in order; made once per table and columns."""
    key = ("insert", conn.dialect.name, table.name, tuple(columns))
    made = _BULK_SQL.get(key)
    if made is None:
        compiled = insert(table).values({c: bindparam(c) for c in columns}).compile(dialect=conn.dialect)
        if compiled.positional:  # sqlite3: qmark
            sql, order = compiled.string, list(compiled.positiontup)
        else:  # psycopg: %(name)s, made %s so that rows can go as tuples
            order = _PYFORMAT.findall(compiled.string)
            sql = _PYFORMAT.sub("%s", compiled.string)
        if sorted(order) != sorted(columns):
            raise RuntimeError(f"unexpected parameters {order} for {table.name}")
        made = _BULK_SQL[key] = (sql, [(c, table.c[c].type._cached_bind_processor(conn.dialect)) for c in order])
    return made


def _bind_values(rows: list[dict], processors: list, ids: list | None = None) -> list[tuple]:
    """Each row's values as the driver takes them, in parameter order (`ids`, when given,
    fill the id column). A batch repeats the same timestamp in thousands of cells: each
    distinct datetime is converted once."""
    columns = []
    for name, process in processors:
        cells = ids if ids is not None and name == "id" else [r[name] for r in rows]
        if process is not None:
            seen: dict = {}
            out = []
            for v in cells:
                if v is None:
                    out.append(None)
                elif type(v) is datetime:
                    p = seen.get(v)
                    if p is None:
                        p = seen[v] = process(v)
                    out.append(p)
                else:
                    out.append(process(v))
            cells = out
        columns.append(cells)
    return list(zip(*columns))


def insert_attempts(s, delivery_ids: list[int], started_at: datetime, worker: str | None = None) -> dict[int, int]:
    """An attempt row per delivery, written before the request; returns delivery id → attempt id."""
    conn = s.connection()
    if conn.dialect.name == "postgresql":
        table = AttemptRow.__table__
        stmt = _BULK_SQL.get(("insert", "attempts"))
        if stmt is None:
            stmt = _BULK_SQL[("insert", "attempts")] = text(
                "INSERT INTO attempts (delivery_id, started_at, worker) "
                "SELECT d, CAST(:started_at AS TIMESTAMP WITHOUT TIME ZONE), :worker "
                "FROM unnest(CAST(:ids AS INTEGER[])) AS d "
                "RETURNING id, delivery_id")
        started = table.c.started_at.type.process_bind_param(started_at, conn.dialect)
        return {r.delivery_id: r.id for r in conn.execute(stmt, {"ids": delivery_ids, "started_at": started,
                                                                        "worker": worker})}
    rows = conn.execute(insert(AttemptRow).returning(AttemptRow.id, AttemptRow.delivery_id,
                                                     sort_by_parameter_order=True),
                        [{"delivery_id": i, "started_at": started_at, "worker": worker} for i in delivery_ids]).all()
    return {r.delivery_id: r.id for r in rows}


def bookkeeping_store(store: Store) -> Store:
    """On PostgreSQL, delivery bookkeeping commits without waiting for the WAL flush.

    Safe here because delivery is at-least-once under a stable webhook-id: if the database
    server itself crashed and lost the last moments of these commits, a claimed row would be
    claimed again and a delivered one sent again under the same id, which partners drop as a
    duplicate. Articles, events and delivery rows are created elsewhere, durably."""
    if store.is_sqlite:
        return store
    from sqlalchemy import event

    relaxed = Store(store.url)

    @event.listens_for(relaxed.engine, "connect")
    def _no_flush_wait(dbapi_conn, _record):
        with dbapi_conn.cursor() as cur:
            cur.execute("SET synchronous_commit TO OFF")
        dbapi_conn.commit()

    return relaxed

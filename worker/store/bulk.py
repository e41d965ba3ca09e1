"""Bulk writes for delivery bookkeeping: many rows, each with its own values, in one
statement (PostgreSQL: `UPDATE … FROM unnest(…)`; elsewhere an executemany)."""

from __future__ import annotations

import json
from datetime import datetime

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

    On PostgreSQL: the ids are taken from the table's sequence first (one query, ascending),
    then the rows go as one driver executemany of a one-row INSERT (psycopg pipelines it: one
    parsed statement, no round trip per row). SQLAlchemy's default there, a multi-row VALUES
    of thousands of placeholders, is a new statement text each time that psycopg parses with
    regular expressions: most of the cost for a batch of articles. Elsewhere, SQLAlchemy's
    insert with ordered RETURNING."""
    if not rows:
        return []
    if conn.dialect.name != "postgresql":
        stmt = insert(table)
        if not returning_ids:
            conn.execute(stmt, rows)
            return []
        return list(conn.execute(stmt.returning(table.c.id, sort_by_parameter_order=True), rows).scalars())
    ids: list[int] = []
    if returning_ids:
        ids = list(conn.execute(text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                                     "FROM generate_series(1, :n) AS g ORDER BY g"),
                                {"table": table.name, "n": len(rows)}).scalars())
        rows = [dict(row, id=i) for row, i in zip(rows, ids)]
    columns = list(rows[0])
    key = ("insert", table.name, tuple(columns))
    compiled = _BULK_SQL.get(key)
    if compiled is None:
        stmt = insert(table).values({c: bindparam(c) for c in columns})
        compiled = stmt.compile(dialect=conn.dialect)
        processors = {c: table.c[c].type._cached_bind_processor(conn.dialect) for c in columns}
        compiled = _BULK_SQL[key] = (compiled.string, [(c, processors[c]) for c in columns])
    sql, processors = compiled
    conn.exec_driver_sql(sql, [{c: (p(r[c]) if p is not None else r[c]) for c, p in processors} for r in rows])
    return ids


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

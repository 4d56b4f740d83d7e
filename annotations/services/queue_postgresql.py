"""The queue's claim on PostgreSQL: sweep stale locks and claim an item in one round trip.

Same rules as the portable path in ``queue`` (which SQLite uses); the statement is documented in
``_claim_sql``. Called only through ``queue.assignment_claim``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import DataError, IntegrityError, OperationalError, connection, transaction

from annotations.metrics import CLAIMS
from annotations.models import Assignment, Item, Project
from annotations.services.access import require_role
from core.errors import PermissionDenied

CLAIM_ATTEMPTS = 8  # races lost in a row before a claim gives up and reports an empty pool
RETRYABLE_SQLSTATES = ("40P01", "40001")  # deadlock detected, serialization failure

_ASSIGNMENT_COLS = (
    "id", "public_id", "project_id", "item_id", "annotator_id", "state", "is_gold",
    "display_order", "expires_at", "created", "finished_at",
)  # fmt: skip


@functools.cache
def _claim_sql(*, with_gold: bool) -> str:
    """Sweep stale locks, then claim, as two statements sent in one simple query.

    Sent together they run in one implicit transaction (one round trip, atomic: an error in the
    claim rolls the sweep back too). The claim statement:

    - ``me``: is the user an annotator (directly or through a group)? Checked in the same
      statement, so a revoked annotator is refused on the next claim, with no extra query;
    - ``own``: their oldest unexpired assignment, returned as is;
    - ``hist``/``gold_pick`` (only when the project has a gold rate): a gold item they have not
      done, when gold is due by their own history (no lock: gold items have no overlap cap);
    - ``pick``: else the non-gold item closest to completion with room that they have not done or
      held, ``FOR UPDATE SKIP LOCKED`` (a row another claimer holds is skipped, not waited on;
      PostgreSQL re-checks ``taken < overlap`` on the latest row version before locking it);
    - ``bump``: the conditional ``taken = taken + 1`` on that locked row;
    - ``ins``: the assignment, or the revival of their own expired one (same row: the unique
      (item, annotator) constraint). Should it insert nothing after ``bump`` took a place (a
      race with the same annotator), the last column casts text to int: the statement fails,
      everything rolls back and the caller retries. Nothing is ever half-claimed.
    """
    A = Assignment._meta.db_table
    item = Item._meta.db_table
    pa = Project.annotators.through._meta
    pg = Project.annotator_groups.through._meta
    ug = get_user_model().groups.through._meta

    def col(meta: Any, name: str) -> str:
        return meta.get_field(name).column

    user_field = get_user_model()._meta.model_name
    cols = ", ".join(_ASSIGNMENT_COLS)
    insert_cols = ", ".join(_ASSIGNMENT_COLS[1:])
    a_cols = ", ".join(f"a.{c}" for c in _ASSIGNMENT_COLS)
    sweep = f"""
WITH stale AS (
  SELECT id FROM {A} WHERE project_id = %(p)s AND state = 'active' AND expires_at <= %(now)s
  ORDER BY id FOR UPDATE SKIP LOCKED
), gone AS (
  UPDATE {A} a SET state = 'expired' FROM stale WHERE a.id = stale.id
  RETURNING a.item_id, a.is_gold
), freed AS (
  SELECT item_id, count(*) AS n FROM gone WHERE NOT is_gold GROUP BY item_id
)
UPDATE {item} i SET taken = GREATEST(i.taken - freed.n, 0) FROM freed WHERE i.id = freed.item_id"""
    gold_ctes = (
        f"""
), hist AS (
  SELECT count(*) AS total, count(*) FILTER (WHERE is_gold) AS gold FROM {A}
  WHERE project_id = %(p)s AND annotator_id = %(u)s AND state <> 'expired'
), gold_pick AS (
  SELECT i.id FROM {item} i, me, hist
  WHERE me.ok AND NOT EXISTS (SELECT 1 FROM own)
    AND hist.gold < floor(%(rate)s * (hist.total + 1) + 1e-9)
    AND i.project_id = %(p)s AND i.is_gold
    AND NOT EXISTS (SELECT 1 FROM {A} a WHERE a.item_id = i.id AND a.annotator_id = %(u)s
                    AND a.state <> 'expired')
  ORDER BY random() LIMIT 1"""
        if with_gold
        else """
), gold_pick AS (
  SELECT NULL::bigint AS id WHERE false"""
    )
    claim = f"""
WITH me AS (
  SELECT EXISTS (SELECT 1 FROM {pa.db_table} WHERE {col(pa, "project")} = %(p)s
                 AND {col(pa, user_field)} = %(u)s)
      OR EXISTS (SELECT 1 FROM {pg.db_table} pg JOIN {ug.db_table} ug
                 ON ug.{col(ug, "group")} = pg.{col(pg, "group")}
                 WHERE pg.{col(pg, "project")} = %(p)s AND ug.{col(ug, user_field)} = %(u)s) AS ok
), own AS (
  SELECT {a_cols} FROM {A} a, me
  WHERE me.ok AND a.project_id = %(p)s AND a.annotator_id = %(u)s AND a.state = 'active'
    AND a.expires_at > %(now)s
  ORDER BY a.created, a.id LIMIT 1{gold_ctes}
), pick AS (
  SELECT i.id FROM {item} i
  WHERE (SELECT ok FROM me) AND NOT EXISTS (SELECT 1 FROM own)
    AND NOT EXISTS (SELECT 1 FROM gold_pick)
    AND i.project_id = %(p)s AND NOT i.is_gold AND i.taken < %(overlap)s
    AND NOT EXISTS (SELECT 1 FROM {A} a WHERE a.item_id = i.id AND a.annotator_id = %(u)s
                    AND a.state <> 'expired')
  ORDER BY i.taken DESC, i.id LIMIT 1
  FOR UPDATE OF i SKIP LOCKED
), bump AS (
  UPDATE {item} i SET taken = i.taken + 1 FROM pick
  WHERE i.id = pick.id AND i.taken < %(overlap)s RETURNING i.id
), chosen AS (
  SELECT id, true AS gold FROM gold_pick UNION ALL SELECT id, false FROM bump
), ins AS (
  INSERT INTO {A} AS a ({insert_cols})
  SELECT %(uuid)s, %(p)s, chosen.id, %(u)s,
         'active', chosen.gold, %(order)s::jsonb, %(expires)s, %(now)s, NULL
  FROM chosen
  ON CONFLICT ON CONSTRAINT assignment_one_per_item DO UPDATE
    SET state = 'active', expires_at = EXCLUDED.expires_at, created = EXCLUDED.created,
        finished_at = NULL
    WHERE a.state = 'expired'
  RETURNING {a_cols}
), got AS (
  SELECT 'own' AS kind, {cols} FROM own
  UNION ALL SELECT CASE WHEN ins.is_gold THEN 'gold' ELSE 'regular' END, {cols} FROM ins
)
SELECT (SELECT ok FROM me), EXISTS (SELECT 1 FROM chosen) OR EXISTS (SELECT 1 FROM pick),
       CASE WHEN EXISTS (SELECT 1 FROM chosen) AND NOT EXISTS (SELECT 1 FROM ins)
            THEN (SELECT 'claim lost a race: retry' FROM chosen LIMIT 1)::int END,
       got.*
FROM (SELECT 1) AS one LEFT JOIN got ON true"""
    return sweep + ";" + claim


def _client_cursor() -> Any:
    """A client-side-binding cursor: the claim sends several statements in one round trip,
    which a server-side (prepared) statement cannot hold."""
    import psycopg  # only the PostgreSQL backend has it

    connection.ensure_connection()
    # Wrapped like any Django cursor, so query logging, metrics and test capture still apply.
    return connection._prepare_cursor(psycopg.ClientCursor(connection.connection))


def _execute_claim(sql: str, params: dict[str, Any]) -> Sequence[Any] | None:
    """Run the claim and return its one row, or ``None`` when it lost a race worth retrying."""
    in_transaction = connection.in_atomic_block
    try:
        savepoint = transaction.atomic() if in_transaction else contextlib.nullcontext()
        with savepoint, _client_cursor() as cursor:
            cursor.execute(sql, params)
            while cursor.description is None and cursor.nextset():
                pass
            return cursor.fetchone()
    except (IntegrityError, DataError):
        return None  # a race with the same annotator (double click): look again
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", "") in RETRYABLE_SQLSTATES:
            return None  # two sweepers crossed on the same items: PostgreSQL chose one
        raise


def claim_postgresql(project: Project, annotator: Any, now: datetime) -> Assignment | None:
    """``assignment_claim`` in one round trip per attempt; ``None`` when the pool is empty."""
    params = {
        "p": project.pk,
        "u": annotator.pk,
        "now": now,
        "expires": now + timedelta(seconds=project.lock_ttl_seconds),
        "overlap": project.overlap,
        "rate": float(project.gold_rate),
        "uuid": uuid.uuid4(),
        "order": json.dumps(project.new_display_order()),
    }
    # A claim is a lease, not data: had the server crashed before this commit reached disk, the
    # item would simply be free again and the annotator would ask again. Not waiting for the WAL
    # flush roughly doubles throughput; submits stay fully durable. (Only on our own implicit
    # transaction: inside a caller's transaction the setting would outlive the claim.)
    prefix = "" if connection.in_atomic_block else "SET LOCAL synchronous_commit TO OFF;"
    sql = prefix + _claim_sql(with_gold=project.gold_rate > 0)
    for _attempt in range(CLAIM_ATTEMPTS):
        params["uuid"] = uuid.uuid4()
        row = _execute_claim(sql, params)
        if row is None:
            continue
        ok, picked, _guard, kind, *values = row
        if not ok:
            require_role(project, annotator, role="annotator")  # raises the right error
            raise PermissionDenied("You are not an annotator of this project.")
        if kind is not None:
            if kind != "own":
                CLAIMS.labels(kind=kind).inc()
            return _assignment_from_row(values, project)
        if not picked:
            return None  # the pool is empty for this annotator
    return None


def _assignment_from_row(values: list[Any], project: Project) -> Assignment:
    """An ``Assignment`` built from the claim's columns (``_ASSIGNMENT_COLS``), as the ORM would."""
    by_column = {f.column: f for f in Assignment._meta.concrete_fields}
    fields = [by_column[c] for c in _ASSIGNMENT_COLS]
    converted = []
    for f, v in zip(fields, values, strict=True):
        if v is not None and hasattr(f, "from_db_value"):
            v = f.from_db_value(v, None, connection)
        converted.append(v)
    a = Assignment.from_db(connection.alias, [f.attname for f in fields], converted)
    Assignment.project.field.set_cached_value(a, project)
    return a

"""Write operations of the annotation workflow: one function per use case, each transactional."""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import logging
import math
import random
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import DataError, IntegrityError, OperationalError, connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from django.utils.text import slugify

from annotations import quality
from annotations.metrics import ANNOTATIONS, CLAIMS
from annotations.models import (
    MAX_K,
    Annotation,
    Assignment,
    GenerationJob,
    Invitation,
    Item,
    ItemResponse,
    Project,
    label_bounds,
)
from annotations.selectors import forget_roles, roles_for
from arena.models import LLM, Turn
from core.background import enqueue
from core.errors import ApplicationError, Conflict, NotFound, PermissionDenied

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 50_000
MAX_RESPONSE_CHARS = 100_000
MAX_IMPORT_LINES = 20_000
MAX_GENERATION_PROMPTS = 1000


class ImportInvalid(ApplicationError):
    code = "import_invalid"
    status = 400


def _require(project: Project, user: Any, *, role: str) -> None:
    roles = roles_for(project, user)
    if not roles.any:
        raise NotFound("No such project.")
    allowed = {
        "annotator": roles.annotator,
        "reviewer": roles.reviewer or roles.manager,
        "manager": roles.manager,
    }[role]
    if not allowed:
        raise PermissionDenied(f"You are not a {role} of this project.")


# --- invitations ----------------------------------------------------------------------------------


def invitation_accept(*, token: Any, user: Any) -> Project:
    with transaction.atomic():
        inv = (
            Invitation.objects.select_for_update(of=("self",))
            .select_related("project")
            .filter(token=token)
            .first()
        )
        if inv is None:
            raise NotFound("This invitation does not exist.")
        if inv.accepted_by_id and inv.accepted_by_id != user.id:
            raise Conflict("This invitation has already been used.", code="invitation_used")
        (inv.project.reviewers if inv.as_reviewer else inv.project.annotators).add(user)
        forget_roles(user)
        if not inv.accepted_by_id:
            inv.accepted_by = user
            inv.accepted_at = timezone.now()
            inv.save(update_fields=["accepted_by", "accepted_at"])
        return inv.project


# --- import -----------------------------------------------------------------------------------------


@dataclass
class _Row:
    line: int
    prompt: str
    conversation: list[dict[str, str]]
    responses: list[tuple[str, str]]  # (text, model name or slug)
    gold: quality.Ranking | None
    external_id: str
    metadata: dict[str, Any]


def parse_gold(value: Any, k: int) -> quality.Ranking:
    """``[[0], [1, 2]]`` (0-based groups) or ``"1>2=3"`` (1-based, ``=`` is a tie)."""
    if isinstance(value, str):
        try:
            groups = [
                [int(x) - 1 for x in part.split("=")] for part in value.replace(" ", "").split(">")
            ]
        except ValueError:
            raise ValueError("gold must look like '2>1=3' (1-based response numbers)") from None
        value = groups
    return quality.validate_ranking(value, k)


_JSON_KEYS = {"prompt", "conversation", "responses", "gold", "id", "metadata"}


def _row_from_obj(obj: Any, line: int, k: int) -> _Row:
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    unknown = set(obj) - _JSON_KEYS
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("'prompt' is missing or empty")
    conv = obj.get("conversation") or []
    if not isinstance(conv, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in conv
    ):
        raise ValueError("'conversation' must be a list of {role, content} objects")
    raw = obj.get("responses")
    if not isinstance(raw, list):
        raise ValueError("'responses' must be a list")
    responses: list[tuple[str, str]] = []
    for i, r in enumerate(raw):
        if isinstance(r, str):
            text, model = r, ""
        elif isinstance(r, dict) and isinstance(r.get("text"), str):
            text, model = r["text"], str(r.get("model") or "")
        else:
            raise ValueError(f"response {i + 1} must be text or {{text, model}}")
        responses.append((text, model))
    meta = obj.get("metadata") or {}
    if not isinstance(meta, dict):
        raise ValueError("'metadata' must be an object")
    ext = obj.get("id", "")
    if not isinstance(ext, (str, int)) or isinstance(ext, bool):
        raise ValueError("'id' must be text or a number")
    row = _Row(line, prompt, conv, responses, None, str(ext), meta)
    if obj.get("gold") is not None:
        row.gold = parse_gold(obj["gold"], k)
    return row


def _check_row(row: _Row, k: int) -> None:
    if len(row.prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"the prompt is longer than {MAX_PROMPT_CHARS} characters")
    if len(row.responses) != k:
        raise ValueError(f"expected {k} responses, found {len(row.responses)}")
    for i, (text, model) in enumerate(row.responses):
        if not text.strip():
            raise ValueError(f"response {i + 1} is empty")
        if len(text) > MAX_RESPONSE_CHARS:
            raise ValueError(f"response {i + 1} is longer than {MAX_RESPONSE_CHARS} characters")
        if len(model) > 200:
            raise ValueError(f"model name of response {i + 1} is too long")
    if len(row.external_id) > 200:
        raise ValueError("'id' is longer than 200 characters")


def _parse_jsonl(text: str, k: int, errors: list[dict[str, Any]]) -> list[_Row]:
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append({"line": n, "message": f"not valid JSON ({exc.msg})"})
            continue
        try:
            row = _row_from_obj(obj, n, k)
            _check_row(row, k)
            rows.append(row)
        except ValueError as exc:
            errors.append({"line": n, "message": str(exc)})
    return rows


def _parse_csv(text: str, k: int, errors: list[dict[str, Any]]) -> list[_Row]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    needed = ["prompt", *[f"response_{i}" for i in range(1, k + 1)]]
    missing = [c for c in needed if c not in header]
    if missing:
        errors.append({"line": 1, "message": f"missing columns: {', '.join(missing)}"})
        return []
    known = set(needed) | {f"model_{i}" for i in range(1, k + 1)} | {"gold", "id"}
    extra_resp = [c for c in header if c.startswith("response_") and c not in known]
    rows = []
    for rec in reader:
        n = reader.line_num
        try:
            if None in rec or extra_resp and any((rec.get(c) or "").strip() for c in extra_resp):
                raise ValueError(f"expected {k} responses; this row has more fields")
            obj: dict[str, Any] = {
                "prompt": rec.get("prompt") or "",
                "responses": [
                    {"text": rec.get(f"response_{i}") or "", "model": rec.get(f"model_{i}") or ""}
                    for i in range(1, k + 1)
                ],
                "id": rec.get("id") or "",
                "metadata": {
                    c: v for c, v in rec.items() if c not in known and c not in extra_resp
                },
            }
            if (rec.get("gold") or "").strip():
                obj["gold"] = rec["gold"].strip()
            row = _row_from_obj(obj, n, k)
            _check_row(row, k)
            rows.append(row)
        except ValueError as exc:
            errors.append({"line": n, "message": str(exc)})
    return rows


def items_import(*, project: Project, user: Any, content: bytes | str, fmt: str) -> int:
    """Validate every line, then create all items in one transaction, or none.

    Raises ``ImportInvalid`` whose ``extra["errors"]`` lists ``{"line", "message"}`` per bad line.
    """
    _require(project, user, role="manager")
    if fmt not in {"jsonl", "csv"}:
        raise ImportInvalid("The format must be jsonl or csv.")
    try:
        text = content.decode("utf-8-sig") if isinstance(content, bytes) else content
    except UnicodeDecodeError:
        raise ImportInvalid(
            "The file is not UTF-8 text.", extra={"errors": [{"line": 0, "message": "not UTF-8"}]}
        ) from None
    errors: list[dict[str, Any]] = []
    rows = (_parse_jsonl if fmt == "jsonl" else _parse_csv)(text, project.k, errors)
    if len(rows) + len(errors) > MAX_IMPORT_LINES:
        raise ImportInvalid(f"At most {MAX_IMPORT_LINES} items per upload.")
    seen: dict[str, int] = {}
    existing = set(
        Item.objects.filter(project=project)
        .exclude(external_id="")
        .filter(external_id__in=[r.external_id for r in rows if r.external_id])
        .values_list("external_id", flat=True)
    )
    for row in rows:
        if not row.external_id:
            continue
        if row.external_id in existing:
            errors.append({"line": row.line, "message": f"id {row.external_id!r} already exists"})
        elif row.external_id in seen:
            errors.append(
                {
                    "line": row.line,
                    "message": f"id {row.external_id!r} repeats line {seen[row.external_id]}",
                }
            )
        else:
            seen[row.external_id] = row.line
    if errors:
        errors.sort(key=lambda e: e["line"])
        raise ImportInvalid(
            f"{len(errors)} line(s) are invalid; nothing was imported.", extra={"errors": errors}
        )
    if not rows:
        raise ImportInvalid("The file has no items.", extra={"errors": []})
    return _create_items(project, rows, source=Item.Source.UPLOAD)


def _create_items(project: Project, rows: list[_Row], *, source: str) -> int:
    names = {m for r in rows for _t, m in r.responses if m}
    llms = {
        key: llm
        for llm in LLM.objects.filter(Q(slug__in=names) | Q(display_name__in=names))
        for key in (llm.slug, llm.display_name)
    }
    with transaction.atomic():
        items = Item.objects.bulk_create(
            [
                Item(
                    project=project,
                    external_id=r.external_id,
                    prompt=r.prompt,
                    conversation=r.conversation,
                    metadata=r.metadata,
                    source=source,
                    is_gold=r.gold is not None,
                    gold_ranking=r.gold,
                )
                for r in rows
            ]
        )
        if items and items[0].pk is None:  # backends that don't return ids from bulk_create
            items = list(Item.objects.filter(project=project).order_by("-id")[: len(rows)])[::-1]
        ItemResponse.objects.bulk_create(
            [
                ItemResponse(
                    item=item,
                    index=i,
                    text=text,
                    llm=llms.get(model),
                    source_model=model if model not in llms else "",
                )
                for item, r in zip(items, rows, strict=True)
                for i, (text, model) in enumerate(r.responses)
            ]
        )
    return len(items)


# --- the queue ----------------------------------------------------------------------------------------


def assignments_expire(*, project: Project | None = None, now: Any = None) -> int:
    """Return stale locks to the pool. Safe to run concurrently with claims and submits.

    The conditional ``UPDATE ... WHERE state='active' AND expires_at <= now`` means two sweepers
    (or a sweeper and a late submit) never both win: only the one that changed the row gives the
    item's place back.
    """
    now = now or timezone.now()
    qs = Assignment.objects.stale(now)
    if project is not None:
        qs = qs.filter(project=project)
    n = 0
    for a_id, item_id, is_gold in qs.values_list("id", "item_id", "is_gold")[:1000]:
        with transaction.atomic():
            won = Assignment.objects.filter(
                id=a_id, state=Assignment.State.ACTIVE, expires_at__lte=now
            ).update(state=Assignment.State.EXPIRED)
            if won:
                n += 1
                if not is_gold:
                    Item.objects.filter(id=item_id, taken__gt=0).update(taken=F("taken") - 1)
    return n


def _gold_due(project: Project, annotator: Any) -> bool:
    if project.gold_rate <= 0:
        return False
    counts = (
        Assignment.objects.filter(project=project, annotator=annotator)
        .exclude(state=Assignment.State.EXPIRED)
        .aggregate(total=Count("id"), gold=Count("id", filter=Q(is_gold=True)))
    )
    return counts["gold"] < math.floor(project.gold_rate * (counts["total"] + 1) + 1e-9)


def _require_annotator(project: Project, user: Any) -> None:
    """One query on the hot path (``roles_for`` costs three)."""
    is_annotator = (
        Project.objects.filter(pk=project.pk)
        .filter(Q(annotators=user) | Q(annotator_groups__user=user))
        .exists()
    )
    if not is_annotator:
        _require(project, user, role="annotator")  # raises the right error


def assignment_claim(
    *, project: Project, annotator: Any, now: Any = None, skip_locked: bool = True
) -> Assignment | None:
    """Hand ``annotator`` one item of ``project``, locked to them for the project's TTL.

    Order: their own unexpired assignment; a gold item when one is due at the project's rate;
    otherwise the non-gold item closest to completion (most live assignments) that they have not
    done or held and that has room (``taken < overlap``). ``None`` when nothing is left.

    Races prevented: two annotators choosing the same row (``SELECT ... FOR UPDATE SKIP
    LOCKED`` makes the second one take the next row instead of waiting); an item filling up
    between our read and our write (the conditional ``UPDATE ... SET taken = taken + 1 WHERE
    taken < overlap`` is re-checked on the latest row version, so overlap can't be exceeded);
    a double click by the same annotator (the unique (item, annotator) constraint).
    """
    if not project.active:
        _require(project, annotator, role="annotator")  # outsiders learn nothing, not even this
        raise Conflict("This project is paused.", code="project_paused")
    now = now or timezone.now()
    if connection.vendor == "postgresql" and skip_locked:
        return _claim_postgresql(project, annotator, now)
    # The portable path (SQLite, the embedded default): the same rules in several queries.
    _require_annotator(project, annotator)
    assignments_expire(project=project, now=now)
    own_live: Assignment | None = None
    expired_items: set[int] = set()
    for a in Assignment.objects.filter(project=project, annotator=annotator).filter(
        Q(state=Assignment.State.ACTIVE, expires_at__gt=now) | Q(state=Assignment.State.EXPIRED)
    ):
        if a.state == Assignment.State.EXPIRED:
            expired_items.add(a.item_id)
        elif own_live is None or a.created < own_live.created:
            own_live = a
    if own_live is not None:
        return own_live
    gold_first = _gold_due(project, annotator)
    for gold in (True, False) if gold_first else (False,):
        for _attempt in range(8):
            try:
                result = _claim_one(
                    project, annotator, gold=gold, now=now, skip_locked=skip_locked,
                    expired_items=expired_items,
                )  # fmt: skip
            except IntegrityError:
                # The same annotator claimed concurrently (unique item+annotator): use theirs.
                own = (
                    Assignment.objects.live_active(now)
                    .filter(project=project, annotator=annotator)
                    .first()
                )
                if own is not None:
                    return own
                continue
            if result is None:
                break  # pool empty
            if result is not False:
                CLAIMS.labels(kind="gold" if gold else "regular").inc()
                return result
    return None


def _claim_one(
    project: Project,
    annotator: Any,
    *,
    gold: bool,
    now: Any,
    skip_locked: bool,
    expired_items: set[int],
) -> Assignment | None | bool:
    """One attempt: the claimed assignment, ``None`` if the pool is empty, ``False`` to retry."""
    held_or_done = Assignment.objects.filter(annotator=annotator, project=project).exclude(
        state=Assignment.State.EXPIRED
    )
    postgres = connection.vendor == "postgresql"
    with transaction.atomic():
        if postgres:
            # A claim is a lease, not data: if the server crashed before this commit reached
            # disk, the item would simply be free again and the annotator would ask again. Not
            # waiting for the WAL flush doubles throughput; submits stay fully durable.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        candidates = (
            Item.objects.filter(project=project, is_gold=gold)
            .exclude(id__in=held_or_done.values("item_id"))
            .order_by("-taken", "id")
        )
        if not gold:
            candidates = candidates.filter(taken__lt=project.overlap)
        if connection.features.has_select_for_update_skip_locked and skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        elif connection.features.has_select_for_update:
            candidates = candidates.select_for_update()
        if gold:
            # gold items are shared by everyone: take one at random so annotators differ
            ids = list(candidates.values_list("id", flat=True)[:50])
            item_id = random.choice(ids) if ids else None
        else:
            item_id = next(iter(candidates.values_list("id", flat=True)[:1]), None)
        if item_id is None:
            return None
        if not gold:
            grew = Item.objects.filter(id=item_id, taken__lt=project.overlap).update(
                taken=F("taken") + 1
            )
            if not grew:
                return False
        order = list(range(project.k))
        if project.blind:
            random.shuffle(order)
        expires = now + timedelta(seconds=project.lock_ttl_seconds)
        if item_id in expired_items:
            revived = Assignment.objects.filter(
                item_id=item_id, annotator=annotator, state=Assignment.State.EXPIRED
            ).update(state=Assignment.State.ACTIVE, expires_at=expires, created=now)
            if revived:
                return Assignment.objects.get(item_id=item_id, annotator=annotator)
        return Assignment.objects.create(
            project=project,
            item_id=item_id,
            annotator=annotator,
            is_gold=gold,
            display_order=order,
            expires_at=expires,
            created=now,
        )


# --- the one-round-trip claim on PostgreSQL ------------------------------------------------------------

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
    import psycopg

    connection.ensure_connection()
    # Wrapped like any Django cursor, so query logging, metrics and test capture still apply.
    return connection._prepare_cursor(psycopg.ClientCursor(connection.connection))


def _claim_postgresql(project: Project, annotator: Any, now: Any) -> Assignment | None:
    order = list(range(project.k))
    if project.blind:
        random.shuffle(order)
    params = {
        "p": project.pk,
        "u": annotator.pk,
        "now": now,
        "expires": now + timedelta(seconds=project.lock_ttl_seconds),
        "overlap": project.overlap,
        "rate": float(project.gold_rate),
        "uuid": uuid.uuid4(),
        "order": json.dumps(order),
    }
    in_transaction = connection.in_atomic_block
    # A claim is a lease, not data: had the server crashed before this commit reached disk, the
    # item would simply be free again and the annotator would ask again. Not waiting for the WAL
    # flush roughly doubles throughput; submits stay fully durable. (Only on our own implicit
    # transaction: inside a caller's transaction the setting would outlive the claim.)
    prefix = "" if in_transaction else "SET LOCAL synchronous_commit TO OFF;"
    sql = prefix + _claim_sql(with_gold=project.gold_rate > 0)
    for _attempt in range(8):
        params["uuid"] = uuid.uuid4()
        try:
            savepoint = transaction.atomic() if in_transaction else contextlib.nullcontext()
            with savepoint, _client_cursor() as cursor:
                cursor.execute(sql, params)
                while cursor.description is None and cursor.nextset():
                    pass
                row = cursor.fetchone()
        except (IntegrityError, DataError):
            continue  # a race with the same annotator (double click): look again
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", "") in ("40P01", "40001"):
                continue  # two sweepers crossed on the same items: PostgreSQL chose one
            raise
        ok, picked, _guard, kind, *values = row
        if not ok:
            _require(project, annotator, role="annotator")  # raises the right error
            raise PermissionDenied("You are not an annotator of this project.")
        if kind is not None:
            if kind != "own":
                CLAIMS.labels(kind=kind).inc()
            return _assignment_from_row(values, project)
        if not picked:
            return None  # the pool is empty for this annotator
    return None


def _assignment_from_row(values: list[Any], project: Project) -> Assignment:
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


# --- answers ------------------------------------------------------------------------------------------


@dataclass
class Answer:
    ranking: quality.Ranking
    labels: dict[str, dict[str, int]]
    flags: list[str]
    comment: str
    time_spent_ms: int


def answer_clean(project: Project, item: Item, data: dict[str, Any], *, final: bool) -> Answer:
    """Validate an answer from a form or the API. Responses are named by their public ids.

    ``data``: ``ranking`` (groups of response ids, best first), ``labels`` ({response id:
    {label: value}}), ``flags``, ``comment``, ``time_spent_ms``. A draft (``final=False``) may
    be incomplete; a final answer must rank every response and give every label.
    """
    ids = {str(r.public_id): r.index for r in item.responses.all()}
    k = len(ids)
    ranking: quality.Ranking = []
    raw_ranking = data.get("ranking") or []
    if not isinstance(raw_ranking, list):
        raise ApplicationError("The ranking must be a list.", code="invalid_answer")
    try:
        for group in raw_ranking:
            if not isinstance(group, list):
                raise ValueError("every group of the ranking must be a list")
            mapped = []
            for rid in group:
                if str(rid) not in ids:
                    raise ValueError("the ranking names a response that is not in this item")
                mapped.append(ids[str(rid)])
            if mapped:
                ranking.append(mapped)
        if ranking or final:
            ranking = quality.validate_ranking(ranking, k) if final else ranking
    except ValueError as exc:
        raise ApplicationError(f"Invalid ranking: {exc}.", code="invalid_answer") from None
    labels: dict[str, dict[str, int]] = {}
    raw_labels = data.get("labels") or {}
    if not isinstance(raw_labels, dict):
        raise ApplicationError("Labels must be an object.", code="invalid_answer")
    specs = {s["name"]: s for s in project.labels}
    for rid, values in raw_labels.items():
        if str(rid) not in ids or not isinstance(values, dict):
            raise ApplicationError("Labels name an unknown response.", code="invalid_answer")
        out: dict[str, int] = {}
        for name, value in values.items():
            if name not in specs:
                raise ApplicationError(f"Unknown label {name!r}.", code="invalid_answer")
            if value in (None, ""):
                continue
            if specs[name]["kind"] == "yesno" and value in ("yes", "no", True, False):
                value = 1 if value in ("yes", True) else 0
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise ApplicationError(
                    f"Label {name!r} must be a number.", code="invalid_answer"
                ) from None
            lo, hi = label_bounds(specs[name])
            if not lo <= number <= hi:
                raise ApplicationError(
                    f"Label {name!r} must be between {lo} and {hi}.", code="invalid_answer"
                )
            out[name] = number
        labels[str(ids[str(rid)])] = out
    if final:
        for idx in range(k):
            missing = set(specs) - set(labels.get(str(idx), {}))
            if missing:
                raise ApplicationError(
                    f"Give every label for every response (missing: {', '.join(sorted(missing))}).",
                    code="labels_missing",
                )
    if project.task_type == Project.TaskType.RATE and final:
        first = next(s["name"] for s in project.labels if s["kind"] == "likert")
        ranking = quality.ranking_from_scores([labels[str(i)][first] for i in range(k)])
    flags = data.get("flags") or []
    if not isinstance(flags, list) or not set(flags) <= set(Annotation.Flag.values):
        raise ApplicationError("Unknown flag.", code="invalid_answer")
    comment = data.get("comment") or ""
    if not isinstance(comment, str) or len(comment) > 5000:
        raise ApplicationError(
            "The comment must be text up to 5000 characters.", code="invalid_answer"
        )
    try:
        spent = max(0, min(int(data.get("time_spent_ms") or 0), 24 * 3600 * 1000))
    except (TypeError, ValueError):
        spent = 0
    return Answer(ranking, labels, sorted(set(flags)), comment, spent)


def _own_assignment_for_update(assignment: Assignment, annotator: Any) -> Assignment:
    a = (
        # of=self: lock only the assignment row. Locking the joined item and project rows too
        # deadlocks against claims, which hold the item row and key-share the project row.
        Assignment.objects.select_for_update(of=("self",))
        .select_related("project", "item")
        .get(pk=assignment.pk)
    )
    if a.annotator_id != annotator.id:
        raise NotFound("No such task.")
    return a


def _upsert_annotation(a: Assignment, **fields: Any) -> Annotation:
    ann, _ = Annotation.objects.update_or_create(
        assignment=a,
        defaults={
            "project_id": a.project_id,
            "item_id": a.item_id,
            "annotator_id": a.annotator_id,
            **fields,
        },
    )
    return ann


def annotation_save_draft(
    *, assignment: Assignment, annotator: Any, data: dict[str, Any], now: Any = None
) -> Annotation:
    """Autosave: keep the partial answer and extend the lock (the annotator is still working)."""
    now = now or timezone.now()
    answer = answer_clean(assignment.project, assignment.item, data, final=False)
    with transaction.atomic():
        a = _own_assignment_for_update(assignment, annotator)
        if not a.is_live(now):
            raise Conflict("This task is no longer yours to edit.", code="assignment_closed")
        Assignment.objects.filter(pk=a.pk).update(
            expires_at=max(a.expires_at, now + timedelta(seconds=a.project.lock_ttl_seconds))
        )
        return _upsert_annotation(
            a,
            status=Annotation.Status.DRAFT,
            ranking=answer.ranking,
            labels=answer.labels,
            flags=answer.flags,
            comment=answer.comment,
            time_spent_ms=answer.time_spent_ms,
        )


def _reopen_if_expired(a: Assignment, now: Any) -> None:
    """A late submit after the lock lapsed is still accepted while the item has room."""
    if a.state == Assignment.State.ACTIVE and a.expires_at > now:
        return
    if a.state == Assignment.State.ACTIVE:  # lapsed but not swept: its place is still counted
        return
    if a.state != Assignment.State.EXPIRED:
        raise Conflict("This task is already finished.", code="assignment_closed")
    if not a.is_gold:
        grew = Item.objects.filter(id=a.item_id, taken__lt=a.project.overlap).update(
            taken=F("taken") + 1
        )
        if not grew:
            raise Conflict(
                "Your lock expired and other annotators completed this item.",
                code="assignment_expired",
            )


def annotation_submit(
    *, assignment: Assignment, annotator: Any, data: dict[str, Any], now: Any = None
) -> Annotation:
    now = now or timezone.now()
    answer = answer_clean(assignment.project, assignment.item, data, final=True)
    with transaction.atomic():
        a = _own_assignment_for_update(assignment, annotator)
        _reopen_if_expired(a, now)
        a.state = Assignment.State.SUBMITTED
        a.finished_at = now
        a.save(update_fields=["state", "finished_at"])
        Item.objects.filter(pk=a.item_id).update(submitted=F("submitted") + 1)
        ann = _upsert_annotation(
            a,
            status=Annotation.Status.SUBMITTED,
            ranking=answer.ranking,
            labels=answer.labels,
            flags=answer.flags,
            comment=answer.comment,
            time_spent_ms=answer.time_spent_ms,
            skip_reason="",
            submitted_at=now,
        )
        slug = a.project.slug
        transaction.on_commit(lambda: ANNOTATIONS.labels(project=slug, outcome="submitted").inc())
    return ann


def assignment_skip(
    *, assignment: Assignment, annotator: Any, reason: str, comment: str = "", now: Any = None
) -> Annotation:
    if reason not in Annotation.SkipReason.values:
        raise ApplicationError("Choose a reason for skipping.", code="invalid_answer")
    now = now or timezone.now()
    with transaction.atomic():
        a = _own_assignment_for_update(assignment, annotator)
        if a.state not in (Assignment.State.ACTIVE, Assignment.State.EXPIRED):
            raise Conflict("This task is already finished.", code="assignment_closed")
        if a.state == Assignment.State.ACTIVE and not a.is_gold:
            # the item's place goes back to the pool for someone else
            Item.objects.filter(id=a.item_id, taken__gt=0).update(taken=F("taken") - 1)
        a.state = Assignment.State.SKIPPED
        a.finished_at = now
        a.save(update_fields=["state", "finished_at"])
        ann = _upsert_annotation(
            a, status=Annotation.Status.SKIPPED, skip_reason=reason, comment=comment[:5000]
        )
        slug = a.project.slug
        transaction.on_commit(lambda: ANNOTATIONS.labels(project=slug, outcome="skipped").inc())
    return ann


def annotation_review(
    *, annotation: Annotation, reviewer: Any, decision: str, note: str = ""
) -> Annotation:
    _require(annotation.project, reviewer, role="reviewer")
    if decision not in (Annotation.Review.APPROVED, Annotation.Review.REJECTED):
        raise ApplicationError("Decide approved or rejected.", code="invalid_decision")
    if annotation.annotator_id == reviewer.id:
        raise PermissionDenied("You cannot review your own work.")
    with transaction.atomic():
        changed = Annotation.objects.filter(
            pk=annotation.pk, status=Annotation.Status.SUBMITTED
        ).update(
            review=decision,
            reviewed_by=reviewer,
            reviewed_at=timezone.now(),
            review_note=note[:500],
        )
        if not changed:
            raise Conflict("Only submitted annotations can be reviewed.", code="not_reviewable")
    annotation.refresh_from_db()
    return annotation


# --- generation and arena sampling --------------------------------------------------------------------


def generation_start(
    *, project: Project, user: Any, prompts: list[str], llms: list[LLM]
) -> GenerationJob:
    """Create a job and enqueue one generation task per prompt (after commit)."""
    _require(project, user, role="manager")
    prompts = [p.strip() for p in prompts if p and p.strip()]
    if not prompts:
        raise ApplicationError("Give at least one prompt.", code="invalid")
    if len(prompts) > MAX_GENERATION_PROMPTS:
        raise ApplicationError(f"At most {MAX_GENERATION_PROMPTS} prompts per job.", code="invalid")
    if any(len(p) > MAX_PROMPT_CHARS for p in prompts):
        raise ApplicationError("A prompt is too long.", code="invalid")
    if len(llms) != project.k or len({m.pk for m in llms}) != len(llms):
        raise ApplicationError(f"Choose exactly {project.k} different models.", code="invalid")
    with transaction.atomic():
        job = GenerationJob.objects.create(
            project=project,
            prompts=prompts,
            llm_ids=[m.pk for m in llms],
            total=len(prompts),
            created_by=user,
        )
        for i in range(len(prompts)):
            enqueue("annotations.tasks.generate_item", job.pk, i)
    return job


def generation_run_one(*, job_id: int, index: int) -> None:
    """Generate the K responses of one prompt and store the item. Idempotent per (job, index).

    The provider calls run with no transaction open; only the final write is transactional.
    """
    from arena.providers import ProviderError, complete_sync

    job = GenerationJob.objects.select_related("project").get(pk=job_id)
    external_id = f"gen:{job.public_id}:{index}"
    if Item.objects.filter(project=job.project, external_id=external_id).exists():
        return
    prompt = job.prompts[index]
    llms = {m.pk: m for m in LLM.objects.select_related("provider").filter(pk__in=job.llm_ids)}
    responses: list[tuple[str, LLM]] = []
    error = ""
    for llm_id in job.llm_ids:
        llm = llms.get(llm_id)
        if llm is None:
            error = f"model {llm_id} no longer exists"
            break
        try:
            completion = complete_sync(
                llm.provider.to_endpoint(),
                [{"role": "user", "content": prompt}],
                llm.generation_params(),
            )
        except ProviderError as exc:
            error = f"{llm.slug}: {type(exc).__name__}: {str(exc)[:200]}"
            break
        if not completion.text.strip():
            error = f"{llm.slug}: empty response"
            break
        responses.append((completion.text, llm))
    with transaction.atomic():
        locked = GenerationJob.objects.select_for_update().get(pk=job_id)
        if error:
            locked.failed += 1
            locked.errors = [*locked.errors, {"index": index, "message": error}][-100:]
        else:
            item = Item.objects.create(
                project=job.project,
                external_id=external_id,
                prompt=prompt,
                source=Item.Source.GENERATED,
                metadata={"generation_job": str(job.public_id)},
            )
            ItemResponse.objects.bulk_create(
                [
                    ItemResponse(item=item, index=i, text=text, llm=llm, source_model=llm.slug)
                    for i, (text, llm) in enumerate(responses)
                ]
            )
            locked.done += 1
        if locked.done + locked.failed >= locked.total:
            locked.state = GenerationJob.State.DONE
        locked.save(update_fields=["done", "failed", "errors", "state"])


def arena_sample(*, project: Project, user: Any, count: int) -> int:
    """Turn up to ``count`` arena turns whose two responses are done into 2-response items.

    A turn is sampled at most once per project (its external id is ``arena:<battle>:<turn>``).
    """
    _require(project, user, role="manager")
    if project.k != 2:
        raise ApplicationError("Arena battles give two responses: set K to 2.", code="invalid")
    count = max(1, min(int(count), 5000))
    taken = set(
        Item.objects.filter(project=project, source=Item.Source.ARENA).values_list(
            "external_id", flat=True
        )
    )
    turns = (
        Turn.objects.annotate(
            done=Count("responses", filter=Q(responses__state="done", responses__text__gt=""))
        )
        .filter(done=2)
        .select_related("battle", "battle__model_a", "battle__model_b")
        .prefetch_related("responses")
        .order_by("?")
    )
    rows: list[_Row] = []
    for turn in turns.iterator(chunk_size=200):
        ext = f"arena:{turn.battle.public_id}:{turn.index}"
        if ext in taken:
            continue
        by_side = {r.side: r for r in turn.responses.all()}
        rows.append(
            _Row(
                line=0,
                prompt=turn.prompt,
                conversation=[],
                responses=[
                    (by_side["a"].text, turn.battle.model_a.slug),
                    (by_side["b"].text, turn.battle.model_b.slug),
                ],
                gold=None,
                external_id=ext,
                metadata={"battle": str(turn.battle.public_id), "turn": turn.index},
            )
        )
        if len(rows) >= count:
            break
    if not rows:
        return 0
    return _create_items(project, rows, source=Item.Source.ARENA)


def may_create_projects(user: Any) -> bool:
    return bool(
        getattr(user, "is_authenticated", False)
        and user.is_active
        and (user.is_staff or user.has_perm("annotations.add_project"))
    )


def _unique_slug(name: str) -> str:
    base = slugify(name)[:70] or "project"
    slug, n = base, 1
    while Project.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def project_create(*, owner: Any, **fields: Any) -> Project:
    """A new project owned by ``owner`` (staff, or users with the ``add_project`` permission)."""
    if not may_create_projects(owner):
        raise PermissionDenied("You may not create annotation projects.")
    fields.setdefault("slug", _unique_slug(fields.get("name", "")))
    project = Project(owner=owner, **fields)
    project.full_clean()
    if project.k > MAX_K:
        raise ApplicationError("K is too large.", code="invalid")
    project.save()
    forget_roles(owner)
    return project


def invitation_create(
    *, project: Project, user: Any, email: str = "", as_reviewer: bool = False
) -> Invitation:
    _require(project, user, role="manager")
    return Invitation.objects.create(project=project, email=email, as_reviewer=as_reviewer)

"""Loading items: an uploaded JSONL or CSV file (validated whole, then created in one
transaction), and items sampled from arena battles. Generated items are in ``generation``.

Upload formats, one item per line or row:

- JSONL: ``{"prompt", "responses": [text | {"text", "model"}], "conversation"?, "gold"?, "id"?,
  "metadata"?}``;
- CSV: columns ``prompt``, ``response_1`` .. ``response_K``, optional ``model_1`` .. ``model_K``,
  ``gold`` and ``id``; any other column goes into the metadata.

``gold`` is ``[[0], [1, 2]]`` (0-based groups) or ``"1>2=3"`` (1-based, ``=`` is a tie).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count, Q

from annotations import quality
from annotations.models import Item, ItemResponse, Project
from annotations.services.access import require_role
from arena.models import LLM, Turn
from core.errors import ApplicationError

MAX_PROMPT_CHARS = 50_000
MAX_RESPONSE_CHARS = 100_000
MAX_IMPORT_LINES = 20_000
MAX_MODEL_NAME_CHARS = 200
MAX_EXTERNAL_ID_CHARS = 200

LineError = dict[str, Any]  # {"line": int, "message": str}


class ImportInvalid(ApplicationError):
    """``extra["errors"]`` lists ``{"line", "message"}`` per bad line (line 0: the whole file)."""

    code = "import_invalid"
    status = 400


@dataclass
class ImportRow:
    """One item to create, whatever its source."""

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


# --- one line --------------------------------------------------------------------------------------

_JSON_KEYS = {"prompt", "conversation", "responses", "gold", "id", "metadata"}


def _conversation_of(obj: dict[str, Any]) -> list[dict[str, str]]:
    conv = obj.get("conversation") or []
    if not isinstance(conv, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in conv
    ):
        raise ValueError("'conversation' must be a list of {role, content} objects")
    return conv


def _responses_of(obj: dict[str, Any]) -> list[tuple[str, str]]:
    raw = obj.get("responses")
    if not isinstance(raw, list):
        raise ValueError("'responses' must be a list")
    responses: list[tuple[str, str]] = []
    for i, r in enumerate(raw):
        if isinstance(r, str):
            responses.append((r, ""))
        elif isinstance(r, dict) and isinstance(r.get("text"), str):
            responses.append((r["text"], str(r.get("model") or "")))
        else:
            raise ValueError(f"response {i + 1} must be text or {{text, model}}")
    return responses


def _row_from_obj(obj: Any, line: int, k: int) -> ImportRow:
    """The row a parsed JSON line (or a CSV row in the same shape) describes; checks its shape."""
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    unknown = set(obj) - _JSON_KEYS
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("'prompt' is missing or empty")
    conversation = _conversation_of(obj)
    responses = _responses_of(obj)
    meta = obj.get("metadata") or {}
    if not isinstance(meta, dict):
        raise ValueError("'metadata' must be an object")
    ext = obj.get("id", "")
    if not isinstance(ext, (str, int)) or isinstance(ext, bool):
        raise ValueError("'id' must be text or a number")
    gold = parse_gold(obj["gold"], k) if obj.get("gold") is not None else None
    return ImportRow(line, prompt, conversation, responses, gold, str(ext), meta)


def _check_row(row: ImportRow, k: int) -> None:
    """Sizes and counts: K responses, none empty, nothing over its limit."""
    if len(row.prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"the prompt is longer than {MAX_PROMPT_CHARS} characters")
    if len(row.responses) != k:
        raise ValueError(f"expected {k} responses, found {len(row.responses)}")
    for i, (text, model) in enumerate(row.responses):
        if not text.strip():
            raise ValueError(f"response {i + 1} is empty")
        if len(text) > MAX_RESPONSE_CHARS:
            raise ValueError(f"response {i + 1} is longer than {MAX_RESPONSE_CHARS} characters")
        if len(model) > MAX_MODEL_NAME_CHARS:
            raise ValueError(f"model name of response {i + 1} is too long")
    if len(row.external_id) > MAX_EXTERNAL_ID_CHARS:
        raise ValueError(f"'id' is longer than {MAX_EXTERNAL_ID_CHARS} characters")


# --- whole files -----------------------------------------------------------------------------------


def _parse_jsonl(text: str, k: int, errors: list[LineError]) -> list[ImportRow]:
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


def _parse_csv(text: str, k: int, errors: list[LineError]) -> list[ImportRow]:
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


def _duplicate_id_errors(project: Project, rows: list[ImportRow]) -> list[LineError]:
    """Ids the project already has, and ids repeated within the file (the first one stands)."""
    existing = set(
        Item.objects.filter(project=project)
        .exclude(external_id="")
        .filter(external_id__in=[r.external_id for r in rows if r.external_id])
        .values_list("external_id", flat=True)
    )
    seen: dict[str, int] = {}
    errors: list[LineError] = []
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
    return errors


def items_import(*, project: Project, user: Any, content: bytes | str, fmt: str) -> int:
    """Validate every line, then create all items in one transaction, or none (managers only).

    ``fmt`` is ``"jsonl"`` or ``"csv"``; bytes are decoded as UTF-8 (a BOM is dropped). Returns
    the number of items created. Raises ``ImportInvalid``, whose ``extra["errors"]`` lists
    ``{"line", "message"}`` per bad line, sorted by line.
    """
    require_role(project, user, role="manager")
    if fmt not in {"jsonl", "csv"}:
        raise ImportInvalid("The format must be jsonl or csv.")
    try:
        text = content.decode("utf-8-sig") if isinstance(content, bytes) else content
    except UnicodeDecodeError:
        raise ImportInvalid(
            "The file is not UTF-8 text.", extra={"errors": [{"line": 0, "message": "not UTF-8"}]}
        ) from None
    errors: list[LineError] = []
    rows = (_parse_jsonl if fmt == "jsonl" else _parse_csv)(text, project.k, errors)
    if len(rows) + len(errors) > MAX_IMPORT_LINES:
        raise ImportInvalid(f"At most {MAX_IMPORT_LINES} items per upload.")
    errors.extend(_duplicate_id_errors(project, rows))
    if errors:
        errors.sort(key=lambda e: e["line"])
        raise ImportInvalid(
            f"{len(errors)} line(s) are invalid; nothing was imported.", extra={"errors": errors}
        )
    if not rows:
        raise ImportInvalid("The file has no items.", extra={"errors": []})
    return _create_items(project, rows, source=Item.Source.UPLOAD)


def _create_items(project: Project, rows: list[ImportRow], *, source: str) -> int:
    """Create the items and their responses in one transaction; returns how many.

    A response's model name is linked to a registered LLM when it matches one's slug or display
    name, and kept as text otherwise.
    """
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


# --- from arena battles ----------------------------------------------------------------------------


def arena_sample(*, project: Project, user: Any, count: int) -> int:
    """Turn up to ``count`` arena turns whose two responses are done into 2-response items.

    Managers only; the project's K must be 2. A turn is sampled at most once per project (its
    external id is ``arena:<battle>:<turn>``). Returns the number of items created.
    """
    require_role(project, user, role="manager")
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
    rows: list[ImportRow] = []
    for turn in turns.iterator(chunk_size=200):
        ext = f"arena:{turn.battle.public_id}:{turn.index}"
        if ext in taken:
            continue
        by_side = {r.side: r for r in turn.responses.all()}
        rows.append(
            ImportRow(
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

"""The leaderboard page: one URL serves the page and its board fragment (htmx)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from arena.models import Vote
from arena.sampling import leaking_models
from rating import plots, selectors
from rating.models import LeaderboardSnapshot

SORT_KEYS = {
    "rank": lambda r: (r["rank"] is None, r["rank"] or 0, -(r["score"] or 0)),
    "score": lambda r: (r["score"] is None, r["score"] or 0),
    "ci": lambda r: (r["ci_plus"] is None, r["ci_plus"] or 0),
    "votes": lambda r: r["votes"],
    "model": lambda r: (r.get("name") or r["model"]).lower(),
    "organisation": lambda r: (r.get("organisation") or "").lower(),
    "license": lambda r: (r.get("license") or "").lower(),
}
DEFAULT_DESC = {"score", "votes", "ci"}


def _query(request: HttpRequest) -> dict[str, Any]:
    """Validated view parameters; anything unknown falls back to the default view."""
    source = request.GET.get("source", "arena")
    if source not in LeaderboardSnapshot.Source.values:
        source = "arena"
    category = request.GET.get("category", "all")[:32] or "all"
    style = request.GET.get("style") in ("1", "on", "true")
    sort = request.GET.get("sort", "rank")
    if sort not in SORT_KEYS:
        sort = "rank"
    desc = request.GET.get("dir", "desc" if sort in DEFAULT_DESC else "asc") == "desc"
    return {"source": source, "category": category, "style": style, "sort": sort, "desc": desc}


def _sorted_rows(rows: list[dict[str, Any]], sort: str, desc: bool) -> list[dict[str, Any]]:
    rated = [r for r in rows if r.get("score") is not None]
    unrated = [r for r in rows if r.get("score") is None]
    return sorted(rated, key=SORT_KEYS[sort], reverse=desc) + unrated


@require_GET
def leaderboard(request: HttpRequest) -> HttpResponse:
    q = _query(request)
    snapshot = selectors.snapshot_latest(
        source=q["source"], category=q["category"], style_control=q["style"]
    )
    categories = selectors.snapshot_categories(source=q["source"])
    context: dict[str, Any] = {
        **q,
        "snapshot": snapshot,
        "categories": [(c, selectors.category_label(c)) for c in categories],
        "category_label": selectors.category_label(q["category"]),
        "sort_links": {
            key: {"dir": ("asc" if q["desc"] else "desc") if key == q["sort"] else None}
            for key in SORT_KEYS
        },
    }
    if snapshot is not None:
        context.update(_fidelity(snapshot))
    if request.user.is_staff:
        context["leaks"] = leaking_models()
    if snapshot is not None and not snapshot.is_empty and context["status"]["status"] != "withheld":
        rows = _sorted_rows(snapshot.rows, q["sort"], q["desc"])
        m = snapshot.matrices or {}
        labels = {r["model"]: r.get("name") or r["model"] for r in snapshot.rows}
        context.update(
            rows=rows,
            ci_svg=plots.ci_plot(snapshot.rows),
            winrate_svg=plots.heatmap(
                m.get("models", []), m.get("predicted_win_rate", []), kind="rate",
                title="Predicted win rate (row beats column)", labels=labels,
            ),
            counts_svg=plots.heatmap(
                m.get("models", []), m.get("battle_counts", []), kind="count",
                title="Battle counts", labels=labels,
            ),
            style_params=_style_pairs(snapshot),
        )  # fmt: skip
    template = "rating/leaderboard.html"
    if request.htmx and not request.htmx.boosted:
        template += "#board"
    return render(request, template, context)


def _fidelity(snapshot: LeaderboardSnapshot) -> dict[str, Any]:
    """What the page says about how far the board can be trusted: its status, the warnings
    other than the status's own reason, the excluded votes by reason, the tie model."""
    status = snapshot.status
    excluded = snapshot.excluded
    by_reason = excluded.get("by_reason") or {}
    # In the order of Vote.Flag (PostgreSQL's jsonb does not keep the stored order).
    order = {flag: k for k, flag in enumerate(Vote.Flag.values)}
    reasons = [
        (flag.replace("_", " "), n)
        for flag, n in sorted(by_reason.items(), key=lambda item: (order.get(item[0], 99), item[0]))
        if n
    ]
    return {
        "status": status,
        "warnings": [w for w in snapshot.warnings if w != status["reason"]],
        "excluded_reasons": reasons,
        "tie_model": snapshot.tie_model,
        "tie_model_meaning": snapshot.tie_model_meaning,
    }


def _style_pairs(snapshot: LeaderboardSnapshot) -> list[tuple[str, float]]:
    style = (snapshot.params.get("fitted") or {}).get("style") or {}
    return list(zip(style.get("features", []), style.get("coefficients", []), strict=False))

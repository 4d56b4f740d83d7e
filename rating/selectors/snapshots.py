"""Reads of stored snapshots, and the category labels the pages and the API show."""

from __future__ import annotations

from rating.models import LeaderboardSnapshot

CATEGORY_LABELS = {
    "all": "Overall",
    "coding": "Coding",
    "long_prompt": "Long prompts",
    "multi_turn": "Multi-turn",
    "hard": "Hard prompts",
}
LANGUAGE_NAMES = {
    "en": "English", "zh": "Chinese", "ru": "Russian", "de": "German", "fr": "French",
    "es": "Spanish", "ja": "Japanese", "ko": "Korean", "pt": "Portuguese", "it": "Italian",
    "ar": "Arabic", "hi": "Hindi", "el": "Greek", "he": "Hebrew", "th": "Thai",
}  # fmt: skip


def category_label(category: str) -> str:
    """Human label for a category tag; unknown tags are shown as they are (a way to add more)."""
    if category in CATEGORY_LABELS:
        return CATEGORY_LABELS[category]
    if category.startswith("lang:"):
        code = category[5:]
        return LANGUAGE_NAMES.get(code, code)
    return category.replace("_", " ").capitalize()


def category_sort_key(category: str) -> tuple[int, str]:
    order = ["all", "coding", "long_prompt", "multi_turn", "hard"]
    if category in order:
        return (order.index(category), category)
    return (10 if category.startswith("lang:") else 5, category)


# --- snapshots ----------------------------------------------------------------------------------


def snapshot_latest(
    *, source: str = "arena", category: str = "all", style_control: bool = False
) -> LeaderboardSnapshot | None:
    """The most recent snapshot for this view, or None before the first recompute."""
    return (
        LeaderboardSnapshot.objects.filter(
            source=source, category=category, style_control=style_control
        )
        .order_by("-computed_at", "-id")
        .first()
    )


def snapshot_categories(*, source: str = "arena") -> list[str]:
    """Categories that have at least one snapshot, "all" first."""
    cats = set(
        LeaderboardSnapshot.objects.filter(source=source)
        .values_list("category", flat=True)
        .distinct()
    )
    return sorted(cats, key=category_sort_key)


def snapshot_versions(*, source: str = "arena") -> dict[str, int]:
    """``counts_version`` of the newest plain snapshot per category (the table stays small)."""
    out: dict[str, int] = {}
    rows = (
        LeaderboardSnapshot.objects.filter(source=source, style_control=False)
        .order_by("-computed_at", "-id")
        .values_list("category", "counts_version")
    )
    for cat, version in rows:
        out.setdefault(cat, int(version))
    return out

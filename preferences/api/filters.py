"""django-filter filter sets: query parameters validated once, turned into selector filters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from arena.models import Battle, Vote
from preferences.selectors import SOURCES, WINNERS, PairFilters


class CsvField(forms.CharField):
    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value)
        return [v.strip() for v in text.split(",") if v.strip()] if text else []


@extend_schema_field(OpenApiTypes.STR)  # one comma-separated string; its help text says so
class CsvFilter(django_filters.Filter):
    field_class = CsvField


EMPTY_MESSAGE = "Empty; leave the parameter out instead."


class RefuseEmptyMixin:
    """A typed parameter given empty (``date_from=``) is a 400, not "filter off": absent and
    empty differ on the wire, and the schema says the value is a date, number or boolean."""

    def to_python(self, value: Any) -> Any:
        if value == "":
            raise forms.ValidationError(EMPTY_MESSAGE, code="invalid")
        return super().to_python(value)  # type: ignore[misc]


class FiniteFloatField(RefuseEmptyMixin, forms.FloatField):
    pass


@extend_schema_field(OpenApiTypes.DOUBLE)
class FloatFilter(django_filters.Filter):
    """Any finite number: django-filter's NumberFilter caps values at 1e50 and refused
    ``7e160`` although the schema promised a number."""

    field_class = FiniteFloatField


class StrictBooleanField(RefuseEmptyMixin, forms.Field):
    """``true``/``false`` (or ``1``/``0``); anything else is a 400. django-filter's BooleanFilter
    read ``include_ties=yes`` as "not given" and answered 200 with the filter silently off."""

    widget = forms.TextInput
    VALUES = {"true": True, "1": True, "false": False, "0": False}

    def to_python(self, value: Any) -> bool | None:
        if value is None:
            return None
        try:
            return self.VALUES[str(value).lower()]
        except KeyError:
            raise forms.ValidationError("Use true or false.", code="invalid") from None


@extend_schema_field(OpenApiTypes.BOOL)
class StrictBooleanFilter(django_filters.Filter):
    field_class = StrictBooleanField


class StrictChoiceField(RefuseEmptyMixin, django_filters.fields.ChoiceField):
    pass


class StrictChoiceFilter(django_filters.ChoiceFilter):
    field_class = StrictChoiceField


class UtcDateTimeField(RefuseEmptyMixin, django_filters.fields.IsoDateTimeField):
    """ISO 8601, normalised to UTC (PostgreSQL refuses offsets beyond +-15:59)."""

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError) as exc:
            raise forms.ValidationError("Date out of range.", code="invalid") from exc


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class PairFilterSet(django_filters.FilterSet):
    """Pairs are a stream, not a table: this set validates parameters into a PairFilters."""

    date_from = UtcDateTimeFilter(help_text="Judged at or after (ISO 8601).")
    date_to = UtcDateTimeFilter(help_text="Judged before (ISO 8601).")
    source = CsvFilter(help_text=f"Comma-separated sources: {', '.join(SOURCES)}.")
    model = CsvFilter(
        help_text="Comma-separated model slugs; a pair matches if either side is one."
    )
    category = CsvFilter(help_text="Comma-separated category tags; any of them.")
    language = django_filters.CharFilter()
    min_agreement = FloatFilter(help_text="Annotation pairs only.")
    min_trust = FloatFilter(help_text="Annotation pairs only.")
    include_ties = StrictBooleanFilter()
    include_both_bad = StrictBooleanFilter()
    include_flagged = StrictBooleanFilter()

    class Meta:
        model = Vote
        fields: list[str] = []

    def pair_filters(self) -> PairFilters:
        data = self.form.cleaned_data
        sources = tuple(data.get("source") or ())
        unknown = set(sources) - set(SOURCES)
        raw_source = self.data.get("source")
        if raw_source is not None and "" in (part.strip() for part in raw_source.split(",")):
            # ``source=`` or ``source=arena,`` names an empty source: a client bug, not "all".
            unknown.add("")
        if unknown:
            raise forms.ValidationError({"source": f"Unknown source(s): {sorted(unknown)}"})
        return PairFilters(
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            sources=sources or PairFilters().sources,
            models=tuple(data.get("model") or ()),
            categories=tuple(data.get("category") or ()),
            language=data.get("language") or "",
            min_agreement=_float(data.get("min_agreement")),
            min_trust=_float(data.get("min_trust")),
            include_ties=bool(data.get("include_ties")),
            include_both_bad=bool(data.get("include_both_bad")),
            include_flagged=bool(data.get("include_flagged")),
        )


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


class BattleFilterSet(django_filters.FilterSet):
    model = django_filters.CharFilter(method="filter_model", help_text="Model slug (either side).")
    language = django_filters.CharFilter()
    winner = StrictChoiceFilter(field_name="vote__winner", choices=[(o, o) for o in WINNERS])
    created_after = UtcDateTimeFilter(field_name="created", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created", lookup_expr="lt")

    class Meta:
        model = Battle
        fields: list[str] = []

    def filter_model(self, queryset: Any, name: str, value: str) -> Any:
        from django.db.models import Q

        return queryset.filter(Q(model_a__slug=value) | Q(model_b__slug=value))

from __future__ import annotations

from typing import Any

from django import forms

from preferences.exports import FILE_FORMATS, FORMAT_CHOICES, ExportOptions
from preferences.models import ApiToken
from preferences.selectors import SOURCES, PairFilters


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


class ReleaseForm(forms.Form):
    name = forms.SlugField(max_length=100, initial="arena-prefs")
    version = forms.RegexField(r"^[0-9A-Za-z][0-9A-Za-z.\-_]{0,31}$", max_length=32, initial="1.0")
    format = forms.ChoiceField(choices=FORMAT_CHOICES)
    file_format = forms.ChoiceField(choices=[(f, f) for f in FILE_FORMATS])
    sources = forms.MultipleChoiceField(
        choices=[(s, s) for s in SOURCES],
        initial=["arena", "annotation"],
        widget=forms.CheckboxSelectMultiple,
    )
    models = forms.CharField(required=False, help_text="Comma-separated model slugs")
    categories = forms.CharField(required=False, help_text="Comma-separated categories")
    language = forms.CharField(required=False, max_length=16)
    date_from = forms.DateTimeField(required=False)
    date_to = forms.DateTimeField(required=False)
    min_trust = forms.FloatField(required=False)
    min_agreement = forms.FloatField(required=False)
    include_ties = forms.BooleanField(required=False)
    include_both_bad = forms.BooleanField(required=False)
    include_flagged = forms.BooleanField(required=False)
    test_fraction = forms.FloatField(min_value=0.0, max_value=0.5, initial=0.1)
    dedup_prompts = forms.BooleanField(required=False)
    scrub_pii = forms.BooleanField(required=False, initial=True)
    margin = forms.BooleanField(required=False)

    def filters(self) -> PairFilters:
        d: dict[str, Any] = self.cleaned_data
        return PairFilters(
            date_from=d["date_from"],
            date_to=d["date_to"],
            sources=tuple(d["sources"]),
            models=_csv(d["models"]),
            categories=_csv(d["categories"]),
            language=d["language"],
            min_trust=d["min_trust"],
            min_agreement=d["min_agreement"],
            include_ties=d["include_ties"],
            include_both_bad=d["include_both_bad"],
            include_flagged=d["include_flagged"],
        )

    def options(self) -> ExportOptions:
        d = self.cleaned_data
        return ExportOptions(
            test_fraction=d["test_fraction"],
            dedup_prompts=d["dedup_prompts"],
            scrub_pii=d["scrub_pii"],
            margin=d["margin"],
        )


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    scope = forms.ChoiceField(choices=ApiToken.SCOPES, initial=ApiToken.SCOPE_READ)
    days = forms.IntegerField(min_value=1, max_value=366, initial=90, required=False)

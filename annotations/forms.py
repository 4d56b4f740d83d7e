"""Forms for the HTML pages (the API has its own serializers; both call the same services)."""

from __future__ import annotations

from typing import Any

from django import forms

from annotations.models import Annotation, Project
from arena.models import LLM

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSONL or CSV, UTF-8.")
    format = forms.ChoiceField(
        choices=[("", "From the file name"), ("jsonl", "JSONL"), ("csv", "CSV")], required=False
    )

    def clean_file(self) -> Any:
        f = self.cleaned_data["file"]
        if f.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError("The file is larger than 50 MB.")
        return f

    @staticmethod
    def guess_format(name: str) -> str:
        return "csv" if name.lower().endswith(".csv") else "jsonl"


class GenerateForm(forms.Form):
    prompts = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="One prompt per line (or separate multi-line prompts with a line '---').",
    )
    models = forms.ModelMultipleChoiceField(
        queryset=LLM.objects.for_annotation(), widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args: Any, k: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.k = k
        self.fields["models"].help_text = f"Choose exactly {k}: one response per model."

    def clean_prompts(self) -> list[str]:
        text = self.cleaned_data["prompts"]
        parts = text.split("\n---\n") if "\n---\n" in text else text.splitlines()
        prompts = [p.strip() for p in parts if p.strip()]
        if not prompts:
            raise forms.ValidationError("Give at least one prompt.")
        return prompts

    def clean_models(self) -> Any:
        models = self.cleaned_data["models"]
        if len(models) != self.k:
            raise forms.ValidationError(f"Choose exactly {self.k} models.")
        return models


class SkipForm(forms.Form):
    reason = forms.ChoiceField(choices=Annotation.SkipReason.choices)
    comment = forms.CharField(required=False, max_length=5000)


class ProjectForm(forms.ModelForm):
    """A new project. The model's own validation runs too (K for pairwise, a likert label to rate,
    the label schema's shape), and its messages are shown beside the fields."""

    label_schema = forms.JSONField(
        required=False,
        initial=list,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text=Project._meta.get_field("label_schema").help_text,
    )

    class Meta:
        model = Project
        fields = [
            "name", "guidelines", "task_type", "label_schema", "k", "overlap",
            "lock_ttl_seconds", "gold_rate", "blind",
        ]  # fmt: skip
        widgets = {"guidelines": forms.Textarea(attrs={"rows": 6})}
        labels = {"lock_ttl_seconds": "Lock TTL (seconds)", "gold_rate": "Gold-item rate"}
        help_texts = {
            "k": "How many responses each item has (2 to 10).",
            "overlap": "How many annotators answer each item.",
            "lock_ttl_seconds": "An unsubmitted task returns to the pool after this long.",
        }

    def clean_label_schema(self) -> Any:
        value = self.cleaned_data.get("label_schema")
        return [] if value in (None, "") else value


class InvitationForm(forms.Form):
    email = forms.EmailField(required=False, help_text="Optional: a note of who it is for.")
    as_reviewer = forms.BooleanField(required=False, label="Invite as a reviewer")

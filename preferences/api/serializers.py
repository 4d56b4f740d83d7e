from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from preferences.exports import FILE_FORMATS, FORMAT_CHOICES
from preferences.models import ApiToken, DatasetRelease
from preferences.selectors import SOURCES


class MeOutput(serializers.Serializer):
    username = serializers.CharField()
    is_staff = serializers.BooleanField()
    auth = serializers.CharField(help_text="'session' or 'token'")
    scope = serializers.CharField(allow_null=True)


class TokenInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(choices=ApiToken.SCOPES, default=ApiToken.SCOPE_READ)
    days = serializers.IntegerField(min_value=1, max_value=366, allow_null=True, default=90)


class TokenOutput(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id")

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "scope",
            "created",
            "expires_at",
            "revoked_at",
            "last_used_at",
        ]


class TokenCreatedOutput(TokenOutput):
    secret = serializers.CharField(help_text="Shown once; store it now.")

    class Meta(TokenOutput.Meta):
        fields = [*TokenOutput.Meta.fields, "secret"]


# --- datasets ----------------------------------------------------------------------------------


class ModelOutput(serializers.Serializer):
    slug = serializers.CharField()
    display_name = serializers.CharField()
    organisation = serializers.CharField()
    license = serializers.CharField()
    knowledge_cutoff = serializers.CharField()


class PairOutput(serializers.Serializer):
    id = serializers.CharField()
    source = serializers.CharField()
    prompts = serializers.ListField(child=serializers.CharField(allow_blank=True))
    response_a = serializers.ListField(child=serializers.CharField(allow_blank=True))
    response_b = serializers.ListField(child=serializers.CharField(allow_blank=True))
    model_a = serializers.CharField()
    model_b = serializers.CharField()
    # The pair's winner (``Pair.winner``) under the public API's name, kept as published.
    outcome = serializers.ChoiceField(choices=["a", "b", "tie", "both_bad"])
    margin = serializers.FloatField()
    weight = serializers.FloatField()
    judge = serializers.CharField(help_text="Pseudonymous id; never a name or an IP.")
    categories = serializers.ListField(child=serializers.CharField())
    language = serializers.CharField(allow_blank=True)
    turns = serializers.SerializerMethodField()
    created = serializers.DateTimeField()
    agreement = serializers.FloatField(allow_null=True)
    trust = serializers.FloatField(allow_null=True)
    flags = serializers.ListField(child=serializers.CharField())

    def get_turns(self, pair: Any) -> int:
        return len(pair.prompts)


class PairPage(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    results = PairOutput(many=True)


class TurnOutput(serializers.Serializer):
    index = serializers.IntegerField()
    prompt = serializers.CharField()
    response_a = serializers.CharField(allow_blank=True)
    response_b = serializers.CharField(allow_blank=True)


class BattleOutput(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    mode = serializers.CharField()
    model_a = serializers.CharField(source="model_a.slug")
    model_b = serializers.CharField(source="model_b.slug")
    winner = serializers.CharField(source="vote.winner")
    flags = serializers.ListField(source="vote.flags", child=serializers.CharField())
    judge = serializers.SerializerMethodField()
    language = serializers.CharField(allow_blank=True)
    categories = serializers.ListField(child=serializers.CharField())
    created = serializers.DateTimeField()
    turns = serializers.SerializerMethodField()

    def get_judge(self, battle: Any) -> str:
        return battle.vote.voter[:16]

    @extend_schema_field(TurnOutput(many=True))
    def get_turns(self, battle: Any) -> list[dict[str, Any]]:
        out = []
        for turn in battle.turns.all():
            sides = {r.side: r.text for r in turn.responses.all()}
            out.append(
                {
                    "index": turn.index,
                    "prompt": turn.prompt,
                    "response_a": sides.get("a", ""),
                    "response_b": sides.get("b", ""),
                }
            )
        return TurnOutput(out, many=True).data


class PairFiltersInput(serializers.Serializer):
    date_from = serializers.DateTimeField(required=False, allow_null=True)
    date_to = serializers.DateTimeField(required=False, allow_null=True)
    sources = serializers.ListField(
        child=serializers.ChoiceField(choices=SOURCES), required=False, allow_empty=True
    )
    models = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=200
    )
    categories = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=100
    )
    language = serializers.CharField(required=False, allow_blank=True, max_length=16)
    min_agreement = serializers.FloatField(required=False, allow_null=True)
    min_trust = serializers.FloatField(required=False, allow_null=True)
    include_ties = serializers.BooleanField(required=False, default=False)
    include_both_bad = serializers.BooleanField(required=False, default=False)
    include_flagged = serializers.BooleanField(required=False, default=False)


class ReleaseInput(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    version = serializers.RegexField(r"^[0-9A-Za-z][0-9A-Za-z.\-_]{0,31}$", max_length=32)
    format = serializers.ChoiceField(choices=FORMAT_CHOICES)
    file_format = serializers.ChoiceField(choices=list(FILE_FORMATS), default="jsonl")
    filters = PairFiltersInput(required=False)
    test_fraction = serializers.FloatField(min_value=0.0, max_value=0.5, default=0.1)
    dedup_prompts = serializers.BooleanField(default=False)
    scrub_pii = serializers.BooleanField(default=True)
    margin = serializers.BooleanField(default=False, help_text="TRL formats: add a margin column.")
    license = serializers.CharField(max_length=64, default="cc-by-4.0")


class ReleaseFileOutput(serializers.Serializer):
    name = serializers.CharField()
    sha256 = serializers.CharField()
    bytes = serializers.IntegerField()
    rows = serializers.IntegerField(allow_null=True)
    url = serializers.URLField(help_text="Signed, expiring; works without headers.")


class ReleaseOutput(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id")
    created_by = serializers.SerializerMethodField()
    files = serializers.SerializerMethodField()

    class Meta:
        model = DatasetRelease
        fields = [
            "id",
            "name",
            "version",
            "format",
            "file_format",
            "filters",
            "options",
            "status",
            "progress",
            "rows_done",
            "rows_total",
            "row_counts",
            "files",
            "error",
            "max_vote_id",
            "max_annotation_id",
            "public",
            "created_by",
            "created",
            "finished_at",
            "published_at",
        ]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_created_by(self, release: DatasetRelease) -> str | None:
        return release.created_by.get_username() if release.created_by else None

    @extend_schema_field(ReleaseFileOutput(many=True))
    def get_files(self, release: DatasetRelease) -> list[dict[str, Any]]:
        links = self.context.get("links")
        if not release.is_downloadable or links is None:
            return []
        return [{**f, "url": links(release, f["name"])} for f in release.files]

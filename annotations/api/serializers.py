"""Plain input/output serializers for the annotation API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from annotations.models import Annotation, Assignment, Project


class ProjectOut(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = [
            "slug",
            "name",
            "task_type",
            "k",
            "overlap",
            "label_schema",
            "guidelines",
            "blind",
            "created",
        ]


class ImportIn(serializers.Serializer):
    format = serializers.ChoiceField(choices=["jsonl", "csv"], required=False)
    content = serializers.CharField(required=False, trim_whitespace=False)
    file = serializers.FileField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("content") and not attrs.get("file"):
            raise serializers.ValidationError("Send 'content' (text) or 'file' (multipart).")
        return attrs


class AnswerIn(serializers.Serializer):
    ranking = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField()), required=False
    )
    labels = serializers.DictField(child=serializers.DictField(), required=False)
    flags = serializers.ListField(child=serializers.CharField(), required=False)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    time_spent_ms = serializers.IntegerField(required=False, min_value=0)


class SkipIn(serializers.Serializer):
    reason = serializers.ChoiceField(choices=Annotation.SkipReason.choices)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class ReviewIn(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approved", "rejected"])
    note = serializers.CharField(required=False, allow_blank=True, max_length=500)


def assignment_out(a: Assignment) -> dict[str, Any]:
    """What an annotator may see: no gold answer, no other annotator, no model when blind."""
    by_index = {r.index: r for r in a.item.responses.select_related("llm")}
    order = a.display_order or sorted(by_index)
    return {
        "task": str(a.public_id),
        "project": a.project.slug,
        "expires_at": a.expires_at,
        "state": a.state,
        "prompt": a.item.prompt,
        "conversation": a.item.conversation,
        "responses": [
            {
                "id": str(by_index[i].public_id),
                "text": by_index[i].text,
                **({} if a.project.blind else {"model": by_index[i].model_name}),
            }
            for i in order
        ],
    }


def annotation_out(ann: Annotation) -> dict[str, Any]:
    ids = {r.index: str(r.public_id) for r in ann.item.responses.all()}
    return {
        "annotation": str(ann.public_id),
        "status": ann.status,
        "ranking": [[ids[i] for i in g] for g in ann.ranking],
        "labels": {ids[int(k)]: v for k, v in ann.labels.items()},
        "flags": ann.flags,
        "comment": ann.comment,
        "skip_reason": ann.skip_reason,
        "review": ann.review,
        "time_spent_ms": ann.time_spent_ms,
    }

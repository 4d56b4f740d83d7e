"""Output serializers: they document the leaderboard JSON in the OpenAPI schema."""

from __future__ import annotations

from rest_framework import serializers


class LeaderboardQuerySerializer(serializers.Serializer):
    category = serializers.CharField(default="all", max_length=32)
    style_control = serializers.BooleanField(default=False)
    source = serializers.ChoiceField(choices=["arena", "annotation"], default="arena")


class RowSerializer(serializers.Serializer):
    rank = serializers.IntegerField(allow_null=True)
    model = serializers.CharField(help_text="Model slug.")
    name = serializers.CharField()
    organisation = serializers.CharField(allow_blank=True)
    license = serializers.CharField(allow_blank=True)
    score = serializers.FloatField(allow_null=True)
    lower = serializers.FloatField(allow_null=True, help_text="Lower end of the 95% interval.")
    upper = serializers.FloatField(allow_null=True, help_text="Upper end of the 95% interval.")
    ci_plus = serializers.FloatField(allow_null=True)
    ci_minus = serializers.FloatField(allow_null=True)
    votes = serializers.IntegerField()
    component = serializers.IntegerField(
        help_text="Connected component of the comparison graph (0 = main)."
    )


class BoardStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["ok", "regularised", "withheld", "empty"],
        help_text="ok: the unregularised fit. regularised: few votes, or a model never lost or "
        "never won; a Gaussian prior (prior_sd) shrinks the strengths and intervals are "
        "posterior intervals. withheld: no scores (every score is null), see reason. empty: no "
        "votes.",
    )
    reason = serializers.CharField(allow_null=True)
    decisive_votes = serializers.IntegerField(
        allow_null=True, help_text="Votes with a winner among the rated models."
    )
    needed_votes = serializers.IntegerField(
        allow_null=True,
        help_text="Decisive votes an unregularised (or style-controlled) fit needs: 10 per "
        "parameter.",
    )
    prior_sd = serializers.FloatField(
        allow_null=True, help_text="Prior sd of the strengths in log-odds, when regularised."
    )
    intervals = serializers.CharField(
        allow_null=True, help_text="Interval method used: sandwich, bootstrap or posterior."
    )


class ExcludedSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="Flagged votes left out (each vote once).")
    by_reason = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Per vote flag (identity_leak, anomalous_voter, position_locked, "
        "errored_round, moderated); a vote with two flags counts under both.",
    )


class SnapshotSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    source = serializers.CharField()
    category = serializers.CharField()
    style_control = serializers.BooleanField()
    method = serializers.CharField()
    params = serializers.JSONField()
    computed_at = serializers.DateTimeField()
    votes_counted = serializers.IntegerField()
    flagged_excluded = serializers.IntegerField()
    excluded = ExcludedSerializer()
    status = BoardStatusSerializer()
    tie_model = serializers.CharField(
        help_text="half (a tie is half a win for each side, Chatbot Arena), davidson or "
        "rao-kupper. Strengths of different tie models are different quantities."
    )
    tie_model_meaning = serializers.CharField()
    warnings = serializers.ListField(child=serializers.CharField())
    rows = RowSerializer(many=True)


class SnapshotWithMatricesSerializer(SnapshotSerializer):
    matrices = serializers.JSONField(
        help_text="models (row order) and predicted_win_rate, observed_win_rate, battle_counts."
    )


class CategorySerializer(serializers.Serializer):
    category = serializers.CharField()
    label = serializers.CharField()


class HeadToHeadSerializer(serializers.Serializer):
    opponent = serializers.CharField()
    opponent_name = serializers.CharField()
    battles = serializers.IntegerField()
    wins = serializers.IntegerField()
    losses = serializers.IntegerField()
    ties = serializers.IntegerField()
    both_bad = serializers.IntegerField()
    win_rate = serializers.FloatField(help_text="(wins + half of ties and both-bad) / battles")
    predicted_win_rate = serializers.FloatField(allow_null=True)


class ModelDetailSerializer(serializers.Serializer):
    model = serializers.CharField()
    name = serializers.CharField()
    organisation = serializers.CharField(allow_blank=True)
    license = serializers.CharField(allow_blank=True)
    category = serializers.CharField()
    rating = RowSerializer(allow_null=True)
    computed_at = serializers.DateTimeField(allow_null=True)
    head_to_head = HeadToHeadSerializer(many=True)

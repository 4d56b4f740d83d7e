from __future__ import annotations

from rest_framework import serializers

from preferences.models import ApiToken


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

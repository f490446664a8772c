"""Request and response shapes of the auth endpoints."""

from __future__ import annotations

from rest_framework import serializers


class TokenObtainRequest(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, write_only=True)


class TokenPairResponse(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class TokenObtainResponse(TokenPairResponse):
    device_token = serializers.CharField(
        help_text="Send back in the X-Device-Token header of later logins: this client then escapes "
        "a lockout caused by failures elsewhere."
    )


class RefreshRequest(serializers.Serializer):
    refresh = serializers.CharField(max_length=4096)


class MeResponse(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    role = serializers.CharField()
    permissions = serializers.ListField(child=serializers.CharField())

"""The JWT life-cycle endpoints: ``auth/token``, ``auth/token/refresh``, ``auth/logout``, ``auth/me``."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.tokens import Token

from accounts import serializers
from accounts.selectors import user_identity
from accounts.tokens import token_logout, token_obtain, token_refresh
from agentplatform.permissions import Requires


class TokenObtainView(APIView):
    """Username and password in, an access and a refresh token out."""

    authentication_classes = []  # the credentials are in the body
    permission_classes = [AllowAny]
    throttle_scope = "auth.token"

    @extend_schema(request=serializers.TokenObtainRequest, responses={200: serializers.TokenObtainResponse})
    def post(self, request):
        body = serializers.TokenObtainRequest(data=request.data)
        body.is_valid(raise_exception=True)
        pair = token_obtain(request=request, **body.validated_data)
        return Response(pair)


class TokenRefreshView(APIView):
    """A refresh token in, a new pair out; the presented refresh token is spent."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_scope = "auth.refresh"

    @extend_schema(request=serializers.RefreshRequest, responses={200: serializers.TokenPairResponse})
    def post(self, request):
        body = serializers.RefreshRequest(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(token_refresh(raw_refresh=body.validated_data["refresh"], request=request))


class LogoutView(APIView):
    """Revokes the given refresh token and the access token of this request."""

    permission_classes = [Requires()]
    throttle_scope = "auth.refresh"

    @extend_schema(request=serializers.RefreshRequest, responses={204: None})
    def post(self, request):
        body = serializers.RefreshRequest(data=request.data)
        body.is_valid(raise_exception=True)
        access = request.auth if isinstance(request.auth, Token) else None
        token_logout(
            user=request.user, raw_refresh=body.validated_data["refresh"], access_token=access, request=request
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    """The caller's identity, role and permissions (people and agents alike)."""

    permission_classes = [Requires()]
    throttle_scope = "auth.me"

    @extend_schema(responses={200: serializers.MeResponse})
    def get(self, request):
        return Response(user_identity(user=request.user))

from django.urls import path

from accounts import api

app_name = "accounts"
urlpatterns = [
    path("token", api.TokenObtainView.as_view(), name="token"),
    path("token/refresh", api.TokenRefreshView.as_view(), name="token-refresh"),
    path("logout", api.LogoutView.as_view(), name="logout"),
    path("me", api.MeView.as_view(), name="me"),
]

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.template.response import TemplateResponse
from django.utils import timezone

from accounts.models import ApiKey, LoginFailureCount, User
from accounts.services import api_key_create, api_key_revoke, user_role_group_sync


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ("prefix", "name", "created_at", "expires_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # keys are issued from the API key page, which shows the key once


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "email", "role", "is_staff", "is_active", "last_login")
    list_filter = ("role", "is_staff", "is_superuser", "is_active")
    fieldsets = (*DjangoUserAdmin.fieldsets, ("Platform", {"fields": ("role",)}))
    add_fieldsets = (*DjangoUserAdmin.add_fieldsets, ("Platform", {"fields": ("role",)}))
    inlines = (ApiKeyInline,)

    def save_model(self, request, obj, form, change):
        obj._changed_by = request.user  # the role-change audit names who did it
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # The form's group list was saved after the user: put the role's group back in line.
        user_role_group_sync(user=form.instance)


class ApiKeyAddForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ("user", "name", "expires_at")

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return expires_at

    def clean_user(self):
        user = self.cleaned_data["user"]
        if not user.is_active:
            raise forms.ValidationError("Keys can only be issued to active users.")
        return user


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created here (the key is shown once, on the page after saving) and revoked, never edited."""

    list_display = ("prefix", "name", "user", "created_at", "expires_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "user__role")
    search_fields = ("prefix", "name", "user__username")
    actions = ("revoke_selected",)
    raw_id_fields = ("user",)
    readonly_fields = ("prefix", "user", "created_at", "last_used_at", "revoked_at")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("user", "name", "expires_at")
        return ("prefix", "user", "name", "created_at", "expires_at", "last_used_at", "revoked_at")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the row is the trail of what the key did

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        api_key, raw_key = api_key_create(
            user=obj.user, name=obj.name, expires_at=obj.expires_at, actor=request.user, request=request
        )
        obj.pk, obj.prefix, obj.key_hash, obj.created_at = (
            api_key.pk,
            api_key.prefix,
            api_key.key_hash,
            api_key.created_at,
        )
        obj._state.adding = False
        request._created_api_key = raw_key  # lives for this response only; never stored

    def response_add(self, request, obj, post_url_continue=None):
        raw_key = getattr(request, "_created_api_key", None)
        if raw_key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "api_key": obj,
            "raw_key": raw_key,
            "opts": self.opts,
        }
        response = TemplateResponse(request, "accounts/apikey_created.html", context)
        response["Cache-Control"] = "no-store"  # the key must not linger in any cache
        return response

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_selected(self, request, queryset):
        revoked = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key, actor=request.user, request=request)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} API key(s).", messages.SUCCESS)


@admin.register(LoginFailureCount)
class LoginFailureCountAdmin(admin.ModelAdmin):
    """Login failure counters and locks: read-only; deleting a row lifts its lock (unlock by hand)."""

    list_display = ("scope", "label", "failures", "last_failure_at", "locked_until")
    list_filter = ("scope",)
    search_fields = ("label",)
    readonly_fields = ("key", "scope", "label", "failures", "last_failure_at", "locked_until")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

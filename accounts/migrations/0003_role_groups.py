"""One group per role. Their permissions are granted after every migrate (post_migrate), when all
apps' permissions exist: see accounts.services.role_groups_sync."""

from django.db import migrations

# Frozen copy: a migration must not depend on code that may change later.
ROLES = ("admin", "operator", "analyst", "agent")


def create_role_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    User = apps.get_model("accounts", "User")
    for role in ROLES:
        group, _ = Group.objects.get_or_create(name=f"role:{role}")
        # Users that existed before this migration join their role's group too.
        for user in User.objects.filter(role=role).iterator():
            user.groups.add(group)


def remove_role_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.filter(name__in=[f"role:{role}" for role in ROLES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_api_keys_token_version_denylist"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_role_groups, remove_role_groups)]

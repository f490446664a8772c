"""The traces list's "user" filter, newest first: an index on (user_id, start_time) of every partition."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("traces", "0002_seed_model_prices"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="trace",
            index=models.Index(fields=["user_id", "start_time"], name="traces_trace_user_start"),
        ),
    ]

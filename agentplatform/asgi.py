import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentplatform.settings")
application = get_asgi_application()

# Production refuses to serve with a wrong security configuration (agentplatform.checks).
from agentplatform.checks import startup_checks  # noqa: E402

startup_checks()

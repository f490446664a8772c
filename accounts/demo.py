"""Demo identities for ``make run``: an agent with an API key, so the API can be tried at once."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from accounts.models import ApiKey, User
from accounts.services import agent_create, api_key_create

DEMO_AGENT = "demo-agent"


def seed(*, stdout) -> None:
    """Idempotent: creates ``demo-agent`` and a key once; the key is kept in VAR_DIR (0600) for reuse."""
    key_file = Path(settings.VAR_DIR) / "demo-agent-key"
    agent = User.objects.filter(username=DEMO_AGENT).first()
    if agent is None:
        agent, _, raw_key = agent_create(username=DEMO_AGENT, key_name="make run demo")
    elif key_file.exists() and ApiKey.objects.usable().filter(user=agent).exists():
        raw_key = key_file.read_text().strip()
    else:
        _, raw_key = api_key_create(user=agent, name="make run demo")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(raw_key)
    key_file.chmod(0o600)
    stdout.write(
        f"Demo agent: curl -H 'Authorization: Api-Key {raw_key}' http://127.0.0.1:8000/api/v1/auth/me"
        f"  (key stored in {key_file})"
    )

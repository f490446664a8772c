"""``AsyncAgentOps``: the same client for asyncio agents.

The work that waits on the network already runs on the client's own threads, so the coroutines
that read memory or queue an event (``prompt``, ``result``, ``score``, ``audit``, ``metric``)
return at once without blocking the event loop; ``flush``, ``close``, ``refresh`` and a label's
first fetch, which may wait, run in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from agentops_client.client import AgentOps, Prompt
from agentops_client.evaluation import PRODUCTION


class AsyncAgentOps:
    """``await ops.prompt(...)``; ``async with AsyncAgentOps(...) as ops`` waits for the first payload."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, **options: Any) -> None:
        options.setdefault("init_timeout", 0)  # never block the event loop in a constructor
        self._client = AgentOps(base_url, api_key, **options)

    @property
    def sync(self) -> AgentOps:
        """The underlying thread-based client (same queues, same memory)."""
        return self._client

    async def start(self, timeout: float | None = None) -> bool:
        """Wait (off the event loop) for the first payload; True if it arrived within ``timeout``."""
        client = self._client
        if client.disabled:
            return False
        return await asyncio.to_thread(client._ready.wait, client.timeout if timeout is None else timeout)

    async def prompt(
        self,
        key: str,
        *,
        user_id: str,
        variables: Mapping[str, Any] | None = None,
        default: str | None = None,
        label: str | None = None,
    ) -> Prompt:
        client = self._client
        if label not in (None, PRODUCTION) and (key, label) not in client._store.labels:
            # The first use of another label may fetch it: off the event loop.
            return await asyncio.to_thread(
                client.prompt, key, user_id=user_id, variables=variables, default=default, label=label
            )
        return client.prompt(key, user_id=user_id, variables=variables, default=default, label=label)

    async def result(self, prompt: Prompt, **values: Any) -> str | None:
        return self._client.result(prompt, **values)

    async def score(self, name: str, value: float | str | bool, **values: Any) -> str | None:
        return self._client.score(name, value, **values)

    async def audit(self, action: str, **values: Any) -> str | None:
        return self._client.audit(action, **values)

    async def metric(self, operation: str, **values: Any) -> str | None:
        return self._client.metric(operation, **values)

    async def refresh(self) -> bool:
        return await asyncio.to_thread(self._client.refresh)

    async def flush(self, timeout: float | None = None) -> bool:
        return await asyncio.to_thread(self._client.flush, timeout)

    async def close(self, timeout: float | None = None) -> None:
        await asyncio.to_thread(self._client.close, timeout)

    def health(self) -> dict[str, Any]:
        return self._client.health()

    async def __aenter__(self) -> AsyncAgentOps:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

"""Supadata (https://supadata.ai): web scrape, map and crawl, and video transcripts.

Base URL and key are operator configuration (trusted); the URLs agents ask about are user input
and pass the SSRF guard's checks before they are handed to Supadata. Asynchronous jobs (crawls,
long transcripts) are polled within the call's deadline; errors come as
``{error, message, details}``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from django.conf import settings

from agentplatform.http import build_async_client, http_timeout
from enrichment.fetch import tls_context
from enrichment.providers.base import (
    JOB_FAILED,
    NO_TRANSCRIPT,
    TIMEOUT,
    UPSTREAM_UNAVAILABLE,
    Provider,
    ProviderError,
    ProviderRequest,
    error_for_status,
    transport_error,
)

WHAT = "Supadata"
_POLL_GROWTH = 2.0
_POLL_MAX_FACTOR = 4.0
_DONE = {"completed"}
_FAILED = {"failed", "cancelled", "error"}


class SupadataProvider(Provider):
    kind = "supadata"

    def __init__(self, *, base_url: str, api_key: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    def is_configured(self) -> bool:
        return bool(self.base_url and self.api_key)

    def describe(self) -> dict[str, Any]:
        return {"host": httpx.URL(self.base_url).host if self.base_url else None, "key_set": bool(self.api_key)}

    def _client(self) -> httpx.AsyncClient:
        return build_async_client(
            base_url=self.base_url,
            timeout=http_timeout(connect=min(self.timeout, 3.0), read=self.timeout),
            verify=tls_context(),
            headers={"x-api-key": self.api_key},
        )

    async def run(self, request: ProviderRequest, *, deadline: float) -> Any:
        async with self._client() as client:
            if request.operation == "scrape":
                body = await _json(await _send(client, "GET", "/web/scrape", params={"url": request.target}))
                return _page(body, fallback_url=request.target)
            if request.operation == "map":
                body = await _json(await _send(client, "GET", "/web/map", params={"url": request.target}))
                return {"url": request.target, "urls": [str(u) for u in body.get("urls", [])]}
            if request.operation == "crawl":
                return await self._crawl(client, request, deadline=deadline)
            if request.operation == "transcript":
                return await self._transcript(client, request, deadline=deadline)
        raise ValueError(f"unknown Supadata operation {request.operation!r}")

    async def _crawl(self, client: httpx.AsyncClient, request: ProviderRequest, *, deadline: float) -> dict:
        started = await _json(
            await _send(client, "POST", "/web/crawl", json={"url": request.target, "limit": request.params["limit"]})
        )
        job_id = _job_id(started)
        async for body in _poll(client, f"/web/crawl/{job_id}", deadline=deadline):
            status = str(body.get("status", "")).lower()
            if status in _FAILED:
                raise ProviderError(JOB_FAILED, f"The crawl job ended as {status}.")
            if status in _DONE:
                pages = [_page(page, fallback_url="") for page in body.get("pages") or []]
                # A paginated result says so with ``next``; the first page is what fits a deadline.
                return {
                    "url": request.target,
                    "job_id": job_id,
                    "status": status,
                    "pages": pages,
                    "truncated": bool(body.get("next")),
                }
        raise AssertionError("unreachable")  # pragma: no cover - _poll raises on deadline

    async def _transcript(self, client: httpx.AsyncClient, request: ProviderRequest, *, deadline: float) -> dict:
        params = {"url": request.target, "text": "true"}
        if request.params.get("lang"):
            params["lang"] = request.params["lang"]
        response = await _send(client, "GET", "/transcript", params=params)
        if response.status_code == 206:
            raise ProviderError(NO_TRANSCRIPT, "No transcript is available for this video.")
        body = await _json(response)
        if response.status_code == 202 or ("jobId" in body and "content" not in body):
            async for job in _poll(client, f"/transcript/{_job_id(body)}", deadline=deadline):
                status = str(job.get("status", "")).lower()
                if status in _FAILED:
                    raise ProviderError(NO_TRANSCRIPT, f"The transcript job ended as {status}.")
                if status in _DONE:
                    body = job
                    break
        return {"url": request.target, "lang": str(body.get("lang") or ""), "text": _transcript_text(body)}


async def _send(client: httpx.AsyncClient, method: str, path: str, **kwargs) -> httpx.Response:
    try:
        response = await client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise transport_error(exc, what=WHAT) from None
    error = error_for_status(response, what=WHAT)
    if error:
        raise error
    return response


async def _json(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        raise ProviderError(UPSTREAM_UNAVAILABLE, "Supadata did not answer JSON.") from None
    if not isinstance(body, dict):
        raise ProviderError(UPSTREAM_UNAVAILABLE, "Supadata answered an unexpected shape.")
    return body


def _job_id(body: dict) -> str:
    job_id = body.get("jobId")
    if not isinstance(job_id, str) or not job_id or "/" in job_id:
        raise ProviderError(UPSTREAM_UNAVAILABLE, "Supadata did not return a job id.")
    return job_id


async def _poll(client: httpx.AsyncClient, path: str, *, deadline: float):
    """Yield the job's status bodies until the caller stops; sleeps grow, bounded by the deadline."""
    interval = settings.SUPADATA_POLL_INTERVAL
    ceiling = interval * _POLL_MAX_FACTOR
    while True:
        yield await _json(await _send(client, "GET", path))
        remaining = deadline - time.monotonic()
        if remaining <= interval:
            raise ProviderError(TIMEOUT, "The Supadata job did not finish before the deadline.")
        await asyncio.sleep(interval)
        interval = min(ceiling, interval * _POLL_GROWTH)


def _page(body: dict, *, fallback_url: str) -> dict:
    return {
        "url": str(body.get("url") or fallback_url),
        "title": str(body.get("name") or body.get("title") or ""),
        "text": str(body.get("content") or ""),
    }


def _transcript_text(body: dict) -> str:
    content = body.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # chunks [{text, offset, duration, lang}] when text=false
        return " ".join(str(chunk.get("text", "")) for chunk in content if isinstance(chunk, dict)).strip()
    return ""

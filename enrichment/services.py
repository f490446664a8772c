"""Enrichment: outside context for agents, fetched concurrently, on time and safely.

``context_enrich`` plans one job per requested target, serves what it can from the shared cache,
runs the rest concurrently on one event loop (each job through its provider chain, each provider
behind its breaker and timeout) until the call's deadline, and reports whatever did not finish as
``timeout`` errors. One failing source never fails the call.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings
from django.core.cache import cache

from agentplatform.aio import run_async
from agentplatform.breakers import CircuitOpen, get_breaker
from audit.services import audit_log
from enrichment import health
from enrichment.fetch import guard_error
from enrichment.providers.base import (
    INVALID_TARGET,
    NOT_CONFIGURED,
    TIMEOUT,
    UNAVAILABLE,
    Provider,
    ProviderError,
    ProviderRequest,
)
from enrichment.providers.youtube import video_id, video_url
from enrichment.registry import provider_chains
from enrichment.ssrf import ForbiddenTarget, InvalidTarget, UrlGuard

CACHE_VERSION = "v1"


@dataclass
class Job:
    """One target of the request: which section it answers, which provider kind serves it."""

    section: str  # web.urls | web.queries | youtube | supadata.scrape | supadata.map | supadata.crawl | mcp
    kind: str  # provider chain: web | search | youtube | supadata | mcp
    request: ProviderRequest
    label: str  # the target as the caller will recognise it in errors
    guard_target: bool = False  # user URL handed to a third party: check it before sending
    error: ProviderError | None = None  # refused while planning

    @property
    def source(self) -> str:
        return {"web.urls": "web", "web.queries": "search"}.get(self.section, self.section)

    @property
    def cache_key(self) -> str:
        material = json.dumps(
            [self.request.operation, self.request.target, self.request.params], sort_keys=True, default=str
        )
        digest = hashlib.sha256(material.encode()).hexdigest()[:40]
        return f"enrichment:{CACHE_VERSION}:{self.kind}:{digest}"


@dataclass
class Outcome:
    job: Job
    value: Any = None
    provider: str | None = None
    cached: bool = False
    error: ProviderError | None = None
    calls: list[health.CallOutcome] = field(default_factory=list)


class _Refused:
    """A provider error returned (not raised) through the breaker, so it is not counted.

    Either permanent (the provider refused this request: no other provider is tried), or a timeout
    the call's own short deadline caused (``permanent=False``: reported as an error of the call).
    """

    def __init__(self, error: ProviderError, *, permanent: bool = True) -> None:
        self.error = error
        self.permanent = permanent


# --- planning -----------------------------------------------------------------------------------


def normalise_url(value: str) -> str:
    """Lower-case scheme and host, default port dropped, fragment removed: one cache key per page."""
    url = httpx.URL(value.strip())
    return str(url.copy_with(fragment=None))


def normalise_query(value: str) -> str:
    return " ".join(value.split())


def _url_job(section: str, kind: str, operation: str, raw: str, guard: UrlGuard, **params) -> Job:
    label = str(raw)[:500]
    try:
        target = normalise_url(raw)
        guard.parse(target)
    except (ForbiddenTarget, InvalidTarget) as exc:
        return Job(section, kind, ProviderRequest(operation, label), label, error=guard_error(exc))
    except (httpx.InvalidURL, TypeError, ValueError):
        return Job(
            section, kind, ProviderRequest(operation, label), label, error=ProviderError(INVALID_TARGET, "Not a URL.")
        )
    return Job(section, kind, ProviderRequest(operation, target, params), label, guard_target=kind != "web")


def plan_jobs(spec: dict[str, Any], *, guard: UrlGuard) -> list[Job]:
    """One job per target in a validated request spec."""
    jobs: list[Job] = []
    web = spec.get("web") or {}
    for url in web.get("urls", []):
        jobs.append(_url_job("web.urls", "web", "page", url, guard))
    for query in web.get("queries", []):
        text = normalise_query(query)
        jobs.append(Job("web.queries", "search", ProviderRequest("search", text), text[:500]))
    for video in (spec.get("youtube") or {}).get("videos", []):
        found = video_id(video)
        if found is None:
            request = ProviderRequest("transcript", str(video)[:500])
            error = ProviderError(INVALID_TARGET, "Not a YouTube video id or URL.")
            jobs.append(Job("youtube", "youtube", request, str(video)[:500], error=error))
        else:
            jobs.append(Job("youtube", "youtube", ProviderRequest("transcript", video_url(found)), found))
    supadata = spec.get("supadata") or {}
    for url in supadata.get("scrape", []):
        jobs.append(_url_job("supadata.scrape", "supadata", "scrape", url, guard))
    for url in supadata.get("map", []):
        jobs.append(_url_job("supadata.map", "supadata", "map", url, guard))
    for crawl in supadata.get("crawl", []):
        jobs.append(_url_job("supadata.crawl", "supadata", "crawl", crawl["url"], guard, limit=crawl["limit"]))
    for call in spec.get("mcp", []):
        params = {"server": call["server"], "tool": call["tool"], "arguments": call.get("arguments") or {}}
        label = f"{call['server']}/{call['tool']}"
        jobs.append(Job("mcp", "mcp", ProviderRequest("tool", label, params), label))
    return jobs


# --- running ------------------------------------------------------------------------------------


# The provider's own timer ends this long before the call's deadline, so that a call cut by the
# deadline ends as this provider's timeout (judged below) rather than as a cancellation.
_DEADLINE_MARGIN_SECONDS = 0.05


async def _attempt(provider: Provider, job: Job, *, deadline: float) -> Any:
    """One provider call inside its breaker: transient failures raise (and count), permanent return.

    A timeout counts against the provider when it waited its whole ``timeout``, or at least
    ``ENRICHMENT_SLOW_CALL_SECONDS`` before the call's deadline cut it: a short ``deadline_ms`` says
    nothing about the provider, but seconds of silence do, so a hung provider opens its breaker
    whatever its timeout is next to the default deadline.
    """
    started = time.monotonic()
    budget = min(provider.timeout, deadline - started - _DEADLINE_MARGIN_SECONDS)
    if budget <= 0:
        return _Refused(ProviderError(TIMEOUT, "No time was left before the deadline."), permanent=False)
    try:
        async with asyncio.timeout(budget):
            return await provider.run(job.request, deadline=time.monotonic() + budget)
    except TimeoutError:
        error = ProviderError(TIMEOUT, f"No answer within {budget:.2f} s.")
        waited = time.monotonic() - started
        if budget >= provider.timeout or waited >= settings.ENRICHMENT_SLOW_CALL_SECONDS:
            raise error from None
        return _Refused(error, permanent=False)
    except ProviderError as exc:
        if exc.counts_against_provider:
            raise
        return _Refused(exc)


async def _run_job(job: Job, chain: list[Provider], *, guard: UrlGuard, deadline: float) -> Outcome:
    outcome = Outcome(job)
    if job.guard_target:
        try:
            await guard.check(job.request.target)
        except (ForbiddenTarget, InvalidTarget) as exc:
            outcome.error = guard_error(exc)
            return outcome
    last_error: ProviderError | None = None
    for provider in chain:
        if not provider.is_configured():
            last_error = last_error or ProviderError(NOT_CONFIGURED, f"The {provider.name} provider is not configured.")
            continue
        started = time.monotonic()
        breaker = get_breaker(provider.breaker_name)
        try:
            value = await breaker.call_async(_attempt, provider, job, deadline=deadline)
        except CircuitOpen as exc:
            last_error = ProviderError(
                UNAVAILABLE, f"The {provider.name} provider is unavailable (circuit open).", retry_after=exc.retry_after
            )
            outcome.calls.append(_call(provider, health.UNAVAILABLE, started, UNAVAILABLE))
            continue  # the next provider of the chain, if any, serves
        except ProviderError as exc:
            last_error = exc
            outcome.calls.append(_call(provider, health.ERROR, started, exc.code))
            continue
        if isinstance(value, _Refused) and not value.permanent:
            last_error = value.error  # the deadline is (nearly) spent: the next provider gets no time either
            outcome.calls.append(_call(provider, health.ERROR, started, value.error.code))
            continue
        if isinstance(value, _Refused):
            outcome.calls.append(_call(provider, health.REJECTED, started, value.error.code))
            outcome.error = value.error
            return outcome
        outcome.calls.append(_call(provider, health.OK, started))
        outcome.value, outcome.provider = value, provider.name
        return outcome
    outcome.error = last_error or ProviderError(NOT_CONFIGURED, "No provider is configured for this source.")
    return outcome


def _call(provider: Provider, kind: str, started: float, code: str = "") -> health.CallOutcome:
    return health.CallOutcome(
        provider=provider.name, outcome=kind, elapsed_ms=(time.monotonic() - started) * 1000, at=time.time(), code=code
    )


async def run_jobs(
    jobs: list[Job], *, chains: dict[str, list[Provider]], guard: UrlGuard, deadline: float
) -> list[Outcome]:
    """Run every job concurrently; jobs unfinished at ``deadline`` become ``timeout`` errors."""
    tasks = [
        asyncio.ensure_future(_run_job(job, chains.get(job.kind, []), guard=guard, deadline=deadline)) for job in jobs
    ]
    if not tasks:
        return []
    done, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    outcomes: list[Outcome] = []
    for job, task in zip(jobs, tasks, strict=True):
        if task in done and not task.cancelled():
            outcomes.append(task.result())
        else:
            outcomes.append(Outcome(job, error=ProviderError(TIMEOUT, "Not finished before the call's deadline.")))
    return outcomes


# --- the service --------------------------------------------------------------------------------


def context_enrich(*, actor, spec: dict[str, Any], request=None, guard: UrlGuard | None = None) -> dict[str, Any]:
    """Fetch the outside context ``spec`` asks for, within its deadline; audited, never raises for a source."""
    started = time.monotonic()
    deadline_ms = min(
        spec.get("deadline_ms") or settings.ENRICHMENT_DEFAULT_DEADLINE_MS, settings.ENRICHMENT_MAX_DEADLINE_MS
    )
    deadline = started + deadline_ms / 1000
    guard = guard or UrlGuard.from_settings()
    chains = provider_chains()
    jobs = plan_jobs(spec, guard=guard)

    outcomes: dict[int, Outcome] = {}
    cacheable = {i: job for i, job in enumerate(jobs) if job.error is None and _ttl(job, chains)}
    hits = _cache_get_many([job.cache_key for job in cacheable.values()])
    to_run: list[tuple[int, Job]] = []
    for index, job in enumerate(jobs):
        if job.error is not None:
            outcomes[index] = Outcome(job, error=job.error)
        elif index in cacheable and job.cache_key in hits:
            hit = hits[job.cache_key]
            outcomes[index] = Outcome(job, value=hit["value"], provider=hit["provider"], cached=True)
        else:
            to_run.append((index, job))

    if to_run:
        ran = run_async(run_jobs([job for _, job in to_run], chains=chains, guard=guard, deadline=deadline))
        for (index, _job), outcome in zip(to_run, ran, strict=True):
            outcomes[index] = outcome

    ordered = [outcomes[i] for i in range(len(jobs))]
    _cache_results(ordered, chains)
    health.record([call for outcome in ordered for call in outcome.calls])
    body = _response(ordered, elapsed_ms=round((time.monotonic() - started) * 1000, 1))
    _audit(actor=actor, request=request, outcomes=ordered, body=body, deadline_ms=deadline_ms)
    return body


def _ttl(job: Job, chains: dict[str, list[Provider]]) -> int:
    chain = chains.get(job.kind) or []
    return chain[0].cache_ttl if chain else 0


def _cache_get_many(keys: list[str]) -> dict[str, Any]:
    if not keys:
        return {}
    try:
        return cache.get_many(keys)
    except Exception:  # a cache outage costs fresh fetches, never the call
        return {}


def _cache_results(outcomes: list[Outcome], chains: dict[str, list[Provider]]) -> None:
    by_ttl: dict[int, dict[str, Any]] = defaultdict(dict)
    for outcome in outcomes:
        if outcome.error is None and not outcome.cached and outcome.provider:
            ttl = _ttl(outcome.job, chains)
            if ttl:
                by_ttl[ttl][outcome.job.cache_key] = {"value": outcome.value, "provider": outcome.provider}
    for ttl, entries in by_ttl.items():
        try:
            cache.set_many(entries, ttl)
        except Exception:  # see _cache_get_many
            return


def _clip(text: str) -> str:
    limit = settings.ENRICHMENT_TEXT_MAX_CHARS
    return text if len(text) <= limit else text[:limit]


def _response(outcomes: list[Outcome], *, elapsed_ms: float) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_snippets": [],
        "youtube_insights": [],
        "supadata": {"scrape": [], "map": [], "crawl": []},
        "mcp": [],
        "errors": [],
        "partial": False,
        "elapsed_ms": elapsed_ms,
    }
    for outcome in outcomes:
        job = outcome.job
        if outcome.error is not None:
            body["errors"].append({"source": job.source, "target": job.label, **outcome.error.as_dict()})
            continue
        value, marks = outcome.value, {"provider": outcome.provider, "cached": outcome.cached}
        if job.section == "web.urls":
            body["external_snippets"].append(
                {"source": "web", "url": value["url"], "title": value["title"], "text": _clip(value["text"]), **marks}
            )
        elif job.section == "web.queries":
            for hit in value["results"]:
                body["external_snippets"].append(
                    {
                        "source": "search",
                        "url": hit["url"],
                        "title": hit["title"],
                        "text": _clip(hit["text"]),
                        "query": value["query"],
                        **marks,
                    }
                )
        elif job.section == "youtube":
            body["youtube_insights"].append(
                {"video": job.label, "lang": value["lang"], "text": _clip(value["text"]), **marks}
            )
        elif job.section == "supadata.scrape":
            body["supadata"]["scrape"].append({**value, "text": _clip(value["text"]), **marks})
        elif job.section == "supadata.map":
            body["supadata"]["map"].append({**value, **marks})
        elif job.section == "supadata.crawl":
            pages = [{**page, "text": _clip(page["text"])} for page in value["pages"]]
            body["supadata"]["crawl"].append({**value, "pages": pages, **marks})
        elif job.section == "mcp":
            body["mcp"].append({**value, **marks})
    body["partial"] = bool(body["errors"])
    return body


def _audit(*, actor, request, outcomes: list[Outcome], body: dict, deadline_ms: int) -> None:
    requested = Counter(outcome.job.source for outcome in outcomes)
    served = Counter(outcome.provider for outcome in outcomes if outcome.provider)
    audit_log(
        actor=actor,
        action="enrichment.context_fetched",
        resource_type="enrichment",
        severity="warning" if body["partial"] else "info",
        success=not body["partial"],
        details={
            # Targets and counts, never fetched content.
            "requested": dict(requested),
            "served_by": dict(served),
            "cache_hits": sum(1 for outcome in outcomes if outcome.cached),
            "errors": [{"source": e["source"], "target": e["target"][:200], "code": e["code"]} for e in body["errors"]],
            "partial": body["partial"],
            "deadline_ms": deadline_ms,
            "elapsed_ms": body["elapsed_ms"],
        },
        request=request,
    )

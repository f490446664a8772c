"""``AgentOps``: prompts answered from memory, events delivered in the background, never a raise.

See the package README for the tour. The rules this module keeps:

- ``prompt()`` reads only memory: the features payload and the labels the refresher thread keeps
  current (``If-None-Match``, every ``refresh_interval`` seconds). A returning user's answer is
  memoised per payload, so the steady state is one dictionary lookup.
- Nothing the platform does (down, slow, 500s, malformed answers) raises in the caller: at start
  without a payload ``prompt()`` answers the caller's ``default`` (source ``default``); later, the
  last payload keeps serving (source ``cache``).
- Every network call has a timeout and happens on a background thread; the one exception is the
  first use of a label other than ``production``, fetched once (bounded by ``timeout``) when the
  platform was reachable at the last contact, so that the first answer is the label's.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from agentops_client import telemetry
from agentops_client._version import __version__
from agentops_client.delivery import Outbox
from agentops_client.evaluation import PRODUCTION, namespace_hash
from agentops_client.events import event_kinds, iso_time
from agentops_client.store import ABSENT, Label, Store
from agentops_client.templating import compile_prompt

logger = logging.getLogger("agentops_client")

SOURCE_EXPERIMENT = "experiment"
SOURCE_LABEL = "label"
SOURCE_DEFAULT = "default"
SOURCE_CACHE = "cache"


@dataclass(frozen=True, slots=True)
class Prompt:
    """The prompt a user gets now, and where it came from."""

    key: str
    user_id: str
    content: str | None
    compiled: str | None  # ``content`` with the variables filled in (``content`` when none were given)
    version: int | None  # the registry's version number (None for the caller's default)
    label: str | None  # the label served (None inside an experiment and for the default)
    experiment: str | None
    variant: str | None
    source: str  # experiment | label | default | cache
    config: Mapping[str, Any] = field(default_factory=dict)
    missing_variables: tuple[str, ...] = ()  # placeholders no variable filled (left as they are)

    @property
    def in_experiment(self) -> bool:
        return self.experiment is not None


class AgentOps:
    """The platform client for one agent process. Thread-safe; make one and share it.

    ``base_url`` and ``api_key`` default to ``AGENTOPS_URL`` and ``AGENTOPS_API_KEY``. Without a
    URL the client serves defaults and drops events (logged once), so an agent runs unconfigured.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        refresh_interval: float = 30.0,
        flush_interval: float = 1.0,
        timeout: float = 5.0,
        init_timeout: float | None = None,
        batch_size: int = 1000,
        max_queue: int = 100_000,
        max_retry_delay: float = 30.0,
        max_retry_after: float = 300.0,
        close_timeout: float = 5.0,
        memo_size: int = 100_000,
        exposure_memory: int = 200_000,
    ) -> None:
        self.base_url = (base_url or os.environ.get("AGENTOPS_URL") or "").rstrip("/")
        api_key = api_key or os.environ.get("AGENTOPS_API_KEY") or ""
        self.refresh_interval = refresh_interval
        self.timeout = timeout
        self.close_timeout = close_timeout
        self.batch_size = max(1, min(batch_size, 1000))
        self.memo_size = memo_size
        self.exposure_memory = exposure_memory
        # Prefix of the event ids this client makes: unique per client, so ids never collide across processes.
        self.client_id = uuid.uuid4().hex[:16]
        self._sequence = itertools.count(1)
        self._store = Store(on_change=self._forget_answers, on_contact=self._contact, log_once=self._log_once)
        self._memo: dict[tuple, Prompt] = {}
        self._exposed: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._exposed_lock = threading.Lock()
        self._reachable: bool | None = None  # None: never tried
        self._last_error: str | None = None
        self._logged: set[str] = set()
        self._closed = False
        self._closing = threading.Event()
        self._refresh_wake = threading.Event()
        self._ready = threading.Event()
        self.disabled = not self.base_url
        kinds = event_kinds()
        self._kinds = kinds
        self._exposures, self._results, self._scores, self._audit, self._metrics = kinds
        if self.disabled:
            logger.warning("agentops: no base_url (or AGENTOPS_URL): serving defaults, dropping events")
            self._outbox = None
            return
        headers = {"Authorization": f"Api-Key {api_key}", "User-Agent": f"agentops-client/{__version__}"}
        limits = httpx.Timeout(timeout, connect=min(timeout, 2.0))
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=limits)
        self._http_refresh = httpx.Client(base_url=self.base_url, headers=headers, timeout=limits)
        self._http_caller = httpx.Client(base_url=self.base_url, headers=headers, timeout=limits)
        self._caller_lock = threading.Lock()
        self._outbox = Outbox(
            http=self._http,
            kinds=kinds,
            batch_size=self.batch_size,
            max_queue=max_queue,
            flush_interval=flush_interval,
            max_retry_delay=max_retry_delay,
            max_retry_after=max_retry_after,
            on_contact=self._contact,
        )
        self._refresher = threading.Thread(target=self._refresh_loop, name="agentops-refresh", daemon=True)
        self._refresher.start()
        self._at_exit = _closer(weakref.ref(self))
        atexit.register(self._at_exit)
        self._ready.wait(timeout if init_timeout is None else init_timeout)

    # --- prompts ---------------------------------------------------------------------------------
    def prompt(
        self,
        key: str,
        *,
        user_id: str,
        variables: Mapping[str, Any] | None = None,
        default: str | None = None,
        label: str | None = None,
    ) -> Prompt:
        """The prompt ``user_id`` gets for ``key`` now, from memory (see the module's rules)."""
        try:
            memo = self._memo
            answer = memo.get((key, user_id, label, default))
            if answer is None:
                answer = self._evaluate(key, user_id, label, default)
                if len(memo) >= self.memo_size:
                    memo.clear()
                memo[(key, user_id, label, default)] = answer
            if variables is not None and answer.content is not None:
                compiled, missing = compile_prompt(answer.content, variables)
                if missing:
                    self._log_once(
                        f"missing:{key}:{answer.version}",
                        "agentops: prompt %r (version %s) has placeholders without a variable: %s",
                        key,
                        answer.version,
                        ", ".join(missing),
                    )
                answer = replace(answer, compiled=compiled, missing_variables=missing)
            if telemetry.AVAILABLE:
                telemetry.annotate_current_span(answer)
            return answer
        except Exception:  # a bug here must not stop the agent: it gets its default
            self._log_once("prompt-error", "agentops: prompt() failed; serving the default", exc_info=True)
            return Prompt(key, user_id, default, default, None, None, None, None, SOURCE_DEFAULT)

    def _evaluate(self, key: str, user_id: str, label: str | None, default: str | None) -> Prompt:
        store = self._store
        features = store.features
        stale = not store.fresh
        feature = features.get(key) if features is not None else None
        if feature is not None and user_id and feature.rules:
            user_hash = namespace_hash(user_id)
            for rule in feature.rules:
                variation = rule.variation_for(user_id, user_hash)
                if variation is None:
                    continue
                self._expose(rule.experiment, variation.key, user_id)
                content = variation.content if isinstance(variation.content, str) else None
                return Prompt(
                    key,
                    user_id,
                    content,
                    content,
                    variation.version,
                    None,
                    rule.experiment,
                    variation.key,
                    SOURCE_CACHE if stale else SOURCE_EXPERIMENT,
                    variation.config,
                )
        wanted = label or PRODUCTION
        if wanted == PRODUCTION:
            if feature is not None and isinstance(feature.production, str):
                source = SOURCE_CACHE if stale else SOURCE_LABEL
                return Prompt(
                    key,
                    user_id,
                    feature.production,
                    feature.production,
                    feature.production_version,
                    PRODUCTION,
                    None,
                    None,
                    source,
                    feature.production_config,
                )
        else:
            served = self._label(key, wanted)
            if served is not None and served is not ABSENT:
                source = SOURCE_CACHE if stale else SOURCE_LABEL
                return Prompt(
                    key,
                    user_id,
                    served.content,
                    served.content,
                    served.version,
                    wanted,
                    None,
                    None,
                    source,
                    served.config,
                )
        return Prompt(key, user_id, default, default, None, None, None, None, SOURCE_DEFAULT)

    def _expose(self, experiment: str, variant: str, user_id: str) -> None:
        pair = (experiment, user_id)
        if pair in self._exposed:
            return
        with self._exposed_lock:
            if pair in self._exposed:
                return
            self._exposed[pair] = None
            if len(self._exposed) > self.exposure_memory:
                self._exposed.popitem(last=False)
        if self._outbox is not None:
            self._outbox.put(self._exposures, (experiment, variant, user_id, time.time()))

    def _label(self, key: str, label: str) -> Label | None:
        """A label other than production: fetched once on first use (if the platform answers), then kept fresh."""
        labels = self._store.labels
        if (key, label) in labels:
            return labels[(key, label)]
        labels[(key, label)] = None  # the refresher fetches it from now on
        if self.disabled or self._reachable is False:
            self._refresh_wake.set()
            return None
        with self._caller_lock:
            return self._store.fetch_label(self._http_caller, key, label)

    # --- the refresher ---------------------------------------------------------------------------
    def _refresh_loop(self) -> None:
        while not self._closing.is_set():
            try:
                self._refresh_once()
            except Exception:
                logger.exception("agentops: refresh failed unexpectedly")
            self._ready.set()
            self._refresh_wake.wait(self.refresh_interval)
            self._refresh_wake.clear()

    def _refresh_once(self) -> None:
        self._store.refresh(self._http_refresh, stop=self._closing)

    def refresh(self) -> bool:
        """Fetch the payload and labels now, in the caller's thread (bounded by ``timeout``); True if fresh."""
        if self.disabled:
            return False
        try:
            self._refresh_once()
        except Exception:
            logger.exception("agentops: refresh failed unexpectedly")
        return self._store.fresh

    def _forget_answers(self) -> None:
        """The payload or a label changed, or its freshness did (answers change source): recompute."""
        self._memo = {}

    def _contact(self, reached: bool, error: str | None) -> None:
        recovered = reached and self._reachable is False
        self._reachable = reached
        if error is not None:
            self._last_error = error
        elif reached:
            self._last_error = None  # health() tells what is degraded now, not what was
        if recovered and not self._store.fresh:
            self._refresh_wake.set()  # the platform is back: refresh the cached payload now

    # --- events ----------------------------------------------------------------------------------
    def _event_id(self) -> str:
        return f"{self.client_id}-{next(self._sequence)}"

    def result(
        self,
        prompt: Prompt,
        *,
        success: bool | None = None,
        response_time_ms: float | None = None,
        tokens: int | None = None,
        quality_score: float | None = None,
        user_feedback: int | None = None,
        model: str | None = None,
        event_id: str | None = None,
    ) -> str | None:
        """Queue the outcome of a turn served ``prompt``; its event id, or None outside an experiment."""
        if prompt.experiment is None or self._outbox is None:
            return None
        event_id = event_id or self._event_id()
        self._outbox.put(
            self._results,
            (
                prompt.experiment,
                event_id,
                prompt.user_id,
                prompt.variant,
                time.time(),
                success,
                response_time_ms,
                tokens,
                quality_score,
                user_feedback,
                model,
            ),
        )
        return event_id

    def score(
        self,
        name: str,
        value: float | str | bool,
        *,
        trace_id: str | None = None,
        observation_id: str | None = None,
        user_id: str | None = None,
        comment: str | None = None,
        event_id: str | None = None,
    ) -> str | None:
        """Queue a score for ``POST /api/v1/scores`` (needs the platform's evaluations capability)."""
        if self._outbox is None:
            return None
        event_id = event_id or self._event_id()
        row: dict[str, Any] = {"event_id": event_id, "name": name, "value": value, "occurred_at": iso_time(time.time())}
        for field_name, given in (
            ("trace_id", trace_id),
            ("observation_id", observation_id),
            ("user_id", user_id),
            ("comment", comment),
        ):
            if given is not None:
                row[field_name] = given
        self._outbox.put(self._scores, row)
        return event_id

    def audit(
        self,
        action: str,
        *,
        resource: tuple[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
        severity: str = "info",
        success: bool = True,
        event_id: str | None = None,
    ) -> str | None:
        """Queue an audit event (the actor is this client's API key)."""
        if self._outbox is None:
            return None
        event_id = event_id or str(uuid.uuid4())
        row: dict[str, Any] = {
            "event_id": event_id,
            "action": action,
            "severity": severity,
            "success": success,
            "occurred_at": iso_time(time.time()),
        }
        if resource is not None:
            row["resource_type"], row["resource_id"] = str(resource[0]), str(resource[1])
        if details is not None:
            row["details"] = dict(details)
        self._outbox.put(self._audit, row)
        return event_id

    def metric(
        self, operation: str, *, duration_ms: float, success: bool = True, event_id: str | None = None
    ) -> str | None:
        """Queue a timed operation (``monitoring/operations``)."""
        if self._outbox is None:
            return None
        event_id = event_id or self._event_id()
        self._outbox.put(self._metrics, (operation, duration_ms, success, time.time(), event_id))
        return event_id

    # --- life cycle ------------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Deliver everything queued so far; False if ``timeout`` (default ``close_timeout``) ran out."""
        if self._outbox is None:
            return True
        try:
            return self._outbox.flush(self.close_timeout if timeout is None else timeout)
        except Exception:
            logger.exception("agentops: flush failed unexpectedly")
            return False

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued (within ``timeout``), stop the threads. Also runs at interpreter exit."""
        if self._closed:
            return
        self._closed = True
        if self._outbox is None:
            return
        try:
            atexit.unregister(self._at_exit)
            self._closing.set()
            self._refresh_wake.set()
            self._outbox.stop(self.close_timeout if timeout is None else timeout)
            self._refresher.join(timeout=self.timeout + 1)
            for http in (self._http, self._http_refresh, self._http_caller):
                http.close()
        except Exception:
            logger.exception("agentops: close failed unexpectedly")

    def __enter__(self) -> AgentOps:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def health(self) -> dict[str, Any]:
        """What is degraded: the payload's freshness, the platform's reachability, the queues."""
        kinds = self._kinds
        store = self._store
        payload = "none" if self.disabled or store.features is None else "fresh" if store.fresh else "cache"
        degraded = self.disabled or payload != "fresh" or self._reachable is False
        return {
            "status": "disabled" if self.disabled else ("degraded" if degraded else "ok"),
            "payload": payload,
            "platform_reachable": self._reachable,
            "last_error": self._last_error,
            "last_refresh_at": store.last_refresh_at,
            "queued": {kind.name: len(kind.queue) for kind in kinds},
            "dropped": {kind.name: kind.dropped for kind in kinds},
            "delivered": {kind.name: kind.delivered for kind in kinds},
            "duplicates": {kind.name: kind.duplicates for kind in kinds},
            "rejected": {kind.name: kind.rejected for kind in kinds},
            "retries": self._outbox.retries if self._outbox is not None else 0,
        }

    def _log_once(self, key: str, message: str, *args: Any, exc_info: bool = False) -> None:
        if key in self._logged:
            return
        self._logged.add(key)
        logger.warning(message + " (logged once)", *args, exc_info=exc_info)


def _closer(client_ref: weakref.ref) -> Any:
    def close_at_exit() -> None:
        client = client_ref()
        if client is not None:
            client.close()

    return close_at_exit

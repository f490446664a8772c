"""What ``prompt()`` reads: the compiled features payload and the labels, kept current by revalidation.

``Store.refresh`` fetches ``GET /api/v1/experiments/growthbook-features`` with ``If-None-Match``
(a 304 when nothing changed) and revalidates every label in use the same way
(``GET /api/v1/prompts/{key}/labels/{label}``). ``fresh`` says whether the last refresh reached the
platform: when it did not, answers keep coming from what is stored, with source ``cache``.
Nothing here raises on the platform's account; every failure is reported to ``on_contact``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

import httpx

from agentops_client.evaluation import Feature, compile_payload

FEATURES_PATH = "/api/v1/experiments/growthbook-features"


@dataclass(frozen=True, slots=True)
class Label:
    version: int
    content: str
    config: Mapping[str, Any]  # read-only: every answer of the label shares it
    etag: str | None


ABSENT = Label(version=0, content="", config=MappingProxyType({}), etag=None)  # the platform answered 404


class Store:
    def __init__(
        self,
        *,
        on_change: Callable[[], None],
        on_contact: Callable[[bool, str | None], None],
        log_once: Callable[..., None],
    ) -> None:
        self.on_change = on_change  # stored answers may differ now
        self.on_contact = on_contact
        self.log_once = log_once
        self.features: dict[str, Feature] | None = None
        self.features_etag: str | None = None
        # (prompt key, label) -> the label's version, ABSENT, or None (in use, not fetched yet)
        self.labels: dict[tuple[str, str], Label | None] = {}
        self.fresh = False  # the last refresh reached the platform
        self.last_refresh_at: float | None = None

    def refresh(self, http: httpx.Client, *, stop: threading.Event) -> None:
        """Revalidate the payload, then every label in use (each call bounded by ``http``'s timeout)."""
        headers = {"If-None-Match": self.features_etag} if self.features_etag else {}
        fresh = False
        changed = False
        try:
            response = http.get(FEATURES_PATH, headers=headers)
        except httpx.HTTPError as error:
            self.on_contact(False, f"{type(error).__name__}: {error}")
        else:
            if response.status_code == 304:
                fresh = True
            elif response.status_code == 200:
                try:
                    features = compile_payload(response.json())
                except ValueError:
                    self.log_once(
                        "payload", "agentops: %s answered a body that is not a features payload", FEATURES_PATH
                    )
                else:
                    self.features = features
                    self.features_etag = response.headers.get("ETag")
                    fresh = changed = True
            else:
                self.log_once(
                    f"payload:{response.status_code}", "agentops: %s answered %d", FEATURES_PATH, response.status_code
                )
            self.on_contact(fresh, None if fresh else f"HTTP {response.status_code} from {FEATURES_PATH}")
        if fresh:
            self.last_refresh_at = time.time()
        if fresh != self.fresh:
            self.fresh = fresh
            changed = True  # answers change source (cache <-> experiment or label)
        if changed:
            self.on_change()
        for key, label in list(self.labels):
            if stop.is_set():
                return
            self.fetch_label(http, key, label)

    def fetch_label(self, http: httpx.Client, key: str, label: str) -> Label | None:
        """The label's current version (revalidated with its ETag); what is known when the platform fails."""
        known = self.labels.get((key, label))
        headers = {"If-None-Match": known.etag} if known is not None and known.etag else {}
        path = f"/api/v1/prompts/{quote(key, safe='')}/labels/{quote(label, safe='')}"
        try:
            response = http.get(path, headers=headers)
        except httpx.HTTPError as error:
            self.on_contact(False, f"{type(error).__name__}: {error}")
            return known
        status = response.status_code
        if status == 304:
            self.on_contact(True, None)
            return known
        if status == 404:
            self.on_contact(True, None)
            self._set((key, label), ABSENT)
            return ABSENT
        if status != 200:
            self.on_contact(status < 500 and status != 429, f"HTTP {status} from {path}")
            self.log_once(f"label:{status}", "agentops: %s answered %d", path, status)
            return known
        try:
            body = response.json()
            entry = Label(
                int(body["version"]),
                str(body["content"]),
                MappingProxyType(dict(body.get("config") or {})),
                response.headers.get("ETag"),
            )
        except (ValueError, KeyError, TypeError):
            self.log_once("label-body", "agentops: %s answered a body that is not a label", path)
            return known
        self.on_contact(True, None)
        self._set((key, label), entry)
        return entry

    def _set(self, registry_key: tuple[str, str], entry: Label) -> None:
        if self.labels.get(registry_key) != entry:
            self.labels[registry_key] = entry
            self.on_change()

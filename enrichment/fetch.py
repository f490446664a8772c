"""Fetching user-given URLs: guarded, bounded in size and redirects, decoded to text.

Redirects are followed here, one hop at a time, so that every hop's URL passes the SSRF guard
before anything is sent to it (the transport checks and pins the address of each request too).
"""

from __future__ import annotations

import functools
import re
import ssl
from dataclasses import dataclass

import charset_normalizer
import httpx

from enrichment.providers.base import (
    INVALID_TARGET,
    TOO_LARGE,
    TOO_MANY_REDIRECTS,
    UNSUPPORTED_CONTENT,
    ProviderError,
    error_for_status,
    transport_error,
)
from enrichment.ssrf import ForbiddenTarget, GuardedTransport, InvalidTarget, UrlGuard

REDIRECT_STATUSES = {301, 302, 303, 307, 308}
HTML_TYPES = ("text/html", "application/xhtml+xml")
TEXT_TYPES = ("text/plain",)
FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/xml", "text/xml")
JSON_TYPES = ("application/json",)

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.IGNORECASE)


@dataclass(frozen=True)
class FetchedDocument:
    url: str  # the final URL, after redirects
    content_type: str
    body: bytes
    text: str


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle per client is slow (bench/README.md)."""
    return httpx.create_ssl_context()


def guarded_transport(*, guard: UrlGuard | None = None) -> GuardedTransport:
    # retries=0: a retry is a decision for the breaker and the caller, not the socket layer.
    return GuardedTransport(guard=guard or UrlGuard.from_settings(), retries=0, verify=tls_context())


def guard_error(exc: ForbiddenTarget | InvalidTarget) -> ProviderError:
    code = INVALID_TARGET if isinstance(exc, InvalidTarget) else exc.code
    return ProviderError(code, exc.message)


async def fetch_document(
    client: httpx.AsyncClient,
    url: str,
    *,
    guard: UrlGuard,
    accept: tuple[str, ...],
    max_bytes: int,
    max_redirects: int,
) -> FetchedDocument:
    """GET ``url`` through ``client`` (built on a ``GuardedTransport``), following redirects by hand."""
    current = url
    for _hop in range(max_redirects + 1):
        try:
            guard.parse(current)  # static checks before building a request; the transport resolves
            request = client.build_request("GET", current, headers={"Accept": _accept_header(accept)})
            response = await client.send(request, stream=True, follow_redirects=False)
        except (ForbiddenTarget, InvalidTarget) as exc:
            raise guard_error(exc) from None
        except httpx.InvalidURL as exc:
            raise ProviderError(INVALID_TARGET, f"Not a valid URL: {exc}") from None
        except httpx.HTTPError as exc:
            raise transport_error(exc, what="The site") from None
        try:
            if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
                try:
                    current = str(response.url.join(response.headers["location"]))
                except httpx.InvalidURL:
                    raise ProviderError(INVALID_TARGET, "The site redirected to an invalid URL.") from None
                continue
            error = error_for_status(response, what="The site")
            if error:
                # One site's 5xx or 429 is that site's trouble, not the web provider's.
                error.counts_against_provider = False
                raise error
            content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if accept and content_type not in accept:
                raise ProviderError(UNSUPPORTED_CONTENT, f"Content type {content_type or 'none'!r} is not supported.")
            body = await _read_capped(response, max_bytes=max_bytes)
            return FetchedDocument(
                url=str(response.url),
                content_type=content_type,
                body=body,
                text=decode_body(body, declared=response.charset_encoding),
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, what="The site") from None
        finally:
            await response.aclose()
    raise ProviderError(TOO_MANY_REDIRECTS, f"More than {max_redirects} redirects.")


def _accept_header(accept: tuple[str, ...]) -> str:
    return ", ".join((*accept, "*/*;q=0.1")) if accept else "*/*"


async def _read_capped(response: httpx.Response, *, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ProviderError(TOO_LARGE, f"The document is larger than {max_bytes} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise ProviderError(TOO_LARGE, f"The document is larger than {max_bytes} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_body(body: bytes, *, declared: str | None) -> str:
    """Text from bytes: the declared charset, else a <meta charset>, else detection, else UTF-8."""
    for candidate in (declared, _meta_charset(body)):
        if candidate:
            try:
                return body.decode(candidate, errors="replace")
            except LookupError:
                continue
    best = charset_normalizer.from_bytes(body[:200_000]).best()
    if best is not None and best.encoding:
        return body.decode(best.encoding, errors="replace")
    return body.decode("utf-8", errors="replace")


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET.search(body[:4096])
    return match.group(1).decode("ascii", errors="ignore") if match else None

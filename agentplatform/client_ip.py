"""The client's IP address, trusting exactly ``settings.TRUSTED_PROXY_COUNT`` reverse proxies.

Each proxy appends the address it received the connection from to ``X-Forwarded-For``, so with N
trusted proxies in front of the app the client is the N-th entry from the right (the socket peer,
``REMOTE_ADDR``, being the last proxy). Entries further left were written by the client itself and
are never believed. With ``TRUSTED_PROXY_COUNT = 0`` the header is ignored entirely.

Rate limits and login lockouts key on this value, so it is always a syntactically valid address
(normalised by ``ipaddress``): a caller cannot mint fresh buckets by sending arbitrary strings.
"""

from __future__ import annotations

import functools
import ipaddress
import logging

from django.conf import settings

logger = logging.getLogger(__name__)

FORWARDED_FOR_META = "HTTP_X_FORWARDED_FOR"
# Returned when even REMOTE_ADDR is missing or malformed (unit tests, odd WSGI servers): one
# shared, clearly-not-a-client bucket rather than a key derived from garbage.
UNKNOWN_IP = "0.0.0.0"  # noqa: S104  (a label, never bound)


@functools.lru_cache(maxsize=8192)  # a pure function of the string; callers repeat a few addresses
def normalise_ip(value: str | None) -> str | None:
    """``value`` as a canonical IP address string, or None when it is not one.

    Accepts the forms proxies write: plain IPv4/IPv6, ``[v6]`` and ``[v6]:port``, ``v4:port``.
    IPv4-mapped IPv6 (``::ffff:1.2.3.4``) becomes the IPv4 address, so one client has one bucket.
    """
    if not value:
        return None
    candidate = value.strip()
    if len(candidate) > 64:  # longer than any address with port; not worth parsing
        return None
    if candidate.startswith("["):
        closing = candidate.find("]")
        if closing == -1:
            return None
        candidate = candidate[1:closing]
    elif candidate.count(":") == 1 and "." in candidate:
        candidate = candidate.split(":", 1)[0]  # "1.2.3.4:5678"
    candidate = candidate.split("%", 1)[0]  # drop an IPv6 zone id ("fe80::1%eth0")
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)


def get_client_ip(request) -> str:
    """The client address of ``request`` as a validated, normalised IP string."""
    remote = normalise_ip(request.META.get("REMOTE_ADDR")) or UNKNOWN_IP
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted <= 0:
        return remote
    header = request.META.get(FORWARDED_FOR_META, "")
    # Several X-Forwarded-For headers arrive joined by commas, which is the order we want.
    hops = [hop.strip() for hop in header.split(",") if hop.strip()] if header else []
    # REMOTE_ADDR is the nearest proxy; it appended the previous hop, and so on: the entry written
    # by the outermost trusted proxy (the client as it saw it) is the trusted-th from the right.
    if len(hops) < trusted:
        # Fewer entries than proxies: the request bypassed part of the proxy chain (or a proxy
        # does not set the header). The leftmost entry would be client-written, so don't trust any.
        return remote
    client = normalise_ip(hops[-trusted])
    if client is None:
        # A trusted proxy wrote something that isn't an address: misconfiguration, not an attack
        # we can attribute. Fall back to the peer so the request is still limited.
        logger.warning("X-Forwarded-For entry from a trusted proxy is not an IP address; using REMOTE_ADDR")
        return remote
    return client

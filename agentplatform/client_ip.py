"""The client's IP address, believing ``X-Forwarded-For`` only from the proxies we run.

The header is read only when the connecting address (``REMOTE_ADDR``) lies in one of
``settings.TRUSTED_PROXIES`` (CIDRs) and ``settings.TRUSTED_PROXY_COUNT`` is above 0; anyone else
who sends it is a client naming its own address, and is ignored. Each proxy appends the address it
received the connection from, so with N trusted proxies in front of the app the client is the N-th
entry from the right. Entries further left were written by the client itself and are never
believed.

Rate limits, login lockouts and audit rows key on this value, so it is always a syntactically valid
address (normalised by ``ipaddress``): a caller cannot mint fresh buckets by sending arbitrary
strings.
"""

from __future__ import annotations

import functools
import ipaddress
import logging

from django.conf import settings

logger = logging.getLogger(__name__)

FORWARDED_FOR_META = "HTTP_X_FORWARDED_FOR"
FORWARDED_PROTO_META = "HTTP_X_FORWARDED_PROTO"
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


@functools.lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


@functools.lru_cache(maxsize=4096)  # a pure function of its arguments; callers repeat a few proxies
def _address_in(address: str, cidrs: tuple[str, ...]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == network.version and ip in network for network in _networks(cidrs))


def is_trusted_proxy(address: str | None) -> bool:
    """Whether ``address`` (normalised, as from :func:`normalise_ip`) is one of TRUSTED_PROXIES."""
    cidrs = settings.TRUSTED_PROXIES
    if not cidrs or not address or address == UNKNOWN_IP:
        return False
    return _address_in(address, tuple(cidrs))


def get_client_ip(request) -> str:
    """The client address of ``request`` as a validated, normalised IP string."""
    remote = normalise_ip(request.META.get("REMOTE_ADDR")) or UNKNOWN_IP
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted <= 0 or not is_trusted_proxy(remote):
        # No proxy is configured, or this connection did not come from one: whatever the
        # X-Forwarded-For header says, the client wrote it.
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

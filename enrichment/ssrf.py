"""The SSRF guard: which user-given URLs the platform may fetch, and a transport that connects only
to the address it checked.

Every URL an agent or an admin hands us (pages, redirect hops, Supadata targets, collection
sources) passes ``UrlGuard.check``: http/https only, no credentials, default ports only, no
numeric host spellings other than canonical ones, and a host that resolves *only* to public
unicast addresses. ``GuardedTransport`` then re-checks each request it sends and connects to the
address the check returned, keeping the original name in the Host header and in TLS SNI, so a DNS
answer that changes between check and connect (rebinding) cannot redirect the connection.

``ENRICHMENT_ALLOWED_PRIVATE`` opens exact exceptions: a CIDR (``10.20.0.0/16``) permits those
addresses on the default ports; ``host:port`` (``intranet.local:8443``, ``127.0.0.1:8001``,
``[::1]:9000``) permits that host on that port, whatever it resolves to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httpx
from django.conf import settings

from agentplatform.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

ALLOWED_SCHEMES = {"http": 80, "https": 443}

# Ranges never fetched even where Python's ``is_global`` would say otherwise (the list is
# belt-and-braces: ``is_global`` is checked too). Sources: IANA special-purpose registries.
_FORBIDDEN_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/128",  # unspecified
        "::1/128",  # loopback
        "::/96",  # IPv4-compatible (deprecated): ::127.0.0.1
        "::ffff:0:0/96",  # IPv4-mapped: ::ffff:127.0.0.1
        "64:ff9b::/96",  # NAT64 well-known prefix: would reach the embedded IPv4 address
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/32",  # Teredo: tunnels to an embedded IPv4 address
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4: tunnels to an embedded IPv4 address
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)

# A host whose last dot-separated label is a number is an IPv4 address to URL parsers and to
# inet_aton (WHATWG "ends in a number"): 2130706433, 0x7f.1, 0177.0.0.1 all mean 127.0.0.1.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class ForbiddenTarget(ValidationFailed):
    """A URL the guard refuses to fetch (permanent: retrying will not help)."""

    code = "forbidden_target"
    default_message = "This URL may not be fetched."


class InvalidTarget(ValidationFailed):
    code = "invalid_target"
    default_message = "This is not a fetchable http(s) URL."


@dataclass(frozen=True)
class Destination:
    """A URL that passed the guard and the address the connection must go to."""

    url: httpx.URL
    host: str
    port: int
    address: str


@dataclass(frozen=True)
class AllowList:
    networks: tuple[IPNetwork, ...] = ()
    host_ports: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        networks: list[IPNetwork] = []
        host_ports: set[tuple[str, int]] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            host, sep, port = entry.rpartition(":")
            if not sep or not port.isdigit() or not host:
                raise ValueError(f"ENRICHMENT_ALLOWED_PRIVATE entry {entry!r} is neither a CIDR nor host:port")
            host_ports.add((_normalise_host(host.strip("[]")), int(port)))
        return cls(networks=tuple(networks), host_ports=frozenset(host_ports))

    def permits_host_port(self, host: str, port: int) -> bool:
        return (host, port) in self.host_ports

    def permits_address(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


def _normalise_host(host: str) -> str:
    return host.lower().rstrip(".")


def address_is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address outside every special-purpose range."""
    if any(address.version == net.version and address in net for net in _FORBIDDEN_NETWORKS):
        return False
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified or address.is_link_local
    )


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` once with the system resolver (A and AAAA), in resolver order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        if address not in seen:
            seen.append(address)
    return seen


class UrlGuard:
    """Decides whether a URL may be fetched and which address to connect to."""

    def __init__(self, *, allow: AllowList | None = None, resolver: Resolver | None = None) -> None:
        self.allow = allow or AllowList()
        self.resolver = resolver or system_resolver

    @classmethod
    def from_settings(cls, *, resolver: Resolver | None = None) -> UrlGuard:
        return cls(allow=AllowList.parse(settings.ENRICHMENT_ALLOWED_PRIVATE), resolver=resolver)

    def parse(self, url: str | httpx.URL) -> tuple[httpx.URL, str, int]:
        """The static checks (no resolution): scheme, credentials, port, host spelling."""
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(str(url).strip())
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise InvalidTarget(f"Not a valid URL: {exc}") from None
        if parsed.scheme not in ALLOWED_SCHEMES:
            raise InvalidTarget("Only http and https URLs may be fetched.")
        if parsed.userinfo:
            raise ForbiddenTarget("URLs with credentials may not be fetched.")
        host = _normalise_host(parsed.host)
        if not host:
            raise InvalidTarget("The URL has no host.")
        port = parsed.port or ALLOWED_SCHEMES[parsed.scheme]
        if port != ALLOWED_SCHEMES[parsed.scheme] and not self.allow.permits_host_port(host, port):
            raise ForbiddenTarget(f"Port {port} is not allowed; only the scheme's default port is.")
        if self.allow.permits_host_port(host, port):
            return parsed, host, port
        literal = _ip_literal(host)
        if literal is None:
            if host in _LOCAL_NAMES or host.endswith(".localhost"):
                raise ForbiddenTarget("Local host names may not be fetched.")
            if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
                raise ForbiddenTarget("Numeric host spellings other than a canonical IP address are refused.")
        elif not self._address_allowed(literal):
            raise ForbiddenTarget("This address is not public.")
        return parsed, host, port

    async def check(self, url: str | httpx.URL) -> Destination:
        """Parse, resolve once and check every resolved address; returns where to connect."""
        parsed, host, port = self.parse(url)
        literal = _ip_literal(host)
        if literal is not None:
            return Destination(url=parsed, host=host, port=port, address=str(literal))
        try:
            addresses = await self.resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise InvalidTarget(f"The host name does not resolve: {exc.__class__.__name__}.") from None
        if not addresses:
            raise InvalidTarget("The host name does not resolve.")
        exempt = self.allow.permits_host_port(host, port)
        checked: list[IPAddress] = []
        for text in addresses:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                raise InvalidTarget("The resolver returned something that is not an address.") from None
            # Every answer must pass: a name resolving to one public and one private address is
            # exactly what a rebinding attacker serves.
            if not exempt and not self._address_allowed(address):
                raise ForbiddenTarget("The host name resolves to an address that is not public.")
            checked.append(address)
        return Destination(url=parsed, host=host, port=port, address=str(checked[0]))

    def _address_allowed(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            # Judge ::ffff:a.b.c.d by its IPv4 address only when that address is allow-listed.
            return self.allow.permits_address(address) or self.allow.permits_address(address.ipv4_mapped)
        return self.allow.permits_address(address) or address_is_public(address)


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An async transport that checks every request's URL and connects to the checked address.

    The request keeps its Host header and, for https, the original name as TLS SNI and for
    certificate verification; only the socket's destination is pinned.
    """

    def __init__(self, *, guard: UrlGuard | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.guard = guard or UrlGuard.from_settings()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        destination = await self.guard.check(request.url)
        if _ip_literal(destination.host) is not None:
            return await super().handle_async_request(request)
        # A copy, so the caller's request (and response.url, redirects) keep the name.
        extensions = dict(request.extensions)
        if request.url.scheme == "https":
            extensions["sni_hostname"] = destination.host
        pinned = httpx.Request(
            request.method,
            request.url.copy_with(host=destination.address),
            headers=request.headers,  # carries the original Host header
            stream=request.stream,
            extensions=extensions,
        )
        return await super().handle_async_request(pinned)

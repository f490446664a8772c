"""The SSRF guard: decisions with name resolution stubbed; live requests only to loopback servers
these tests start (allow-listed)."""

from __future__ import annotations

import asyncio
import concurrent.futures

import httpx
import pytest

from enrichment.fetch import fetch_document, guarded_transport
from enrichment.providers.base import ProviderError
from enrichment.ssrf import AllowList, ForbiddenTarget, InvalidTarget, UrlGuard, address_is_public
from tests.enrichment.conftest import Reply

PUBLIC = "93.184.216.34"  # never contacted: decisions only


def run(coro):
    """Run a coroutine on a fresh loop in a worker thread: immune to a loop another test (a
    session-scoped sync Playwright) leaves running in the main thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def stub_resolver(table: dict[str, list[str]]):
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host not in table:
            raise OSError("name not known")
        return table[host]

    resolve.calls = calls
    return resolve


def check(url: str, *, resolver=None, allow: list[str] | None = None):
    guard = UrlGuard(allow=AllowList.parse(allow or []), resolver=resolver or stub_resolver({}))
    return run(guard.check(url))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.8.9.10/",
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
        "http://0.0.0.0/",
        "http://[::1]/",
        "http://[::]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[ff02::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:8.8.8.8]/",
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:7f00:1::]/",
    ],
)
def test_literal_non_public_addresses_are_refused(url):
    with pytest.raises(ForbiddenTarget):
        check(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",  # decimal
        "http://0177.0.0.1/",  # octal
        "http://0x7f.0.0.1/",  # hex
        "http://0x7f000001/",
        "http://127.1/",  # shortened
        "http://017700000001/",
    ],
)
def test_numeric_host_spellings_are_refused_before_resolution(url):
    resolver = stub_resolver({})
    # Refused either as a forbidden spelling or, where httpx rejects the spelling itself, as invalid.
    with pytest.raises((ForbiddenTarget, InvalidTarget)):
        check(url, resolver=resolver)
    assert resolver.calls == []


@pytest.mark.parametrize("url", ["http://localhost/", "http://LOCALHOST./x", "http://api.localhost/"])
def test_local_names_are_refused(url):
    with pytest.raises(ForbiddenTarget):
        check(url, resolver=stub_resolver({"localhost": ["127.0.0.1"], "api.localhost": ["127.0.0.1"]}))


def test_hostname_resolving_to_a_private_address_is_refused():
    with pytest.raises(ForbiddenTarget, match="resolves"):
        check("https://intranet.example/", resolver=stub_resolver({"intranet.example": ["10.1.2.3"]}))


def test_hostname_with_one_private_answer_among_public_ones_is_refused():
    resolver = stub_resolver({"rebind.example": [PUBLIC, "169.254.169.254"]})
    with pytest.raises(ForbiddenTarget):
        check("https://rebind.example/", resolver=resolver)


def test_public_hostname_passes_and_names_the_address_to_connect_to():
    destination = check("https://news.example/a?b=1", resolver=stub_resolver({"news.example": [PUBLIC]}))
    assert (destination.host, destination.port, destination.address) == ("news.example", 443, PUBLIC)


@pytest.mark.parametrize("url", ["ftp://files.example/x", "file:///etc/passwd", "gopher://h.example/", "data:,x"])
def test_other_schemes_are_refused(url):
    with pytest.raises(InvalidTarget):
        check(url)


def test_credentials_in_the_url_are_refused():
    with pytest.raises(ForbiddenTarget, match="credentials"):
        check("https://user:secret@news.example/", resolver=stub_resolver({"news.example": [PUBLIC]}))


def test_non_default_port_is_refused_and_explicit_default_port_passes():
    resolver = stub_resolver({"news.example": [PUBLIC]})
    with pytest.raises(ForbiddenTarget, match="Port"):
        check("http://news.example:8080/", resolver=resolver)
    assert check("http://news.example:80/", resolver=resolver).port == 80


def test_unresolvable_host_is_an_invalid_target():
    with pytest.raises(InvalidTarget):
        check("https://nowhere.example/", resolver=stub_resolver({}))


def test_allow_list_cidr_opens_that_range_on_default_ports_only():
    resolver = stub_resolver({"wiki.corp": ["10.20.1.5"]})
    assert check("http://wiki.corp/", resolver=resolver, allow=["10.20.0.0/16"]).address == "10.20.1.5"
    with pytest.raises(ForbiddenTarget):
        check("http://wiki.corp:8080/", resolver=resolver, allow=["10.20.0.0/16"])
    with pytest.raises(ForbiddenTarget):
        check("http://10.21.0.1/", resolver=resolver, allow=["10.20.0.0/16"])


def test_allow_list_host_port_opens_exactly_that_pair():
    assert check("http://127.0.0.1:8001/", allow=["127.0.0.1:8001"]).address == "127.0.0.1"
    assert check("http://[::1]:9000/", allow=["[::1]:9000"]).address == "::1"
    with pytest.raises(ForbiddenTarget):
        check("http://127.0.0.1:8002/", allow=["127.0.0.1:8001"])
    with pytest.raises(ForbiddenTarget):
        check("http://127.0.0.1/", allow=["127.0.0.1:8001"])


def test_allow_list_rejects_malformed_entries():
    with pytest.raises(ValueError):
        AllowList.parse(["not an entry"])


def test_address_classification_accepts_ordinary_public_addresses():
    import ipaddress

    assert address_is_public(ipaddress.ip_address(PUBLIC))
    assert address_is_public(ipaddress.ip_address("2606:4700::1111"))
    assert not address_is_public(ipaddress.ip_address("100.127.255.254"))


# --- live, loopback only ------------------------------------------------------------------------


async def _get(url: str, guard: UrlGuard, **kwargs):
    async with httpx.AsyncClient(transport=guarded_transport(guard=guard), trust_env=False, timeout=5) as client:
        return await fetch_document(
            client,
            url,
            guard=guard,
            accept=kwargs.pop("accept", ("text/html", "text/plain")),
            max_bytes=kwargs.pop("max_bytes", 100_000),
            max_redirects=kwargs.pop("max_redirects", 3),
        )


def test_transport_connects_to_the_checked_address_and_keeps_the_host_header(upstream):
    upstream.route("/", Reply(body="hello", content_type="text/plain"))
    # "pages.test" exists in no DNS: reaching the server proves the connection used the guard's answer.
    guard = UrlGuard(
        allow=AllowList.parse([f"pages.test:{upstream.port}"]),
        resolver=stub_resolver({"pages.test": ["127.0.0.1"]}),
    )
    document = run(_get(f"http://pages.test:{upstream.port}/", guard))
    assert document.text == "hello"
    assert upstream.received[0].headers["host"] == f"pages.test:{upstream.port}"
    assert document.url == f"http://pages.test:{upstream.port}/"


def test_loopback_server_is_refused_without_an_allow_list_entry(upstream):
    upstream.route("/", Reply(body="hello"))
    guard = UrlGuard(resolver=stub_resolver({}))
    with pytest.raises(ProviderError) as raised:
        run(_get(upstream.url + "/", guard))
    assert raised.value.code == "forbidden_target"
    assert upstream.received == []


def test_redirect_to_metadata_address_is_refused_without_contacting_it(upstream):
    upstream.route("/", Reply(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}))
    guard = UrlGuard(allow=AllowList.parse([upstream.allow_entry]), resolver=stub_resolver({}))
    with pytest.raises(ProviderError) as raised:
        run(_get(upstream.url + "/", guard))
    assert raised.value.code == "forbidden_target"


def test_redirect_to_a_name_resolving_privately_is_refused(upstream):
    upstream.route("/", Reply(301, headers={"Location": "https://internal.example/admin"}))
    resolver = stub_resolver({"internal.example": ["10.0.0.5"]})
    guard = UrlGuard(allow=AllowList.parse([upstream.allow_entry]), resolver=resolver)
    with pytest.raises(ProviderError) as raised:
        run(_get(upstream.url + "/", guard))
    assert raised.value.code == "forbidden_target"
    assert resolver.calls == ["internal.example"]


def test_redirects_are_followed_within_the_bound(upstream):
    upstream.route("/a", Reply(302, headers={"Location": "/b"}))
    upstream.route("/b", Reply(307, headers={"Location": upstream.url + "/c"}))
    upstream.route("/c", Reply(body="arrived", content_type="text/plain"))
    upstream.route("/loop", Reply(302, headers={"Location": "/loop"}))
    guard = UrlGuard(allow=AllowList.parse([upstream.allow_entry]))
    assert run(_get(upstream.url + "/a", guard)).text == "arrived"
    with pytest.raises(ProviderError) as raised:
        run(_get(upstream.url + "/loop", guard, max_redirects=3))
    assert raised.value.code == "too_many_redirects"
    assert upstream.hits("/loop") == 4


def test_ipv6_loopback_server_is_reachable_when_allow_listed(make_upstream):
    try:
        upstream = make_upstream("::1")
    except OSError:
        pytest.skip("IPv6 loopback is not available here")
    upstream.route("/", Reply(body="v6", content_type="text/plain"))
    guard = UrlGuard(allow=AllowList.parse([f"[::1]:{upstream.port}"]))
    assert run(_get(f"http://[::1]:{upstream.port}/", guard)).text == "v6"


def test_oversized_documents_are_refused(upstream):
    upstream.route("/big", Reply(body="x" * 5000, content_type="text/plain"))
    guard = UrlGuard(allow=AllowList.parse([upstream.allow_entry]))
    with pytest.raises(ProviderError) as raised:
        run(_get(upstream.url + "/big", guard, max_bytes=1000))
    assert raised.value.code == "too_large"


def test_unsupported_content_types_are_refused(upstream):
    upstream.route("/bin", Reply(body=b"\x00\x01", content_type="application/octet-stream"))
    guard = UrlGuard(allow=AllowList.parse([upstream.allow_entry]))
    with pytest.raises(ProviderError) as raised:
        run(_get(upstream.url + "/bin", guard))
    assert raised.value.code == "unsupported_content"


def test_charset_is_taken_from_the_header_or_the_meta_tag(upstream):
    korean = "<html><head><title>공지</title></head><body><p>평생교육</p></body></html>"
    upstream.route("/header", Reply(body=korean.encode("euc-kr"), content_type="text/html; charset=euc-kr"))
    meta = korean.replace("<head>", '<head><meta charset="euc-kr">')
    upstream.route("/meta", Reply(body=meta.encode("euc-kr"), content_type="text/html"))
    guard = UrlGuard(allow=AllowList.parse([upstream.allow_entry]))
    assert "평생교육" in run(_get(upstream.url + "/header", guard)).text
    assert "평생교육" in run(_get(upstream.url + "/meta", guard)).text

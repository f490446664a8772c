import pytest
from django.test import RequestFactory, override_settings

from agentplatform.client_ip import UNKNOWN_IP, get_client_ip, normalise_ip

PROXIES = ("10.0.0.0/24",)


def _request(remote="10.0.0.9", forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


@override_settings(TRUSTED_PROXY_COUNT=0)
def test_without_trusted_proxies_forwarded_for_is_ignored():
    assert get_client_ip(_request("198.51.100.7", forwarded="203.0.113.1")) == "198.51.100.7"


@override_settings(TRUSTED_PROXY_COUNT=1, TRUSTED_PROXIES=PROXIES)
def test_one_trusted_proxy_takes_the_rightmost_entry():
    request = _request("10.0.0.2", forwarded="1.1.1.1, 203.0.113.5")
    assert get_client_ip(request) == "203.0.113.5"


@override_settings(TRUSTED_PROXY_COUNT=2, TRUSTED_PROXIES=PROXIES)
def test_two_trusted_proxies_take_the_second_entry_from_the_right():
    request = _request("10.0.0.2", forwarded="6.6.6.6, 203.0.113.5, 10.0.0.1")
    assert get_client_ip(request) == "203.0.113.5"


@override_settings(TRUSTED_PROXY_COUNT=2, TRUSTED_PROXIES=PROXIES)
def test_fewer_entries_than_trusted_proxies_falls_back_to_the_peer():
    assert get_client_ip(_request("10.0.0.2", forwarded="203.0.113.5")) == "10.0.0.2"


@override_settings(TRUSTED_PROXY_COUNT=1, TRUSTED_PROXIES=PROXIES)
def test_missing_header_behind_a_proxy_uses_the_peer():
    assert get_client_ip(_request("10.0.0.2")) == "10.0.0.2"


@override_settings(TRUSTED_PROXY_COUNT=1, TRUSTED_PROXIES=PROXIES)
def test_a_client_cannot_choose_its_address_by_prepending_entries():
    first = _request("10.0.0.2", forwarded="1.2.3.4, 203.0.113.5")
    second = _request("10.0.0.2", forwarded="9.9.9.9, 203.0.113.5")
    assert get_client_ip(first) == get_client_ip(second) == "203.0.113.5"


@override_settings(TRUSTED_PROXY_COUNT=1, TRUSTED_PROXIES=PROXIES)
def test_a_non_address_entry_is_never_returned():
    assert get_client_ip(_request("10.0.0.2", forwarded="1.2.3.4, not-an-ip\r\n")) == "10.0.0.2"


@override_settings(TRUSTED_PROXY_COUNT=1, TRUSTED_PROXIES=PROXIES)
def test_forwarded_for_from_a_peer_outside_the_trusted_proxies_is_ignored():
    assert get_client_ip(_request("198.51.100.7", forwarded="203.0.113.1")) == "198.51.100.7"


@override_settings(TRUSTED_PROXY_COUNT=1, TRUSTED_PROXIES=())
def test_a_proxy_count_without_trusted_proxies_believes_no_header():
    assert get_client_ip(_request("10.0.0.2", forwarded="203.0.113.1")) == "10.0.0.2"


@override_settings(TRUSTED_PROXY_COUNT=1, TRUSTED_PROXIES=("fd00::/8", "172.18.0.5/32"))
@pytest.mark.parametrize(
    ("peer", "trusted"),
    [("172.18.0.5", True), ("172.18.0.6", False), ("fd00::1", True), ("::ffff:172.18.0.5", True), ("::1", False)],
)
def test_trusted_proxies_match_ipv4_and_ipv6_peers(peer, trusted):
    expected = "203.0.113.1" if trusted else normalise_ip(peer)
    assert get_client_ip(_request(peer, forwarded="203.0.113.1")) == expected


def test_a_malformed_remote_addr_maps_to_the_unknown_bucket():
    assert get_client_ip(_request("garbage")) == UNKNOWN_IP


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("203.0.113.5", "203.0.113.5"),
        (" 203.0.113.5 ", "203.0.113.5"),
        ("203.0.113.5:4711", "203.0.113.5"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("fe80::1%eth0", "fe80::1"),
        ("unknown", None),
        ("", None),
        (None, None),
        ("1" * 100, None),
    ],
)
def test_normalise_ip(raw, expected):
    assert normalise_ip(raw) == expected

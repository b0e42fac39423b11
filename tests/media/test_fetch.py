"""The image fetcher's SSRF rules, decided on resolved addresses: private ranges are judged by the address check and
a test resolver (never a live request to them); the redirect re-check runs against two loopback addresses."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator

import pytest
from localai.errors import APIError
from localai.media.fetch import fetch, is_public
from localai.media.images import ImageSettings


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.5.5.5", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "fe80::1", "fc00::1", "::ffff:10.0.0.1",
    "::ffff:127.0.0.1", "::", "fe80::1%eth0",
])
def test_loopback_link_local_private_and_special_addresses_are_not_public(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_global_unicast_addresses_are_public(address: str) -> None:
    assert is_public(address)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def resolver_for(table: dict[str, list[str]], asked: list[str]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return table[host]
    return resolve


@pytest.mark.parametrize("addresses", [["10.1.2.3"], ["93.184.216.34", "192.168.0.7"], ["fd00::5"]])
def test_a_name_resolving_to_a_private_address_is_refused_before_connecting(addresses: list[str]) -> None:
    asked: list[str] = []
    with pytest.raises(APIError) as info:
        run(fetch("http://intranet.test/cat.png", "messages[0].content[0].image_url", ImageSettings(),
                  resolver_for({"intranet.test": addresses}, asked)))
    assert asked == ["intranet.test"]
    assert info.value.status == 400 and info.value.param == "messages[0].content[0].image_url"
    assert "a loopback, link-local or private address" in info.value.message


def test_literal_private_addresses_are_refused_without_resolving() -> None:
    asked: list[str] = []
    for url in ("http://10.0.0.1/x.png", "http://[::1]:8080/x.png", "http://169.254.169.254/latest/meta-data"):
        with pytest.raises(APIError, match="private address"):
            run(fetch(url, None, ImageSettings(), resolver_for({}, asked)))
    assert asked == []


def test_other_schemes_are_refused() -> None:
    with pytest.raises(APIError, match="only http and https"):
        run(fetch("ftp://example.com/x.png", None, ImageSettings()))


class Redirect(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        Redirect.hits.append(self.headers.get("Host", ""))
        self.send_response(302)
        self.send_header("Location", f"http://second.test:{self.server.server_address[1]}/x.png")  # type: ignore[index]
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def redirecting() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()


def test_every_redirect_is_checked_again(redirecting: int) -> None:
    """first.test (127.0.0.1, allowed by this test's policy) redirects to second.test (127.0.0.2, not allowed): the
    second hop is refused on its resolved address, and nothing connects to it."""
    Redirect.hits.clear()
    asked: list[str] = []
    resolver = resolver_for({"first.test": ["127.0.0.1"], "second.test": ["127.0.0.2"]}, asked)
    with pytest.raises(APIError, match="second.test resolves to 127.0.0.2"):
        run(fetch(f"http://first.test:{redirecting}/x.png", None, ImageSettings(), resolver,
                  allowed=lambda address: address == "127.0.0.1"))
    assert asked == ["first.test", "second.test"]
    assert Redirect.hits == [f"first.test:{redirecting}"]

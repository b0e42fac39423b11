"""Fetch an image a client names by URL, without becoming an SSRF hole.

Every connection (the first and each redirect's) goes through :class:`CheckedBackend`, which resolves the host
itself, refuses the request if any address it resolves to is loopback, link-local, private, multicast, reserved or
unspecified (unless ``allow_private``), and connects to the address it checked, so a name cannot resolve to a
public address for the check and a private one for the connection. TLS still verifies the URL's host name. The
body is read up to the byte limit, the whole fetch (redirects included) runs under one timeout, and redirects are
followed at most ``max_redirects`` times. httpcore (httpx's transport) does the HTTP; this module only decides.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore

from localai.errors import APIError
from localai.media.images import ImageSettings, bad_image

Resolver = Callable[[str, int], Awaitable[list[str]]]


class Refused(Exception):
    """The URL's host resolves to an address the server will not fetch from."""


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public(address: str) -> bool:
    """True for an address a server may fetch from on a client's behalf (a global unicast address)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


async def checked_addresses(host: str, port: int, resolver: Resolver, allowed: Callable[[str], bool]) -> list[str]:
    """The addresses to connect to for ``host``, all ``allowed``, or :class:`Refused`."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        addresses = [host.strip("[]")]
    except ValueError:
        try:
            addresses = await resolver(host, port)
        except OSError as exc:
            raise OSError(f"cannot resolve {host}: {exc}") from None
    if not addresses:
        raise OSError(f"cannot resolve {host}")
    for address in addresses:
        if not allowed(address):
            raise Refused(f"{host} resolves to {address}, a loopback, link-local or private address; the server "
                          "does not fetch from those unless started with --allow-private-urls "
                          "(LOCALAI_ALLOW_PRIVATE_URLS=true)")
    return addresses


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects only to addresses :func:`checked_addresses` allows."""

    def __init__(self, resolver: Resolver, allowed: Callable[[str], bool]) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.resolver = resolver
        self.allowed = allowed

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        addresses = await checked_addresses(host, port, self.resolver, self.allowed)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or OSError(f"cannot connect to {host}")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


async def fetch(url: str, where: str | None, settings: ImageSettings, resolver: Resolver = system_resolver,
                allowed: Callable[[str], bool] | None = None) -> bytes:
    """The body at ``url`` (http or https), or a 400 naming ``where`` that says why not. ``allowed`` decides which
    addresses may be connected to (default: public ones, or any with ``settings.allow_private``)."""
    if allowed is None:
        allowed = (lambda _address: True) if settings.allow_private else is_public
    try:
        return await asyncio.wait_for(_fetch(url, where, settings, resolver, allowed), settings.fetch_timeout)
    except asyncio.TimeoutError:
        raise bad_image(where, f"fetching {url} took longer than {settings.fetch_timeout:g}s") from None


async def _fetch(url: str, where: str | None, settings: ImageSettings, resolver: Resolver,
                 allowed: Callable[[str], bool]) -> bytes:
    backend = CheckedBackend(resolver, allowed)
    async with httpcore.AsyncConnectionPool(network_backend=backend, max_connections=1) as pool:
        for _ in range(settings.max_redirects + 1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise bad_image(where, f"cannot fetch {url!r}: only http and https URLs are fetched")
            try:
                async with pool.stream("GET", url, headers={"Accept": "image/*", "User-Agent": "localai"}) as response:
                    if response.status in (301, 302, 303, 307, 308):
                        location = next((v for k, v in response.headers if k.lower() == b"location"), None)
                        if not location:
                            raise bad_image(where, f"{url} answered {response.status} without a Location")
                        url = urljoin(url, location.decode("latin-1"))
                        continue
                    if response.status != 200:
                        raise bad_image(where, f"fetching {url} answered HTTP {response.status}")
                    body = bytearray()
                    async for piece in response.aiter_stream():
                        body += piece
                        if len(body) > settings.max_bytes:
                            raise bad_image(where, f"the image at {url} is larger than {settings.max_bytes} bytes")
                    return bytes(body)
            except APIError:
                raise
            except Refused as exc:
                raise bad_image(where, f"refused to fetch {url}: {exc}") from None
            except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
                raise bad_image(where, f"cannot fetch {url}: {exc or exc.__class__.__name__}") from None
        raise bad_image(where, f"fetching the image followed more than {settings.max_redirects} redirects")

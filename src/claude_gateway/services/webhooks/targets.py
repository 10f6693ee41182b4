"""Where a webhook may point: the SSRF guard.

A webhook URL is the caller's choice of where the gateway's own network position sends
requests, so by default it must reach a public address: loopback, private ranges,
link-local (the cloud metadata service at 169.254.169.254 among them), carrier-grade
NAT, multicast and reserved addresses are refused.

It is checked twice:

- at creation (:func:`check_url`): the scheme, and an address literal or a name that
  is loopback by definition (``localhost``). Other names are not resolved then (a
  name's addresses change; creating an endpoint does not test it);
- at connect time (:class:`GuardedBackend`), for every connection: the name is resolved
  once, every address it has must be public, and the connection goes to an address so
  checked, never to a second lookup (DNS rebinding gains nothing). Redirects are not
  followed (a 3xx is a failed attempt), proxies from the environment are not used.

``CLAUDE_GATEWAY_WEBHOOK_ALLOW_PRIVATE=true`` lifts both for self-hosted receivers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from claude_gateway.errors import WebhookUrlNotAllowed

Resolve = Callable[[str, int], Awaitable[list[str]]]
"""A host name and port to the addresses it has."""


class AddressRefused(httpcore.ConnectError):
    """A webhook's host resolved to an address it may not reach."""


def is_public(address: str) -> bool:
    """Whether an IP address is a public, unicast one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, allow_private: bool) -> str:
    """A webhook URL as the API takes it, or 400 ``WEBHOOK_URL_NOT_ALLOWED``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise WebhookUrlNotAllowed(f"Not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise WebhookUrlNotAllowed("A webhook URL is an http:// or https:// URL with a host")
    if allow_private:
        return url
    name = host.rstrip(".").lower()
    try:
        literal: str | None = str(ipaddress.ip_address(name.split("%", 1)[0]))
    except ValueError:
        literal = None
    if literal is not None and not is_public(literal):
        raise WebhookUrlNotAllowed(
            f"{host} is not a public address (loopback, private, link-local and metadata "
            "addresses are refused; the operator may allow them with "
            "CLAUDE_GATEWAY_WEBHOOK_ALLOW_PRIVATE)", details={"url": url})
    if name == "localhost" or name.endswith(".localhost"):
        raise WebhookUrlNotAllowed(f"{host} is a loopback name", details={"url": url})
    return url


async def resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                         type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the guard allows."""

    def __init__(self, *, allow_private: bool, resolver: Resolve = resolve) -> None:
        self.allow_private = allow_private
        self.resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(self.resolver(host, port), timeout)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not self.allow_private and not all(is_public(a) for a in addresses):
            # Which address is not said: it would map the gateway's own network.
            raise AddressRefused(f"{host} resolves to an address that is not a "
                                 "public address; not contacted")
        error: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout,
                                                      local_address=local_address,
                                                      socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[Any] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks do not use Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over :class:`GuardedBackend`, with no proxy from the
    environment (a proxy would make the connection, unguarded)."""

    def __init__(self, backend: GuardedBackend, *, max_connections: int) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=max_connections, max_keepalive_connections=max_connections,
            keepalive_expiry=30, network_backend=backend)


def guarded_client(*, allow_private: bool, timeout: float, max_connections: int,
                   resolver: Resolve = resolve) -> httpx.AsyncClient:
    backend = GuardedBackend(allow_private=allow_private, resolver=resolver)
    return httpx.AsyncClient(
        transport=GuardedTransport(backend, max_connections=max_connections),
        timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False)

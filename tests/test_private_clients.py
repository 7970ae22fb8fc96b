"""One connection's ccxt instance: what it shares with the venue's public instance."""

from __future__ import annotations

import ssl

from tests.conftest import ServerThread


async def test_connections_share_one_tls_context_and_still_verify_certificates(sandbox: ServerThread) -> None:
    """Building a TLS context loads the CA bundle (~20 ms each): a warm start with many
    connections paid it once per connection (bench/connector_start.py)."""
    from exgate.venues.private import PrivateClient
    from exgate.venues.registry import build_adapters

    venues = ["binanceusdm", "bybit"]
    adapters = build_adapters(venues, {v: f"{sandbox.url}/{v}" for v in venues})
    adapter, other = adapters["binanceusdm"], adapters["bybit"]
    for each in adapters.values():
        await each.markets()
    first = PrivateClient(adapter, {"apiKey": "key-1", "secret": "secret-1"})
    second = PrivateClient(adapter, {"apiKey": "key-2", "secret": "secret-2"})
    third = PrivateClient(other, {"apiKey": "key-3", "secret": "secret-3"})
    try:
        context = first.exchange.ssl_context
        assert context is not None and context is second.exchange.ssl_context is adapter.exchange.ssl_context
        assert third.exchange.ssl_context is context  # one per process, not one per venue
        assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
        assert first.exchange.apiKey == "key-1" and second.exchange.apiKey == "key-2"  # nothing else shared
    finally:
        for client in (first, second, third):
            await client.close()
        for each in adapters.values():
            await each.close()

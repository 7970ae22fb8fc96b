"""Upstream override: origins replaced, paths kept, bad specs rejected clearly."""

from __future__ import annotations

import pytest

from exgate.errors import BadRequest
from exgate.venues.ccxt_adapter import CcxtAdapter
from exgate.venues.profiles import profile_for
from exgate.venues.upstream import parse_upstreams, rewrite_url, rewrite_urls


def test_origin_is_replaced_and_the_original_path_kept():
    assert rewrite_url("https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT",
                       "http://127.0.0.1:8900/binanceusdm") == \
        "http://127.0.0.1:8900/binanceusdm/fapi/v1/depth?symbol=BTCUSDT"


def test_websocket_urls_get_the_matching_ws_scheme():
    assert rewrite_url("wss://fstream.binance.com/ws", "http://127.0.0.1:8900/binanceusdm") == \
        "ws://127.0.0.1:8900/binanceusdm/ws"
    assert rewrite_url("wss://x.io/ws", "https://gw.example/testnet") == "wss://gw.example/testnet/ws"


def test_nested_ccxt_url_maps_and_hostname_placeholders():
    urls = {"public": "https://api.{hostname}", "ws": {"public": "wss://stream.{hostname}/v5/public"}}
    assert rewrite_urls(urls, "http://h:1/bybit", "bybit.com") == {
        "public": "http://h:1/bybit", "ws": {"public": "ws://h:1/bybit/v5/public"},
    }


async def test_every_url_of_a_real_ccxt_instance_points_at_the_override():
    adapter = CcxtAdapter(profile_for("binanceusdm"), upstream="http://127.0.0.1:8900/binanceusdm")
    try:
        urls = adapter.exchange.urls["api"]
        assert urls["fapiPublic"] == "http://127.0.0.1:8900/binanceusdm/fapi/v1"
        assert all(u.startswith("http://127.0.0.1:8900/binanceusdm/") for u in urls.values())
    finally:
        await adapter.close()


def test_parse_accepts_env_and_repeated_flag_forms():
    assert parse_upstreams("binanceusdm=http://a:1/x, bybit=http://b:2/") == {
        "binanceusdm": "http://a:1/x", "bybit": "http://b:2"}
    assert parse_upstreams(["hyperliquid=http://c:3/hl"]) == {"hyperliquid": "http://c:3/hl"}


@pytest.mark.parametrize("bad", ["binanceusdm", "=http://a:1", "bybit=ftp://x", "bybit=localhost:8900"])
def test_malformed_override_is_a_clear_error(bad):
    with pytest.raises(BadRequest, match="VENUE=http"):
        parse_upstreams(bad)

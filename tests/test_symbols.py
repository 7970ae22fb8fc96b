"""Symbol resolution: every form a client may send, and helpful 404s."""

from __future__ import annotations

from decimal import Decimal

import pytest

from exgate.errors import UnknownSymbol
from exgate.models import Market, MarketType
from exgate.symbols import SymbolIndex


def _m(symbol: str, id_: str, type_: MarketType, settle: str | None = None, active: bool = True) -> Market:
    base, rest = symbol.split("/")
    quote = rest.split(":")[0]
    return Market(exchange="x", symbol=symbol, id=id_, base=base, quote=quote, settle=settle, type=type_,
                  tick_size=Decimal("0.1"), active=active)


INDEX = SymbolIndex([
    _m("BTC/USDT", "BTCUSDT_SPOT", MarketType.SPOT),
    _m("BTC/USDT:USDT", "BTCUSDT", MarketType.PERPETUAL, "USDT"),
    _m("BTC/USDC:USDC", "BTCPERP", MarketType.PERPETUAL, "USDC"),
    _m("BTC/USD:BTC", "BTCUSD", MarketType.PERPETUAL, "BTC"),
    _m("ETH/USDC:USDC", "ETHPERP", MarketType.PERPETUAL, "USDC"),
], settle_preference=("USDT", "USDC"))


@pytest.mark.parametrize("raw, expected", [
    ("BTC/USDT:USDT", "BTC/USDT:USDT"),
    ("btc/usdt:usdt", "BTC/USDT:USDT"),
    ("BTC-USDT-PERP", "BTC/USDT:USDT"),
    ("BTC-USDT", "BTC/USDT"),
    ("BTCUSDT", "BTC/USDT:USDT"),
    ("BTC", "BTC/USDT:USDT"),       # main perpetual: first preferred settle currency
    ("BTC-PERP", "BTC/USDT:USDT"),
    ("ETH", "ETH/USDC:USDC"),       # only a USDC perpetual lists ETH
    ("BTC-USDC-PERP", "BTC/USDC:USDC"),
])
def test_every_accepted_form_resolves(raw, expected):
    assert INDEX.resolve(raw).symbol == expected


def test_unknown_symbol_lists_close_matches():
    with pytest.raises(UnknownSymbol) as info:
        INDEX.resolve("BTC-USDX-PERP")
    assert info.value.extra["field"] == "symbol"
    assert "BTC/USDT:USDT" in info.value.extra["suggestions"]
    assert info.value.extra["suggestions"][0].startswith("BTC/")


def test_inactive_perpetual_is_not_the_main_one():
    index = SymbolIndex([_m("SOL/USDT:USDT", "SOLUSDT", MarketType.PERPETUAL, "USDT", active=False),
                         _m("SOL/USDC:USDC", "SOLPERP", MarketType.PERPETUAL, "USDC")])
    assert index.resolve("SOL").symbol == "SOL/USDC:USDC"

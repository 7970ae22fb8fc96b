"""Registry of the sandbox's simulated venues, by the ccxt id each one stands in for."""

from __future__ import annotations

from exgate.sandbox.venue import SandboxVenue
from exgate.sandbox.venues.binanceusdm import BinanceUsdm
from exgate.sandbox.venues.bybit import Bybit
from exgate.sandbox.venues.hyperliquid import Hyperliquid
from exgate.sandbox.venues.pacifica import Pacifica

VENUES: dict[str, type[SandboxVenue]] = {
    BinanceUsdm.name: BinanceUsdm,
    Bybit.name: Bybit,
    Hyperliquid.name: Hyperliquid,
    Pacifica.name: Pacifica,
}

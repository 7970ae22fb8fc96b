"""Registry of the sandbox's simulated venues, by the ccxt id each one stands in for."""

from __future__ import annotations

from exgate.sandbox.venue import SandboxVenue
from exgate.sandbox.venues.binanceusdm import BinanceUsdm

VENUES: dict[str, type[SandboxVenue]] = {
    BinanceUsdm.name: BinanceUsdm,
}

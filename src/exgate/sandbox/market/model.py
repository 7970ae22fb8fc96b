"""One market model for the whole sandbox: an asset's level, its fair-price path, each market's basis.

Every venue's instrument of one asset (``BTC`` on Binance, Bybit, Hyperliquid and Pacifica)
reads the same fair-price path (one :class:`~.tree.ExtremesTree` key per asset), scaled to the
asset's level: so BTC is one price across venues, each venue's off it by its own small basis
and on its own tick grid. The level of an asset is its recorded price on the reference
recording (Hyperliquid's asset contexts: the widest and most recent snapshot of the fixtures),
else the first recorded price an instrument of it brings. Contract multipliers in names
(``1000PEPE``, Hyperliquid's ``kPEPE``) are read off, so those trade at 1000 units' price.
"""

from __future__ import annotations

import re
from decimal import Decimal

from exgate.sandbox.data import Recordings
from exgate.sandbox.path import key64

_REFERENCE_META = "nautilus_trader/crates/adapters/hyperliquid/test_data/http_meta_perp_sample.json"
_REFERENCE_CTXS = "nautilus_trader/crates/adapters/hyperliquid/test_data/ws_all_dexs_asset_ctxs.json"
_MULTIPLIER = re.compile(r"^(1000000|100000|10000|1000|100)(?=[A-Z])|^k(?=[A-Z]{2})")


def asset_of(base: str) -> tuple[str, int]:
    """``(asset, units)`` of an instrument's base: ``1000PEPE`` and ``kPEPE`` are 1000 ``PEPE``."""
    match = _MULTIPLIER.match(base)
    if not match:
        return base.upper(), 1
    units = 1000 if match.group(0) == "k" else int(match.group(0))
    return base[match.end():].upper(), units


class MarketModel:
    """The sandbox's assets: their seeded paths and price levels (quote currency per unit).

    Args:
        seed: the sandbox's seed: the same seed gives the same paths.
        recordings: where the reference levels are read from (``None``: levels come from the
            instruments registered first).
    """

    def __init__(self, seed: int, recordings: Recordings | None = None):
        self.seed = seed
        self.levels: dict[str, Decimal] = {}
        if recordings is not None:
            self._load_reference(recordings)

    def _load_reference(self, recordings: Recordings) -> None:
        meta = recordings.json(_REFERENCE_META) or {}
        feed = recordings.json(_REFERENCE_CTXS) or {}
        ctxs = next((c for dex, c in (feed.get("data") or {}).get("ctxs", []) if dex == ""), [])
        for record, ctx in zip(meta.get("universe", []), ctxs):
            price = ctx.get("midPx") or ctx.get("markPx")
            if not price or record.get("isDelisted"):
                continue
            asset, units = asset_of(str(record.get("name", "")))
            try:
                level = Decimal(str(price)) / units
            except ArithmeticError:
                continue
            if level > 0:
                self.levels.setdefault(asset, level)

    def level(self, base: str, recorded: Decimal) -> Decimal:
        """The price level (quote currency) of one ``base`` unit; ``recorded`` (the instrument's
        own recorded price) sets it when the asset has none yet."""
        asset, units = asset_of(base)
        if asset not in self.levels and recorded > 0:
            self.levels[asset] = recorded / units
        return self.levels.get(asset, recorded / units) * units

    def path_key(self, base: str) -> int:
        """The 64-bit key of the asset's fair-price path (shared by every venue)."""
        return key64(self.seed, "asset", asset_of(base)[0])

    def market_key(self, venue: str, venue_id: str) -> int:
        """The 64-bit key of one market's own randomness (flow, volume, basis)."""
        return key64(self.seed, "market", venue, venue_id)

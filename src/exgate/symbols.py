"""Symbol resolution: every form a client may send, to one market of a venue.

Accepted forms (case-insensitive):

* the ccxt unified symbol, URL-decoded: ``BTC/USDT:USDT`` (perpetual), ``BTC/USDT`` (spot);
* the dashed form: ``BTC-USDT`` (spot), ``BTC-USDT-PERP`` (perpetual settled in the quote);
* the venue's own id: ``BTCUSDT``;
* a bare base: ``BTC``, meaning the venue's main perpetual (linear, settled in the first of
  the venue's preferred settle currencies that lists it).

An unknown symbol raises :class:`~exgate.errors.UnknownSymbol` listing close matches.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from exgate.errors import ECHO_LIMIT, UnknownSymbol, echo
from exgate.models import Market, MarketType

DEFAULT_SETTLE_PREFERENCE: tuple[str, ...] = ("USDT", "USDC", "USD")


def dashed(market: Market) -> str:
    """The dashed form of a market: ``BTC-USDT`` (spot), ``BTC-USDT-PERP`` (perpetual)."""
    if market.type is MarketType.PERPETUAL:
        return f"{market.base}-{market.quote}-PERP"
    return f"{market.base}-{market.quote}" if market.type is MarketType.SPOT else market.symbol


class SymbolIndex:
    """Look-up table from every accepted symbol form to a :class:`Market`.

    Built once per load of a venue's markets; look-ups are dictionary reads.
    """

    def __init__(self, markets: Iterable[Market], settle_preference: Sequence[str] = DEFAULT_SETTLE_PREFERENCE):
        self._by_key: dict[str, Market] = {}
        self._main_perp: dict[str, Market] = {}
        self.markets: dict[str, Market] = {}
        ranked: dict[str, tuple[int, Market]] = {}
        rank_of = {code: i for i, code in enumerate(settle_preference)}
        for market in markets:
            self.markets[market.symbol] = market
            for key in (market.symbol, dashed(market), market.id):
                self._by_key.setdefault(key.upper(), market)
            if market.type is MarketType.PERPETUAL and market.active:
                rank = rank_of.get((market.settle or "").upper(), len(rank_of))
                # linear (settle == quote) beats inverse for the same base
                rank = rank * 2 + (0 if market.settle == market.quote else 1)
                best = ranked.get(market.base.upper())
                if best is None or rank < best[0]:
                    ranked[market.base.upper()] = (rank, market)
        self._main_perp = {base: m for base, (_, m) in ranked.items()}

    def find(self, raw: str) -> Market | None:
        """The market ``raw`` names, or ``None`` (no suggestions computed: a dictionary read)."""
        key = raw.strip().upper()
        market = self._by_key.get(key)
        if market is not None:
            return market
        if key.endswith("-PERP") and key.count("-") == 1:  # "BTC-PERP": main perpetual
            key = key[: -len("-PERP")]
        return self._main_perp.get(key)

    def resolve(self, raw: str) -> Market:
        """Return the market ``raw`` names (:meth:`find`, raising when there is none).

        Raises:
            UnknownSymbol: nothing matches; ``extra['suggestions']`` holds up to five close
                matches in dashed and unified form.
        """
        market = self.find(raw)
        if market is not None:
            return market
        raise UnknownSymbol(
            f"symbol {echo(raw)} is not a market of this exchange",
            field="symbol",
            suggestions=self.suggest(raw[:ECHO_LIMIT]),
        )

    def suggest(self, raw: str, limit: int = 5) -> list[str]:
        """Close matches for ``raw``: same-base markets first, then spelling neighbours."""
        key = raw.strip().upper()
        base = key.replace("/", "-").replace(":", "-").split("-")[0]
        same_base = [m for m in self.markets.values() if m.base.upper() == base]
        same_base.sort(key=lambda m: (m.type is not MarketType.PERPETUAL, m.symbol))
        out = [m.symbol for m in same_base]
        for match in difflib.get_close_matches(key, list(self._by_key), n=limit * 2, cutoff=0.6):
            symbol = self._by_key[match].symbol
            if symbol not in out:
                out.append(symbol)
        return out[:limit]

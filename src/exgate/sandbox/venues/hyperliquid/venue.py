"""Hyperliquid perpetuals, as served by the sandbox under ``POST /hyperliquid/info``.

Every public query is one ``POST /info`` with a JSON body ``{"type": ...}``; wire formats follow
https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint (and its
``perpetuals`` page): ``meta``, ``metaAndAssetCtxs``, ``allMids``, ``l2Book``, ``candleSnapshot``,
``recentTrades``, ``fundingHistory``, ``perpDexs``, ``spotMeta``, ``spotMetaAndAssetCtxs`` and
``exchangeStatus``. Numbers are decimal strings printed the way Hyperliquid prints them
(``"110427.0"``, ``"4.11882"``); times are integer ms.

Recorded sources (nautilus_trader's Hyperliquid test data): the perp universe
(``http_meta_perp_sample.json``: BTC, ETH, ATOM), the real asset contexts of the main dex
(``ws_all_dexs_asset_ctxs.json``, dex ``""``; aligned by index with the universe, as Hyperliquid
never reorders it: 0 BTC, 1 ETH, 2 ATOM) and the BTC order book (``http_l2_book_btc.json``);
the spot tokens and pairs are a catalogue of real Hyperliquid token names (:mod:`.spot`).
Prices at every clock reading, t0 included, come from the market model's book (``sim.book``) on
Hyperliquid's grid (``l2Book``: 20 levels a side, grouped by ``nSigFigs``/``mantissa`` when
asked, :func:`.grid.aggregate`); candles aggregate the model's trades (``n`` its trade count,
``1M`` calendar months, only the latest 5000 candles of an interval served); the contexts keep
the recorded field set with the model's values: oracle the index, mark the index times its
premium, the hour's predicted funding, open interest, and the previous day's price and volumes from the 24 h minute candles. ``fundingHistory`` settles
every hour at its own rate (the hour's premium averaged, plus the interest).

Prices obey Hyperliquid's perp rule at every clock reading: at most 5 significant figures
(integers always allowed) and at most ``6 - szDecimals`` decimals.

Errors as Hyperliquid answers them: a body that is not JSON gets HTTP 400, an unknown ``type``
or a missing/invalid field HTTP 422 with the plain text ``Failed to deserialize the JSON body into
the target type`` and nothing more (as reported from the real API, e.g. ccxt/ccxt#26071: ccxt
raises ``ExchangeError``); ``l2Book`` and ``recentTrades`` of an unknown coin answer ``null``,
``candleSnapshot`` and ``fundingHistory`` of one an empty list.
"""

from __future__ import annotations

import hashlib
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from exgate.sandbox.data import D, Recordings
from exgate.sandbox.sim import Clock, Instrument, InstrumentSim
from exgate.intervals import interval_ms
from exgate.sandbox.venue import SandboxVenue, json_response
from exgate.sandbox.venues.months import month_spans
from exgate.sandbox.venues.hyperliquid.grid import (MANTISSA_CHOICES, SIG_FIG_CHOICES, aggregate, hl_price, num,
                                                     price_decimals, price_tick)
from exgate.sandbox.venues.hyperliquid.spot import spot_contexts, spot_meta
from exgate.sandbox.venues.hyperliquid.account_info import ACCOUNT_INFO_HANDLERS, AccountInfo
from exgate.sandbox.venues.hyperliquid.exchange import ExchangeEndpoint
from exgate.sandbox.accounts.keys import evm_credentials

_NAUTILUS = "nautilus_trader/crates/adapters/hyperliquid/test_data/"
_BOOK_LEVELS = 20
Level = tuple[Decimal, Decimal, int]
"""A book level as served: price, size, orders."""
_GROUPED_DEPTH = 1000
"""Model levels read for a grouped (``nSigFigs``) book: the deepest book the model gives."""
_MAX_CANDLES = 5000
_RECENT_TRADES = 10
_FUNDING_PAGE = 500
_HOUR = 3_600_000
_INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "3d", "1w", "1M")


def _hash_int(*parts: object) -> int:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _hex(nbytes: int, *parts: object) -> str:
    return "0x" + hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=nbytes).hexdigest()


def _reject(detail: str, status: int = 422) -> Response:
    """Hyperliquid's plain-text refusal of a body it cannot read.

    422 (a JSON body of the wrong shape) answers the bare ``Failed to deserialize the JSON body
    into the target type``: Hyperliquid does not pass on which field failed, so ``detail`` stays
    out of it. 400 (not JSON at all) keeps axum's ``Failed to parse the request body as JSON: ...``.
    """
    if status == 422:
        return PlainTextResponse("Failed to deserialize the JSON body into the target type", status_code=422)
    return PlainTextResponse(f"Failed to parse the request body as JSON: {detail}", status_code=status)


def _ms(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class Hyperliquid(AccountInfo, ExchangeEndpoint, SandboxVenue):
    """Hyperliquid perpetuals (main dex, USDC collateral): public and account ``POST /info``
    types, signed actions on ``POST /exchange`` (:mod:`.account_info`, :mod:`.exchange`)."""

    name = "hyperliquid"
    settle_currency = "USDC"
    TAKER_FEE, MAKER_FEE = Decimal("0.00045"), Decimal("0.00015")
    """Hyperliquid's base tier (perps): 0.045 % taker, 0.015 % maker."""

    def __init__(self, recordings: Recordings, *, seed: int, clock: Clock, t0_ms: int, model=None, **kwargs):
        self._ctxs: dict[str, dict] = {}
        self._spot_meta: dict = spot_meta()
        self.seed = seed
        self._init_exchange()
        super().__init__(recordings, seed=seed, clock=clock, t0_ms=t0_ms, model=model, **kwargs)
        self.desk.engine.taker_fee, self.desk.engine.maker_fee = self.TAKER_FEE, self.MAKER_FEE
        self._t0_mid = {coin: self._mid(sim, t0_ms) for coin, sim in self.sims.items()}

    def new_account_credentials(self) -> tuple[str, dict[str, str]]:
        """A secp256k1 key pair: ``walletAddress`` (the account id) and ``privateKey``."""
        return evm_credentials()

    def max_leverage(self, venue_id: str) -> int:
        """The universe record's ``maxLeverage`` (20 when it has none)."""
        return int(self.instruments[venue_id].raw.get("maxLeverage", 20))

    # -- instruments ------------------------------------------------------------------------
    def load(self, recordings: Recordings) -> list[Instrument]:
        meta = recordings.json(_NAUTILUS + "http_meta_perp_sample.json") or {}
        feed = recordings.json(_NAUTILUS + "ws_all_dexs_asset_ctxs.json") or {}
        main_ctxs = next((ctxs for dex, ctxs in feed.get("data", {}).get("ctxs", []) if dex == ""), [])
        book = recordings.json(_NAUTILUS + "http_l2_book_btc.json") or {}
        out = []
        for record, ctx in zip(meta.get("universe", []), main_ctxs):
            raw = {k: v for k, v in record.items() if v is not None}  # the wire omits unset flags
            inst = self._instrument(raw, ctx)
            if book.get("coin") == inst.venue_id and len(book.get("levels", [])) == 2:
                bids, asks = book["levels"]
                inst.bids = [(D(lv["px"]), D(lv["sz"])) for lv in bids]
                inst.asks = [(D(lv["px"]), D(lv["sz"])) for lv in asks]
                inst.price = inst.bids[0][0]
            out.append(inst)
        return out

    def _instrument(self, raw: dict, ctx: dict) -> Instrument:
        """An instrument from a universe record and its asset context, with a book at ``midPx``."""
        sz_decimals = int(raw["szDecimals"])
        lot = Decimal(1).scaleb(-sz_decimals)
        mid = D(ctx.get("midPx") or ctx["markPx"])
        tick = price_tick(mid, sz_decimals)
        best_bid = mid.quantize(tick, rounding=ROUND_FLOOR)
        best_ask = mid.quantize(tick, rounding=ROUND_CEILING)
        if best_bid == best_ask:
            best_bid, best_ask = best_bid - tick, best_ask + tick
        unit = max(lot, (Decimal(2000) / mid).quantize(lot))
        inst = Instrument(venue_id=raw["name"], base=raw["name"], quote="USDC", tick=tick, lot=lot,
                          price=best_bid, funding_rate=D(ctx.get("funding") or "0"),
                          volume_24h=D(ctx.get("dayBaseVlm") or "0") or unit * 1000, trade_size=unit, raw=raw,
                          funding_interval_ms=_HOUR)
        inst.bids = [(best_bid - tick * i, unit * (1 + i * 7 % 5)) for i in range(_BOOK_LEVELS)]
        inst.asks = [(best_ask + tick * i, unit * (1 + i * 3 % 5)) for i in range(_BOOK_LEVELS)]
        inst.bids = [(p, s) for p, s in inst.bids if p > 0]
        self._ctxs[inst.venue_id] = ctx
        return inst

    def synthetic_instruments(self) -> list[Instrument]:
        out = []
        for name, sz_decimals, leverage, mid, funding, volume in (
            ("BTC", 5, 40, "65000.5", "0.0000125", "20000.0"),
            ("ETH", 4, 25, "3200.05", "0.0000125", "300000.0"),
            ("SOL", 2, 20, "150.005", "0.0000100", "3000000.0"),
        ):
            ctx = {"funding": funding, "openInterest": "1000.0", "prevDayPx": mid, "dayNtlVlm": num(D(volume) * D(mid)),
                   "premium": "0.0", "oraclePx": mid, "markPx": mid, "midPx": mid, "impactPxs": [mid, mid],
                   "dayBaseVlm": volume}
            raw = {"name": name, "szDecimals": sz_decimals, "maxLeverage": leverage}
            out.append(self._instrument(raw, ctx))
        return out

    # -- simulated state ------------------------------------------------------------------------
    def _sz_decimals(self, sim: InstrumentSim) -> int:
        return int(sim.instrument.raw["szDecimals"])

    def _book(self, sim: InstrumentSim, now: int, depth: int = _BOOK_LEVELS, *, n_sig_figs: int | None = None,
              mantissa: int | None = None) -> tuple[list[Level], list[Level]]:
        """The sim's book as ``l2Book`` lists it: ``(px, sz, n)`` per level, best first, at most
        ``depth`` a side, on Hyperliquid's grid or grouped to ``n_sig_figs``/``mantissa`` (bids
        rounded down, asks up, equal prices merged). ``n`` (orders at a level) is seeded per model
        level and second (1-3; recorded books show 1-2), summed over a group: the model has
        sizes, not orders."""
        grouped = n_sig_figs is not None
        bids, asks = sim.book(now, _GROUPED_DEPTH if grouped else depth)
        sz, coin, second = self._sz_decimals(sim), sim.instrument.venue_id, now // 1000

        def side(levels, tag: str, bid: bool):
            counted = ((p, q, 1 + _hash_int(self.seed, coin, tag, second, p) % 3) for p, q in levels)
            return aggregate(counted, sz, bid=bid, n_sig_figs=n_sig_figs, mantissa=mantissa, limit=depth)

        return side(bids, "b", True), side(asks, "a", False)

    def _mid(self, sim: InstrumentSim, now: int) -> Decimal:
        bids, asks = self._book(sim, now, 1)
        if bids and asks:
            return (bids[0][0] + asks[0][0]) / 2
        return sim.price(now)

    def _px(self, sim: InstrumentSim, price: Decimal, extra_decimals: int = 0) -> str:
        """A price on Hyperliquid's grid for the asset (5 significant figures, at most
        ``6 - szDecimals`` decimals; averages may carry ``extra_decimals`` more)."""
        places = price_decimals(price, self._sz_decimals(sim)) + extra_decimals
        return num(price.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN))

    def _ctx(self, sim: InstrumentSim, now: int) -> dict:
        """The asset context at ``now`` in the recorded field set: ``oraclePx`` the model's index,
        ``markPx`` its mark, ``premium`` their spread, ``funding`` the hour's predicted rate,
        ``openInterest`` the model's, ``prevDayPx``/``dayNtlVlm``/``dayBaseVlm`` from the same 24 h
        minute candles as every venue's 24 h statistics; ``impactPxs`` the book's touch."""
        rec = self._ctxs[sim.instrument.venue_id]
        mid = self._mid(sim, now)
        index, mark = sim.index_price(now), sim.mark_price(now)
        stats = sim.stats_24h(now)
        bids, asks = self._book(sim, now, 1)
        impact = [bids[0][0], asks[0][0]] if bids and asks else [mid, mid]
        fresh = {
            "funding": num(sim.funding_rate(now)), "openInterest": num(sim.open_interest(now)),
            "prevDayPx": self._px(sim, stats["open"]), "dayNtlVlm": num(stats["quote_volume"].quantize(Decimal("0.000001"))),
            "premium": num(((mark - index) / index).quantize(Decimal("0.00000001"))),
            "oraclePx": self._px(sim, index), "markPx": self._px(sim, mark),
            "midPx": num(mid) if rec.get("midPx") is not None else None,
            "impactPxs": [self._px(sim, px, extra_decimals=1) for px in impact] if rec.get("impactPxs") else rec.get("impactPxs"),
            "dayBaseVlm": num(stats["volume"]),
        }
        return {**rec, **{k: v for k, v in fresh.items() if k in rec}}

    def _universe(self) -> list[dict]:
        return [i.raw for i in self.instruments.values()]

    def _meta(self) -> dict:
        return {"universe": self._universe(), "marginTables": [], "collateralToken": 0}

    # -- info types ------------------------------------------------------------------------------
    def _coin(self, body: dict) -> tuple[InstrumentSim | None, Response | None]:
        coin = body.get("coin")
        if not isinstance(coin, str):
            return None, _reject("missing field `coin`")
        return self.sims.get(coin), None

    def _info_meta(self, body: dict, now: int) -> Response:
        return json_response(self._meta() if body.get("dex", "") == "" else None)

    def _info_meta_and_ctxs(self, body: dict, now: int) -> Response:
        if body.get("dex", "") != "":
            return json_response(None)
        return json_response([self._meta(), [self._ctx(s, now) for s in self.sims.values()]])

    def _info_all_mids(self, body: dict, now: int) -> Response:
        return json_response({coin: num(self._mid(sim, now)) for coin, sim in self.sims.items()})

    def _info_l2_book(self, body: dict, now: int) -> Response:
        """``l2Book``: 20 levels a side, optionally grouped (``nSigFigs`` 2-5 or null, ``mantissa``
        1/2/5 with ``nSigFigs`` 5 only; other values are refused like a body of the wrong shape)."""
        sim, error = self._coin(body)
        if error:
            return error
        n_sig_figs, mantissa = body.get("nSigFigs"), body.get("mantissa")
        if n_sig_figs is not None and n_sig_figs not in SIG_FIG_CHOICES or isinstance(n_sig_figs, bool):
            return _reject("nSigFigs: invalid value")
        if mantissa is not None and (mantissa not in MANTISSA_CHOICES or n_sig_figs != 5 or isinstance(mantissa, bool)):
            return _reject("mantissa: invalid value")
        if sim is None:
            return json_response(None)
        bids, asks = self._book(sim, now, n_sig_figs=n_sig_figs, mantissa=mantissa)
        levels = [[{"px": num(p), "sz": num(q), "n": n} for p, q, n in side] for side in (bids, asks)]
        return json_response({"coin": sim.instrument.venue_id, "time": now, "levels": levels})

    def _info_recent_trades(self, body: dict, now: int) -> Response:
        sim, error = self._coin(body)
        if error or sim is None:
            return error or json_response(None)
        return json_response([self.trade_row(sim, t) for t in reversed(sim.trades(now, _RECENT_TRADES))])

    def trade_row(self, sim: InstrumentSim, t: dict) -> dict:
        """A model trade (:meth:`InstrumentSim.trades`) as ``recentTrades`` and the ``trades``
        stream list it: ``side`` the taker's (``B`` bought), ``users`` [buyer, seller]."""
        coin, sz = sim.instrument.venue_id, self._sz_decimals(sim)
        return {
            "coin": coin, "side": "A" if t["buyer_maker"] else "B", "px": num(hl_price(t["price"], sz)),
            "sz": num(t["size"]), "hash": _hex(32, self.seed, coin, t["id"]), "time": t["time"],
            "tid": t["id"], "users": [_hex(20, self.seed, coin, t["id"], "buyer"),
                                      _hex(20, self.seed, coin, t["id"], "seller")],
        }

    def _info_candles(self, body: dict, now: int) -> Response:
        req = body.get("req")
        if not isinstance(req, dict):
            return _reject("missing field `req`")
        for key in ("coin", "interval", "startTime"):
            if key not in req:
                return _reject(f"req: missing field `{key}`")
        if req["interval"] not in _INTERVALS:
            expected = ", ".join(f"`{i}`" for i in _INTERVALS)
            return _reject(f"req.interval: unknown variant `{req['interval']}`, expected one of {expected}")
        start, end = _ms(req["startTime"]), _ms(req.get("endTime", now))
        if start is None or end is None:
            return _reject("req.startTime/endTime: invalid type, expected u64")
        sim = self.sims.get(req["coin"]) if isinstance(req["coin"], str) else None
        if sim is None:
            return json_response([])
        return json_response(self._candles(sim, req["interval"], start, end, now))

    def _candles(self, sim: InstrumentSim, interval: str, start: int, end: int, now: int) -> list[dict]:
        """Candles overlapping ``[start, end]``, the forming one included, from the last 5000;
        ``1M`` candles are calendar months (UTC). ``n`` is the model's trade count."""
        now = sim.core.clamp(now)
        last_ms = min(now, end)
        if interval == "1M":
            spans = month_spans(start, last_ms)
        else:
            step = interval_ms(interval)
            first = max(start // step, now // step - _MAX_CANDLES + 1)
            spans = [(k * step, (k + 1) * step) for k in range(first, last_ms // step + 1)]
        spans = [(o, n) for o, n in spans if n > sim.earliest_ms][-_MAX_CANDLES:]
        if not spans:
            return []
        inst, sz = sim.instrument, self._sz_decimals(sim)
        return [{"t": c["open_time"], "T": c["close_time"], "s": inst.venue_id, "i": interval,
                 "o": num(hl_price(c["open"], sz)), "c": num(hl_price(c["close"], sz)),
                 "h": num(hl_price(c["high"], sz)), "l": num(hl_price(c["low"], sz)),
                 "v": num(c["volume"]), "n": c["trades"]}
                for c in sim.span_candles(spans, now)]

    def _info_funding_history(self, body: dict, now: int) -> Response:
        sim, error = self._coin(body)
        if error:
            return error
        start, end = _ms(body.get("startTime")), _ms(body.get("endTime", now))
        if start is None or end is None:
            return _reject("startTime/endTime: invalid type, expected u64")
        if sim is None:
            return json_response([])
        # the model's settled hours from startTime, each at its own rate (its premium's average
        # plus the interest), 500 at most as on Hyperliquid; premium: the model's at settlement
        settled = sim.funding_history(now, start_ms=start, end_ms=end, limit=_FUNDING_PAGE)
        premium = sim.core.premium
        return json_response([{"coin": sim.instrument.venue_id, "fundingRate": num(row["rate"]),
                               "premium": num(Decimal(repr(premium(row["time"]))).quantize(Decimal("0.00000001"))),
                               "time": row["time"]} for row in settled])

    def _info_perp_dexs(self, body: dict, now: int) -> Response:
        return json_response([None])  # only the main dex; builder-deployed (HIP-3) dexs are not simulated

    def _info_spot_meta(self, body: dict, now: int) -> Response:
        return json_response(self._spot_meta)

    def _info_spot_meta_and_ctxs(self, body: dict, now: int) -> Response:
        def perp_mid(coin: str) -> Decimal | None:
            sim = self.sims.get(coin)
            return self._mid(sim, now) if sim is not None else None

        return json_response([self._spot_meta, spot_contexts(self._spot_meta, perp_mid)])

    def _info_exchange_status(self, body: dict, now: int) -> Response:
        """``exchangeStatus`` (ccxt's fetchStatus and fetchTime): ``time`` is the venue's server
        time (the sandbox clock plus its skew)."""
        return json_response({"specialStatuses": None, "time": self.server_now()})

    # -- endpoint ----------------------------------------------------------------------------------
    _HANDLERS = {
        "meta": _info_meta,
        "metaAndAssetCtxs": _info_meta_and_ctxs,
        "allMids": _info_all_mids,
        "l2Book": _info_l2_book,
        "recentTrades": _info_recent_trades,
        "candleSnapshot": _info_candles,
        "fundingHistory": _info_funding_history,
        "perpDexs": _info_perp_dexs,
        "spotMeta": _info_spot_meta,
        "spotMetaAndAssetCtxs": _info_spot_meta_and_ctxs,
        "exchangeStatus": _info_exchange_status,
        **ACCOUNT_INFO_HANDLERS,
    }

    async def info(self, request: Request) -> Response:
        """``POST /info``: dispatch on the body's ``type``."""
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return _reject(str(exc), status=400)
        if not isinstance(body, dict):
            return _reject("invalid type: expected internally tagged enum InfoRequest")
        kind = body.get("type")
        if not isinstance(kind, str):
            return _reject("missing field `type`")
        handler = self._HANDLERS.get(kind)
        if handler is None:
            expected = ", ".join(f"`{k}`" for k in self._HANDLERS)
            return _reject(f"unknown variant `{kind}`, expected one of {expected}")
        return handler(self, body, self.now())

    def routes(self) -> list[BaseRoute]:
        return [Route("/info", self.info, methods=["POST"]), Route("/exchange", self.exchange, methods=["POST"])]

    def ws_protocol(self):
        """``/ws``: the public feeds (:mod:`.ws`)."""
        from exgate.sandbox.venues.hyperliquid.ws import HyperliquidWs

        return HyperliquidWs(self)

"""Base class of a simulated venue: its instruments, their simulations and its routes."""

from __future__ import annotations

import abc
from typing import ClassVar

from starlette.responses import Response
from starlette.routing import BaseRoute

import orjson

from exgate.sandbox.accounts import AccountDesk, DEFAULT_HISTORY_LAG_MS, hmac_credentials
from exgate.sandbox.data import Recordings
from exgate.sandbox.market.model import MarketModel
from exgate.sandbox.sim import Clock, Instrument, InstrumentSim
from exgate.sandbox.ws.protocol import WsProtocol

def json_response(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response encoded with orjson (Decimals must already be strings)."""
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers)


class SandboxVenue(abc.ABC):
    """One simulated exchange, served under ``/{name}/``.

    Subclasses load their :class:`Instrument` list from recorded payloads (or synthesize one)
    and expose the venue's real REST paths as Starlette routes. Their markets read the shared
    ``model`` (one fair price per asset across venues; default: a model of their own).
    """

    name: ClassVar[str]
    settle_currency: ClassVar[str] = "USDT"
    """The currency sandbox accounts of this venue are funded and margined in."""
    stats = None
    """The sandbox's :class:`~exgate.sandbox.stats.SandboxStats` (set by the app), where
    private handlers count the signed actions they accept (``record_action``)."""

    def __init__(self, recordings: Recordings, *, seed: int, clock: Clock, t0_ms: int,
                 model: MarketModel | None = None, history_lag_ms: int = DEFAULT_HISTORY_LAG_MS):
        self.clock = clock
        self.skew_ms = 0
        """How far this venue's server clock runs ahead of the sandbox clock (ms; negative:
        behind). Set by ``create_sandbox_app(clock_skew=...)`` and ``POST /__sandbox/clock``;
        :meth:`server_now` adds it."""
        self.recordings = recordings
        instruments = self.load(recordings)
        self.synthetic = not instruments
        if not instruments:
            instruments = self.synthetic_instruments()
        self.instruments: dict[str, Instrument] = {i.venue_id: i for i in instruments}
        self.model = model if model is not None else MarketModel(seed, recordings)
        self.sims: dict[str, InstrumentSim] = {
            i.venue_id: InstrumentSim(i, seed, t0_ms, model=self.model, venue=self.name) for i in instruments}
        self.desk = AccountDesk(self.name, self.sims, clock, currency=self.settle_currency,
                                new_credentials=self.new_account_credentials, max_leverage=self.max_leverage,
                                default_leverage=self.default_leverage,
                                history_lag_ms=history_lag_ms)
        """Accounts and client orders (:class:`~exgate.sandbox.accounts.AccountDesk`)."""

    def new_account_credentials(self) -> tuple[str, dict[str, str]]:
        """``(account_id, ccxt credential fields)`` for a new sandbox account: by default an
        API key and secret (``apiKey``/``secret``, the key being the account id); wallet venues
        override this with a key pair (``walletAddress``/``privateKey``)."""
        return hmac_credentials()

    def max_leverage(self, venue_id: str) -> int:
        """The highest leverage ``venue_id`` allows (venues read it from their instrument records)."""
        return 100

    def default_leverage(self, venue_id: str) -> int:
        """The leverage a new account has in ``venue_id``: 20, or the market's maximum if lower
        (Binance's, Bybit's and Hyperliquid's default)."""
        return min(20, self.max_leverage(venue_id))

    def now(self) -> int:
        """The sandbox clock in ms: the model clock every price, candle, trade and fill reads."""
        return self.clock()

    def server_now(self) -> int:
        """This venue's server time in ms: the sandbox clock plus :attr:`skew_ms`. What its time
        endpoint answers, its answers' server-time fields carry and its signed-request windows
        (Binance ``recvWindow``, Bybit ``X-BAPI-RECV-WINDOW``, Hyperliquid nonces, Pacifica
        ``expiry_window``) are checked against; market data stays on :meth:`now`."""
        return self.clock() + self.skew_ms

    @abc.abstractmethod
    def load(self, recordings: Recordings) -> list[Instrument]:
        """Instruments built from recorded payloads; empty when none are available."""

    @abc.abstractmethod
    def synthetic_instruments(self) -> list[Instrument]:
        """A small generated instrument set used when no recordings are available."""

    @abc.abstractmethod
    def routes(self) -> list[BaseRoute]:
        """The venue's REST routes, relative to ``/{name}``."""

    def ws_protocol(self) -> WsProtocol | None:
        """The venue's WebSocket protocol (:mod:`exgate.sandbox.ws`), served at its real WS
        paths under ``/{name}``; ``None``: the venue has no WebSocket side yet."""
        return None

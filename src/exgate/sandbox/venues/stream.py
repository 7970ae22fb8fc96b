"""What the venues' WebSocket feeds share: when a snapshot is due, and the tape of new prints.

A venue's :class:`~exgate.sandbox.ws.protocol.WsProtocol` keeps one :class:`Feed` per
subscription (the value of ``session.subscriptions[topic]``). Everything is read off the
sandbox clock (``now_ms``), never off real time: with a frozen clock a snapshot feed sends its
first snapshot and then nothing until the clock moves, which is what tests rely on.

:class:`TradeTape` hands out, once each, the public prints of one market that happened after
its cursor: the model's trades (with the client prints of the matching engine, as
:meth:`InstrumentSim.trades` merges them) and the liquidations of the shared model
(:func:`exgate.sandbox.market.liquidations.liquidations_between`), in time order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from exgate.sandbox.market.liquidations import Liquidation, liquidations_between
from exgate.sandbox.sim import InstrumentSim
from exgate.sandbox.ws.hub import WsFault
from exgate.sandbox.ws.session import WsSession

MAX_BACKLOG_MS = 60_000
"""How far back a tape reads when the clock jumped: prints older than this before ``now`` are
skipped (a client that sleeps through an hour of sandbox time gets the last minute)."""

BATCH = 1000
"""Most trades one read returns (the rest follow on the next tick)."""

LIQUIDATION_ID_BASE = 2 * 10**15
"""Trade ids of liquidation prints start here: above the model's (``second * fills``) and the
matching engine's client prints (from 10**15)."""


def seeded(*parts: object) -> int:
    """A deterministic 64-bit integer of ``parts``."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


@dataclass
class Feed:
    """One subscription's state.

    Attributes:
        kind: the venue's channel (``l2Book``, ``book``, ``trades``...).
        sim: the market (``None`` for all-market feeds such as ``allMids``/``prices``).
        params: the subscription's own parameters (``nSigFigs``, ``agg_level``, ``interval``...).
        last_ms: sandbox time of the last push (``None``: nothing sent yet).
        last: the last payload sent (to send a snapshot feed only when it changed).
        sent: per-key payloads already sent (candles: open time → row).
        tape: the trade feed's :class:`TradeTape`.
        reset_seen: the ``reset`` fault epoch this feed last applied.
        ready: the subscription's first push is done (ticks leave the feed alone until then, so
            a tick running while the acknowledgement is sent neither pushes twice nor first).
    """

    kind: str
    sim: InstrumentSim | None = None
    params: dict = field(default_factory=dict)
    last_ms: int | None = None
    last: Any = None
    sent: dict = field(default_factory=dict)
    tape: TradeTape | None = None
    reset_seen: int = 0
    ready: bool = False

    def due(self, now_ms: int, every_ms: int) -> bool:
        """Whether ``every_ms`` of sandbox time have passed since the last push."""
        return self.last_ms is None or now_ms - self.last_ms >= every_ms

    def take_reset(self, session: WsSession) -> bool:
        """``True`` once after each ``POST /__sandbox/ws?fault=reset`` of the session's venue."""
        epoch = session.hub.fault_epoch(session.venue, WsFault.RESET)
        if epoch != self.reset_seen:
            self.reset_seen = epoch
            return True
        return False


@dataclass(frozen=True)
class LiquidationPrint:
    """A liquidation as a public print: ``event`` from the shared model, ``index`` its place
    among the market's liquidations of that ms, ``id`` a trade id of its own."""

    event: Liquidation
    index: int
    id: int

    @property
    def time(self) -> int:
        return self.event.time_ms


class TradeTape:
    """The prints of one market after a cursor, each handed out once.

    Args:
        sim: the market.
        venue: the venue's name (the liquidation model's key).
        start_ms: prints at or before this time are never handed out.
    """

    def __init__(self, sim: InstrumentSim, venue: str, start_ms: int) -> None:
        self.sim, self.venue = sim, venue
        self.cursor_ms = start_ms
        self._at_cursor: set | None = None  # None: every print at the cursor counts as handed out

    def read(self, now_ms: int) -> list[dict | LiquidationPrint]:
        """The prints with ``cursor < time <= now`` (and those at the cursor not yet handed
        out), oldest first: trade dicts as :meth:`InstrumentSim.trades` gives them, and
        :class:`LiquidationPrint` objects. At most :data:`BATCH` trades a read."""
        if now_ms < self.cursor_ms:
            return []
        start = max(self.cursor_ms, now_ms - MAX_BACKLOG_MS)
        trades = self.sim.trades(now_ms, BATCH, start_ms=start)
        end = trades[-1]["time"] if len(trades) == BATCH else now_ms  # a full batch: the rest next tick
        events = liquidations_between(self.sim, self.venue, start, end + 1)
        prints: list = [t for t in trades if t["time"] <= end]
        seen_ms: dict[int, int] = {}
        for event in events:
            index = seen_ms[event.time_ms] = seen_ms.get(event.time_ms, -1) + 1
            ident = LIQUIDATION_ID_BASE + seeded(self.sim.seed, self.venue, self.sim.instrument.venue_id,
                                                 event.time_ms, index) % 10**15
            prints.append(LiquidationPrint(event, index, ident))
        prints.sort(key=lambda p: (p["time"], p["id"]) if isinstance(p, dict) else (p.time, p.id))
        out = []
        for p in prints:
            time_ms, key = (p["time"], ("t", p["id"])) if isinstance(p, dict) else (p.time, ("l", p.id))
            if time_ms < self.cursor_ms or (time_ms == self.cursor_ms
                                            and (self._at_cursor is None or key in self._at_cursor)):
                continue
            if time_ms > self.cursor_ms:
                self.cursor_ms, self._at_cursor = time_ms, set()
            self._at_cursor.add(key)
            out.append(p)
        if end > self.cursor_ms:
            self.cursor_ms, self._at_cursor = end, set()
        return out

"""Bybit's book versions: one ``u`` and ``seq`` for REST ``/v5/market/orderbook`` and the
``orderbook.{depth}.{symbol}`` stream.

The book is read on the :data:`~exgate.sandbox.ws.books.GRID_MS` (100 ms) grid, every depth's
stream pushes one message per grid step (a delta, empty when nothing changed), so ``u``
rises by one per message and equals :data:`UPDATE_ID_BASE` + grid steps since the sandbox's
start; REST's answer at ``now`` is the grid point's book with that ``u`` (and the cross
sequence ``seq``). A client that applies the deltas to the snapshot holds the book REST serves
at that ``u``. https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook ,
https://bybit-exchange.github.io/docs/v5/market/orderbook
"""

from __future__ import annotations

from exgate.sandbox.sim import InstrumentSim
from exgate.sandbox.ws.books import GRID_MS, Book, grid_ms, grid_steps, venue_books

UPDATE_ID_BASE = 342690
"""``u`` at the sandbox's start (``u = 1`` is kept for a reset snapshot)."""

SEQ_BASE = 429272667
"""``seq`` (the cross sequence) at the sandbox's start; it rises by :data:`SEQ_STEP` a grid step."""

SEQ_STEP = 7

STREAM_DEPTHS = (1, 50, 200, 500, 1000)
"""The ``orderbook.{depth}`` levels Bybit publishes for linear contracts."""


def update_id(sim: InstrumentSim, at_ms: int) -> int:
    """The book's ``u`` at the grid point at or before ``at_ms``."""
    return UPDATE_ID_BASE + grid_steps(sim, at_ms)


def cross_seq(sim: InstrumentSim, at_ms: int) -> int:
    """The cross sequence ``seq`` of that grid point."""
    return SEQ_BASE + SEQ_STEP * grid_steps(sim, at_ms)


def version_ms(sim: InstrumentSim, u: int) -> int:
    """The grid point (ms) whose book has ``u`` (inverse of :func:`update_id`)."""
    return (sim.t0_ms // GRID_MS + u - UPDATE_ID_BASE) * GRID_MS


def book_at(venue: object, sim: InstrumentSim, at_ms: int, depth: int) -> Book:
    """``(bids, asks)`` of the grid point at or before ``at_ms`` (the live book while client
    orders overlay the model), ``depth`` levels a side."""
    if sim.clients_on_book():
        return sim.book(at_ms, depth)
    return venue_books(venue).book(sim, grid_ms(at_ms), depth)

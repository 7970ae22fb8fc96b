"""Binance USD-M's book versions: one id space for REST ``/fapi/v1/depth`` and the diff stream.

The book is read on the :data:`~exgate.sandbox.ws.books.GRID_MS` (100 ms) grid: at ``now`` REST
serves the book of the grid point at or before ``now``, with ``lastUpdateId`` =
:data:`UPDATE_ID_BASE` + grid steps since the sandbox's start; the ``@depth`` stream's event
ending at that grid point has ``u`` equal to it. So Binance's documented procedure (buffer the
stream, take a snapshot, drop events with ``u < lastUpdateId``, apply from the one with ``U <=
lastUpdateId <= u``, then each event's ``pu`` equals the previous ``u``) ends with exactly
the book REST serves at that instant.
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly
"""

from __future__ import annotations

from exgate.sandbox.sim import InstrumentSim
from exgate.sandbox.ws.books import GRID_MS, Book, grid_ms, grid_steps, venue_books

UPDATE_ID_BASE = 35263532345
"""``lastUpdateId`` at the sandbox's start (a plausible fapi value; ids only rise from it)."""

DIFF_DEPTH = 1000
"""Levels a side the diff stream tracks: Binance's deepest REST snapshot, so a client's book
of any snapshot ``limit`` stays exact."""


def update_id(sim: InstrumentSim, at_ms: int) -> int:
    """The book version of the grid point at or before ``at_ms``."""
    return UPDATE_ID_BASE + grid_steps(sim, at_ms)


def version_ms(sim: InstrumentSim, update: int) -> int:
    """The grid point (ms) whose book has version ``update`` (the inverse of :func:`update_id`)."""
    return (sim.t0_ms // GRID_MS + update - UPDATE_ID_BASE) * GRID_MS


def book_at(venue: object, sim: InstrumentSim, now_ms: int, depth: int) -> tuple[int, int, Book]:
    """``(lastUpdateId, grid point ms, (bids, asks))`` of ``sim`` at ``now_ms``, ``depth`` levels a
    side. With client orders on the book (a matching engine attached) the live book of ``now_ms``
    is read instead of the grid point's, so an order shows at once."""
    at = grid_ms(now_ms)
    book = sim.book(now_ms, depth) if sim.clients_on_book() else venue_books(venue).book(sim, at, depth)
    return update_id(sim, now_ms), at, book

"""Order books on a time grid, shared by a venue's REST depth and its WebSocket diff stream.

A venue's book stream and its REST depth agree when both read the model's book
(:meth:`~exgate.sandbox.sim.InstrumentSim.book`) at the same grid point: the book version
(Binance ``lastUpdateId``, Bybit ``u``) is a count of grid steps, so a client that applies
the stream's diffs to a REST snapshot holds exactly the book REST serves at that version.

- :func:`grid_ms`: the grid point at or before a time;
- :class:`BookCache`: the book of ``(market, grid point, depth)``, computed once for every
  socket and REST call reading it (the model's book costs a few ms at 1000 levels);
- :func:`book_diff`: the levels that changed between two books, removed ones with size 0;
  :func:`merged_diff` those of a run of books (every level touched on the way, at its last
  size): the one event a client may apply to a snapshot of any book in the run.
"""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal

from exgate.sandbox.sim import InstrumentSim

GRID_MS = 100
"""The book grid (ms): Binance's ``@depth@100ms`` and Bybit's 200/500-level push interval."""

Level = tuple[Decimal, Decimal]
Book = tuple[list[Level], list[Level]]


def grid_ms(now_ms: int, grid: int = GRID_MS) -> int:
    """The grid point at or before ``now_ms`` (ms)."""
    return now_ms // grid * grid


def grid_steps(sim: InstrumentSim, now_ms: int, grid: int = GRID_MS) -> int:
    """Grid steps from the sandbox's start to ``now_ms`` (0 at or before the start): the
    counter book versions are built on."""
    return max(0, now_ms // grid - sim.t0_ms // grid)


class BookCache:
    """Books of ``(market, grid point, depth)``, the most recent :attr:`size` kept.

    Args:
        size: entries kept (least recently used go first).
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._books: OrderedDict[tuple[str, int, int], Book] = OrderedDict()

    def book(self, sim: InstrumentSim, at_ms: int, depth: int) -> Book:
        """``sim.book(at_ms, depth)``: ``(bids, asks)`` best first, ``(price, size)`` Decimals.
        Not cached while client orders overlay the model (they change between reads)."""
        if sim.clients_on_book():
            return sim.book(at_ms, depth)
        key = (sim.instrument.venue_id, at_ms, depth)
        found = self._books.get(key)
        if found is None:
            found = self._books[key] = sim.book(at_ms, depth)
            if len(self._books) > self.size:
                self._books.popitem(last=False)
        else:
            self._books.move_to_end(key)
        return found


def venue_books(venue: object) -> BookCache:
    """The venue's :class:`BookCache`, shared by its REST routes and its sockets."""
    cache = getattr(venue, "_book_cache", None)
    if cache is None:
        cache = BookCache()
        setattr(venue, "_book_cache", cache)
    return cache


def _side_diff(before: list[Level], after: list[Level]) -> list[Level]:
    old = dict(before)
    new = dict(after)
    changed = [(p, s) for p, s in after if old.get(p) != s]
    changed += [(p, Decimal(0)) for p in old if p not in new]
    return changed


def book_diff(before: Book, after: Book) -> tuple[list[Level], list[Level]]:
    """``(bids, asks)`` changes turning ``before`` into ``after``: every level of ``after``
    whose size differs (or is new), and every level of ``before`` gone from ``after`` with
    size ``0`` (how Binance and Bybit print a removed level)."""
    return _side_diff(before[0], after[0]), _side_diff(before[1], after[1])


def merged_diff(books: list[Book]) -> tuple[list[Level], list[Level]]:
    """One diff covering the run ``books`` (oldest first, at least two): every level that
    changed between any two consecutive books, with its size in the last (``0`` when gone).
    Applied to any book of the run it gives the last, as a Binance event covering updates
    ``U..u`` must: a level that came and went in between is in it too (as ``0``)."""
    if len(books) == 2:
        return book_diff(books[0], books[1])
    last = books[-1]
    out = []
    for side in (0, 1):
        touched: set[Decimal] = set()
        for before, after in zip(books, books[1:]):
            touched.update(p for p, _ in _side_diff(before[side], after[side]))
        final = dict(last[side])
        ordered = sorted(touched, reverse=side == 0)  # bids best (highest) first, asks lowest first
        out.append([(p, final.get(p, Decimal(0))) for p in ordered])
    return out[0], out[1]

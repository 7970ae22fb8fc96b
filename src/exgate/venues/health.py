"""Per-venue health from recent upstream outcomes: ``ready``, ``degraded`` or ``unavailable``.

:class:`VenueHealth` keeps the last :data:`RING_SIZE` outcomes of calls that reached the
exchange (see :mod:`exgate.venues.calls`), each stamped with the injected clock, and forgets
those older than :data:`WINDOW_MS`. From them:

* ``loading``: markets not loaded yet and no call has failed (start-up);
* ``unavailable``: markets never loaded and the load failed, or at least
  :data:`UNAVAILABLE_AFTER` calls in the window and every one of them failed (the last
  success, if any, is older than the window);
* ``degraded``: some call in the window failed, but not enough or not all of them for
  ``unavailable``;
* ``ready``: markets loaded and no failure in the window (an idle venue stays ready).

What counts as a failure is :attr:`UpstreamCall.failed`: unreachable, timeout, error answer,
malformed payload, or a 429/418 from the exchange. A request refused by exgate's own budget
never reached the exchange and is not recorded at all: it says nothing about the venue.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from exgate.models import VenueStatus
from exgate.venues.calls import UpstreamCall

RING_SIZE = 20
"""Outcomes kept per venue."""
WINDOW_MS = 60_000
"""Outcomes older than this (ms) no longer count."""
UNAVAILABLE_AFTER = 3
"""Failures in the window, with no success, that make a loaded venue ``unavailable``."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    at_ms: int
    ok: bool


class VenueHealth:
    """Recent upstream outcomes of one venue.

    Args:
        clock: current time in ms (inject a manual clock in tests).
        size: outcomes kept (default :data:`RING_SIZE`).
        window_ms: how long an outcome counts (default :data:`WINDOW_MS`).
        unavailable_after: see :data:`UNAVAILABLE_AFTER`.
    """

    def __init__(self, clock: Callable[[], int], *, size: int = RING_SIZE, window_ms: int = WINDOW_MS,
                 unavailable_after: int = UNAVAILABLE_AFTER):
        self.clock = clock
        self.window_ms = window_ms
        self.unavailable_after = unavailable_after
        self._ring: deque[_Outcome] = deque(maxlen=size)
        self.failures = 0
        """Failures recorded since start."""
        self.last_success_ms: int | None = None
        self.last_error_ms: int | None = None
        self.last_error: str | None = None

    def record(self, call: UpstreamCall) -> None:
        """Record one call that reached the exchange (a :class:`~exgate.venues.calls.CallMeter` observer)."""
        if call.failed:
            self.failure(call.error.detail if call.error is not None else call.status)
        else:
            self.success()

    def success(self) -> None:
        """The exchange answered."""
        now = self.clock()
        self._ring.append(_Outcome(now, True))
        self.last_success_ms = now

    def failure(self, detail: str) -> None:
        """The exchange failed us; ``detail`` is what a client was told."""
        now = self.clock()
        self._ring.append(_Outcome(now, False))
        self.failures += 1
        self.last_error_ms = now
        self.last_error = detail

    def status(self, markets_loaded: bool, load_failed: bool = False) -> VenueStatus:
        """The venue's state now (rules in the module docstring); ``load_failed``: the
        adapter's last market load failed (also when the answer, not the call, was bad)."""
        if not markets_loaded:
            return VenueStatus.UNAVAILABLE if self.failures or load_failed else VenueStatus.LOADING
        now = self.clock()
        recent = [o for o in self._ring if now - o.at_ms <= self.window_ms]
        failed = sum(1 for o in recent if not o.ok)
        if not failed:
            return VenueStatus.READY
        if failed == len(recent) and failed >= self.unavailable_after:
            return VenueStatus.UNAVAILABLE
        return VenueStatus.DEGRADED

    def report(self, markets_loaded: bool, load_failed: bool = False) -> dict[str, object]:
        """``status``, ``last_success_ms``, ``last_success_age_ms``, ``last_error``,
        ``last_error_ms`` and ``last_error_age_ms`` (ms; ``None`` when it never happened)."""
        now = self.clock()
        return {
            "status": self.status(markets_loaded, load_failed),
            "last_success_ms": self.last_success_ms,
            "last_success_age_ms": None if self.last_success_ms is None else max(0, now - self.last_success_ms),
            "last_error": self.last_error,
            "last_error_ms": self.last_error_ms,
            "last_error_age_ms": None if self.last_error_ms is None else max(0, now - self.last_error_ms),
        }

"""A circuit breaker for Redis: after repeated failures stop trying for a while, then probe.

``closed`` lets every call through; ``failure_threshold`` consecutive failures open it. While
``open`` or ``half_open`` no request's call is tried (:meth:`CircuitBreaker.allow` is false):
requests never pay a hanging dependency's timeout for the probe. The probe belongs to a
background task (:meth:`exgate.cache.redis_store.RedisStore.keep_probing`): once ``cooldown_ms``
has passed, :meth:`CircuitBreaker.begin_probe` turns the circuit ``half_open`` and hands out the
one probe; its success closes the circuit, its failure opens it for another cooldown.
The outage is logged as one warning when it opens and one when it closes (never once per
request); the probes in between (``half_open``, back to ``open``) are debug lines. Every change
is reported to ``on_change`` (metrics).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TypeVar

import structlog

log = structlog.get_logger("exgate.cache")

T = TypeVar("T")
D = TypeVar("D")


class CircuitState(StrEnum):
    """Breaker states; the value is the ``state`` label of ``exgate_redis_circuit_state``."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Fail-fast guard around one dependency.

    Args:
        name: what it guards, for the log line.
        clock: current time in ms.
        failure_threshold: consecutive failures that open the circuit.
        cooldown_ms: how long it stays open before the next background probe.
        on_change: called with the new state on every change.
    """

    def __init__(self, name: str, clock: Callable[[], int], *, failure_threshold: int = 3,
                 cooldown_ms: int = 1_000, on_change: Callable[[CircuitState], None] | None = None):
        self.name = name
        self.clock = clock
        self.failure_threshold = failure_threshold
        self.cooldown_ms = cooldown_ms
        self.on_change = on_change
        self.state = CircuitState.CLOSED
        self.failures = 0
        self._opened_ms = 0
        self._probing = False

    def allow(self) -> bool:
        """Whether a request's call may be tried now: only while closed (open and half-open
        skip the dependency; the probe is :meth:`begin_probe`'s, off every request's path)."""
        return self.state is CircuitState.CLOSED

    async def call(self, op: Callable[[], Awaitable[T]], *, timeout_s: float,
                   errors: tuple[type[BaseException], ...], down: D) -> T | D:
        """``op()``, bounded by ``timeout_s``, when a request's call may be tried (:meth:`allow`);
        else ``down``. An error in ``errors`` (give the timeout's among them) counts as a failure
        and gives ``down``; an answer counts as a success. A cancelled call counts as neither
        (it is never the probe: that is :meth:`probe`'s)."""
        if not self.allow():
            return down
        try:
            async with asyncio.timeout(timeout_s):
                result = await op()
        except errors as exc:
            self.failure(exc)
            return down
        self.success()
        return result

    async def probe(self, ping: Callable[[], Awaitable[object]], *, timeout_s: float,
                    errors: tuple[type[BaseException], ...] = (Exception,),
                    on_error: Callable[[BaseException], None] | None = None) -> bool:
        """Send the background probe if one is due (:meth:`begin_probe`): ``ping()`` bounded by
        ``timeout_s``; its answer closes the circuit, an error in ``errors`` (reported to
        ``on_error`` first) opens it again, a cancellation frees the probe slot. Returns whether
        a probe was sent."""
        if not self.begin_probe():
            return False
        try:
            async with asyncio.timeout(timeout_s):
                await ping()
        except errors as exc:
            if on_error is not None:
                on_error(exc)
            self.failure(exc)
        except BaseException:
            self.abandon()
            raise
        else:
            self.success()
        return True

    async def keep_probing(self, ping: Callable[[], Awaitable[object]], *, timeout_s: float,
                           errors: tuple[type[BaseException], ...] = (Exception,),
                           on_error: Callable[[BaseException], None] | None = None, poll_s: float = 0.1) -> None:
        """Run until cancelled: every ``poll_s`` (real time) send the probe if it is due
        (:meth:`probe`). The only path that closes an open circuit: run it as a task its owner
        cancels on close."""
        while True:
            await self.probe(ping, timeout_s=timeout_s, errors=errors, on_error=on_error)
            await asyncio.sleep(poll_s)

    def begin_probe(self) -> bool:
        """Whether the background prober should probe now: the circuit is open, its cooldown
        has passed and no probe is running. A ``True`` turns it ``half_open``; report the
        probe's outcome with :meth:`success`, :meth:`failure` or :meth:`abandon`."""
        if self.state is CircuitState.CLOSED or self._probing:
            return False
        if self.state is CircuitState.OPEN:
            if self.clock() - self._opened_ms < self.cooldown_ms:
                return False
            self._set(CircuitState.HALF_OPEN)
        self._probing = True
        return True

    def success(self) -> None:
        """A call succeeded: reset the count, close a half-open circuit."""
        self.failures = 0
        self._probing = False
        if self.state is not CircuitState.CLOSED:
            self._set(CircuitState.CLOSED)

    def abandon(self) -> None:
        """A call ended without an answer either way (cancelled): free the probe slot."""
        self._probing = False

    def failure(self, error: BaseException | None = None) -> None:
        """A call failed: count it; open at the threshold, or again after a failed probe."""
        self.failures += 1
        self._probing = False
        if self.state is CircuitState.HALF_OPEN or (
                self.state is CircuitState.CLOSED and self.failures >= self.failure_threshold):
            self._opened_ms = self.clock()
            self._set(CircuitState.OPEN, error)

    def _set(self, state: CircuitState, error: BaseException | None = None) -> None:
        if state is self.state:
            return
        previous, self.state = self.state, state
        if state is CircuitState.HALF_OPEN or previous is CircuitState.HALF_OPEN and state is CircuitState.OPEN:
            log.debug("circuit_" + state.value, dependency=self.name)  # the same outage going on
        else:
            details = {"error": repr(error)} if error is not None else {}
            log.warning("circuit_" + state.value, dependency=self.name, previous=previous.value, **details)
        if self.on_change is not None:
            self.on_change(state)

"""One connection's private side of a venue through ccxt's unified private methods.

A :class:`PrivateClient` owns one ccxt instance signing with one connection's credentials
(built by :meth:`CcxtAdapter.private_exchange`: markets shared with the public instance, the
same shared budget). It reads the account snapshot (balance and positions), open orders and
fills, places and cancels orders and sets leverage, parsing into :mod:`exgate.accounts.models`.
Every call is timed out and its ccxt errors are translated here, once:

- credentials refused (ccxt ``AuthenticationError``/``PermissionDenied``) and orders refused
  (``InsufficientFunds``, ``InvalidOrder``, ...) → :class:`~exgate.errors.VenueRejected` (422)
  with the venue's own message;
- ``OrderNotFound`` → :class:`~exgate.errors.NotFound`;
- unreachable, timeouts, 5xx, 429 → the market-data translation
  (:func:`~exgate.venues.ccxt_adapter.translate`), which order placement treats as an unknown
  outcome (:meth:`place` never re-sends).

Works for any ccxt venue with the unified private methods (fetchBalance, fetchPositions,
fetchOpenOrders, fetchMyTrades, createOrder, cancelOrder, cancelAllOrders, setLeverage); the
profile's flags pick the shortcuts of the four venues exgate tests end to end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from decimal import Decimal
from typing import Any, TypeVar

import structlog
from ccxt.base import errors as ccxt_errors

from exgate import errors
from exgate.accounts.models import Account, Fill, MarginMode, Order, OrderType, Position, TimeInForce
from exgate.models import Side
from exgate.venues import private_parse as pp
from exgate.venues.private_calls import counting, skipped, venue_reason
from exgate.venues.transport import translate

T = TypeVar("T")
log = structlog.get_logger("exgate.private")

_STATUS: ContextVar[list[int] | None] = ContextVar("exgate_private_status", default=None)
"""The HTTP status of the last response of the call in progress (see :meth:`PrivateClient._call`)."""

_REJECTED = (ccxt_errors.InsufficientFunds, ccxt_errors.InvalidOrder, ccxt_errors.BadRequest,
             ccxt_errors.AuthenticationError, ccxt_errors.PermissionDenied, ccxt_errors.AccountSuspended,
             ccxt_errors.MarginModeAlreadySet, ccxt_errors.NotSupported)
_UNKNOWN_OUTCOME = (ccxt_errors.OperationFailed, TimeoutError)
"""No answer, or not the venue's own: timeouts, network errors, 5xx, 429 (ccxt's OperationFailed tree)."""
_TIF_TO_CCXT = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK", TimeInForce.PO: "PO"}


class _StaleClock(Exception):
    """A request refused for its timestamp (ccxt ``InvalidNonce``); ``error`` is the exgate
    error it is when not recovered from."""

    def __init__(self, error: errors.ExgateError):
        super().__init__(error.detail)
        self.error = error


class PrivateClient:
    """The private calls of one connection (see the module's description).

    Args:
        adapter: the venue's :class:`~exgate.venues.ccxt_adapter.CcxtAdapter` (markets, budget,
            profile).
        credentials: ccxt credential fields; kept by the ccxt instance only, never logged.
    """

    def __init__(self, adapter: Any, credentials: dict[str, str]):
        self.adapter = adapter
        self.venue = adapter.id
        self.profile = adapter.profile
        self.exchange = adapter.private_exchange(credentials)
        self.exchange.fetch = counting(self.exchange.fetch)
        for name in self.profile.private_noops:  # side calls that are not the user's
            setattr(self.exchange, name, skipped)
        seen = self.exchange.on_rest_response

        def record_status(code: Any, *rest: Any) -> Any:
            box = _STATUS.get()
            if box is not None:
                try:
                    box[0] = int(code)
                except (TypeError, ValueError):
                    pass
            return seen(code, *rest)

        self.exchange.on_rest_response = record_status
        self.timeout_ms = adapter.timeout_ms
        self.clock_sync: Any = None
        """What re-syncs this venue's clock offset after a timestamp refusal (an object with
        ``async resync(client)``, :class:`exgate.connectors.ClockOffsets`); ``None``: no recovery."""
        self.offset_synced_at: int | None = None
        """When the offset applied (:meth:`apply_offset`) was synced, ms; ``None``: none applied."""

    def __repr__(self) -> str:
        return f"PrivateClient({self.venue})"

    async def close(self) -> None:
        await self.exchange.close()

    def apply_offset(self, offset_ms: int, synced_at_ms: int | None) -> None:
        """Sign with the venue's clock: ccxt's ``options['timeDifference']`` (local minus server
        time, ms) becomes ``offset_ms``, measured at ``synced_at_ms`` (the entry's sync time)."""
        self.exchange.options["timeDifference"] = int(offset_ms)
        self.offset_synced_at = synced_at_ms

    async def _resync(self, stale: _StaleClock) -> None:
        """Re-sync the venue's clock offset once (:attr:`clock_sync`); when that fails, the
        timestamp error is raised as it would have been without recovery."""
        try:
            await self.clock_sync.resync(self)
        except errors.ExgateError as exc:
            log.warning("clock_resync_failed", exchange=self.venue, error=exc.detail)
            raise stale.error from None

    async def _call(self, operation: str, fn: Callable[[], Awaitable[T]], *, write: bool = False) -> T:
        """:meth:`_call_once`; a read refused for its timestamp (ccxt ``InvalidNonce``: Binance
        -1021, Bybit 10002) re-syncs the clock offset once (:attr:`clock_sync`) and is retried
        once; a second refusal is raised as any other. Writes are never retried here (see
        :meth:`place`)."""
        try:
            return await self._call_once(operation, fn, write=write, stale_ok=not write and self.clock_sync is not None)
        except _StaleClock as stale:
            await self._resync(stale)
            log.info("clock_resynced_read_retried", exchange=self.venue, operation=operation)
            return await self._call_once(operation, fn, write=write)

    async def _call_once(self, operation: str, fn: Callable[[], Awaitable[T]], *, write: bool = False,
                         stale_ok: bool = False) -> T:
        """:meth:`_measured`; with ``stale_ok`` a timestamp refusal raises :class:`_StaleClock`
        (carrying the error it would otherwise be) for the caller to recover from."""
        try:
            return await self._measured(operation, fn, write=write)
        except errors.ExgateError as exc:
            if stale_ok and getattr(exc, "_stale_clock", False):
                raise _StaleClock(exc) from None
            raise

    async def _measured(self, operation: str, fn: Callable[[], Awaitable[T]], *, write: bool = False) -> T:
        """One ccxt call under the timeout, reported to the venue's call meter, errors translated.

        An error the venue answered (ccxt's ExchangeError tree, HTTP status under 500 and not
        429) is :class:`VenueRejected` for a write (nothing happened) and for the refusals of
        ``_REJECTED`` on a read; a 5xx or 429, whatever ccxt made of its body (Bybit's 10016 is
        a plain ExchangeError), and every OperationFailed are the upstream errors an order treats
        as an unknown outcome."""
        status = [0]
        token = _STATUS.set(status)
        with self.adapter.calls.measure(operation):
            try:
                async with asyncio.timeout(self.timeout_ms / 1000 * 2):
                    return await fn()
            except asyncio.CancelledError:
                raise
            except ccxt_errors.OrderNotFound as exc:
                reason = self._scrub(venue_reason(exc))
                raise errors.NotFound(f"{self.venue}: {reason}", venue_error=reason) from None
            except ccxt_errors.InvalidNonce as exc:  # a NetworkError in ccxt's tree: an unknown outcome, as before
                error = translate(exc, self.venue, operation)
                error._stale_clock = True  # noqa: SLF001 - read by _call_once, after the meter saw the error
                raise error from None
            except _UNKNOWN_OUTCOME as exc:
                raise translate(exc, self.venue, operation) from None
            except ccxt_errors.ExchangeError as exc:
                raise self._venue_error(exc, operation, write, status[0]) from None
            except errors.ExgateError:
                raise
            except Exception as exc:  # noqa: BLE001 - translated once, here
                raise translate(exc, self.venue, operation) from None
            finally:
                _STATUS.reset(token)

    def _venue_error(self, exc: ccxt_errors.ExchangeError, operation: str, write: bool,
                     status: int) -> errors.ExgateError:
        reason = self._scrub(venue_reason(exc))
        if status >= 500 or status == 429:
            return errors.UpstreamUnavailable(f"{self.venue} {operation}: HTTP {status} ({reason})")
        if write or isinstance(exc, _REJECTED):
            return errors.VenueRejected(f"{self.venue} refused {operation}: {reason}", venue_error=reason,
                                        venue_error_type=type(exc).__name__)
        return translate(exc, self.venue, operation)

    def _scrub(self, reason: str) -> str:
        """``reason`` without any credential of the connection: venues echo what was signed
        (Bybit's 10004 ``error sign! origin_string[<timestamp><apiKey><recvWindow>...]``)."""
        for name in ("apiKey", "secret", "privateKey", "password", "token", "uid"):
            value = getattr(self.exchange, name, None)
            if isinstance(value, str) and len(value) >= 6 and value in reason:
                reason = reason.replace(value, f"<{name}>")
        return reason

    # -- reads ---------------------------------------------------------------------------------
    async def snapshot(self) -> tuple[Account, list[Position]]:
        """Balance and positions: one call where the balance answer holds the positions
        (``positions_in_balance``), else ``fetch_balance`` and ``fetch_positions`` together."""
        if self.profile.positions_in_balance:
            balance = await self._call("fetch_balance", lambda: self.exchange.fetch_balance())
            raw_positions = self._positions_from_balance(balance.get("info"))
        else:
            balance, raw_positions = await asyncio.gather(
                self._call("fetch_balance", lambda: self.exchange.fetch_balance()),
                self._call("fetch_positions", lambda: self.exchange.fetch_positions()))
        positions = [p for p in (pp.parse_position(self.venue, raw) for raw in raw_positions or []) if p is not None]
        positions.sort(key=lambda p: p.symbol)
        return pp.parse_account(self.venue, balance, self.profile.collateral, positions), positions

    def _positions_from_balance(self, info: Any) -> list[dict]:
        ex = self.exchange
        if self.venue == "binanceusdm":
            return ex.parse_account_positions(info, True)
        if self.venue == "hyperliquid":
            return [ex.parse_position(item) for item in (info or {}).get("assetPositions", [])]
        return []

    async def open_orders(self) -> list[Order]:
        """Every open order of the account (all symbols), oldest first."""
        raw = await self._call("fetch_open_orders", lambda: self.exchange.fetch_open_orders())
        orders = [pp.parse_order(self.venue, o, self._contract_size(o.get("symbol"))) for o in raw or []]
        return sorted(orders, key=lambda o: (o.created or 0, o.id))

    async def fills(self, symbol: str | None, since: int | None, limit: int | None) -> list[Fill]:
        """Fills, newest first (ccxt ``fetch_my_trades``; Binance needs ``symbol``)."""
        raw = await self._call("fetch_my_trades", lambda: self.exchange.fetch_my_trades(symbol, since, limit))
        fills = [pp.parse_fill(self.venue, t, self._contract_size(t.get("symbol"))) for t in raw or []]
        fills.sort(key=lambda f: (f.timestamp, f.id), reverse=True)
        return fills[:limit] if limit else fills

    async def order(self, order_id: str | None, symbol: str, client_order_id: str | None = None) -> Order | None:
        """One order by venue id, or by client order id (``order_id`` None), open or recently
        closed; ``None``: the venue does not know it. By client order id, the profile's
        ``client_id_lookup`` says how: ``fetch_order`` (ccxt's ``clientOrderId`` parameter:
        Binance ``origClientOrderId``, Hyperliquid ``orderStatus`` by cloid), ``open_orders``
        (Bybit ``/v5/order/realtime?orderLinkId=``, which finds closed orders too) or ``scan``
        (the recent orders, where the venue has no lookup by it: Pacifica); ``fetch_order``
        falls back to the scan when the venue refuses it."""
        if order_id is None:
            return await self._by_client_id(symbol, client_order_id)
        try:
            raw = await self._call("fetch_order", lambda: self.exchange.fetch_order(order_id, symbol))
        except errors.NotFound:
            return None
        if not raw or raw.get("id") in (None, ""):
            return None
        return pp.parse_order(self.venue, raw, self._contract_size(symbol))

    async def _by_client_id(self, symbol: str, client_order_id: str) -> Order | None:
        how = self.profile.client_id_lookup
        if how == "open_orders":
            raw = await self._call("fetch_open_orders", lambda: self.exchange.fetch_open_orders(
                symbol, None, None, {self.profile.client_id_param: client_order_id}))
            return self._matching(raw, client_order_id)
        if how == "fetch_order":
            try:
                raw = await self._call("fetch_order", lambda: self.exchange.fetch_order(
                    None, symbol, {"clientOrderId": client_order_id}))
            except errors.NotFound:
                return None
            except errors.ExgateError as exc:
                log.info("order_lookup_by_client_id_refused", exchange=self.venue, error=exc.detail)
            else:
                return self._matching([raw] if raw else [], client_order_id) if raw and raw.get("id") else None
        return await self._scan(symbol, client_order_id)

    async def _scan(self, symbol: str, client_order_id: str) -> Order | None:
        """The order among the venue's recent orders (ccxt ``fetch_orders``, else open and closed)."""
        ex = self.exchange
        if ex.has.get("fetchOrders"):
            raw = await self._call("fetch_orders", lambda: ex.fetch_orders(symbol, None, 100))
        else:
            opened, closed = await asyncio.gather(
                self._call("fetch_open_orders", lambda: ex.fetch_open_orders(symbol)),
                self._call("fetch_closed_orders", lambda: ex.fetch_closed_orders(symbol, None, 100)))
            raw = [*(opened or []), *(closed or [])]
        return self._matching(raw, client_order_id)

    def _matching(self, raw: list | None, client_order_id: str) -> Order | None:
        for item in raw or []:
            if item and item.get("clientOrderId") == client_order_id and item.get("id"):
                return pp.parse_order(self.venue, item, self._contract_size(item.get("symbol")))
        return None

    # -- writes --------------------------------------------------------------------------------
    async def place(self, symbol: str, side: Side, type: OrderType, size: Decimal, price: Decimal | None, *,
                    reduce_only: bool, time_in_force: TimeInForce | None, client_order_id: str) -> Order:
        """Send one order (ccxt ``create_order``) with ``client_order_id``; never retried.

        Raises:
            VenueRejected: the venue refused it (nothing was placed).
            UpstreamError: no answer (timeout, 5xx, 429): the outcome is unknown.
        """
        params: dict[str, Any] = {"clientOrderId": client_order_id}
        if reduce_only:
            params["reduceOnly"] = True
        if time_in_force is TimeInForce.PO:
            params["postOnly"] = True
        elif time_in_force is not None:
            params["timeInForce"] = _TIF_TO_CCXT[time_in_force]
        amount = size / (self._contract_size(symbol) or Decimal(1))

        def send() -> Awaitable[Any]:
            return self.exchange.create_order(symbol, type.value, side.value, str(amount),
                                              str(price) if price is not None else None, params)

        try:
            raw = await self._call_once("create_order", send, write=True, stale_ok=self.clock_sync is not None)
        except _StaleClock as stale:
            # refused for its timestamp: re-sync, then re-send once, but only if the lookup by
            # client order id shows the venue does not have it
            await self._resync(stale)
            try:
                found = await self.order(None, symbol, client_order_id)
            except errors.ExgateError as exc:
                log.warning("order_lookup_after_timestamp_error_failed", exchange=self.venue, error=exc.detail)
                raise stale.error from None
            if found is not None:
                return found
            log.info("order_resent_after_clock_resync", exchange=self.venue)
            raw = await self._call_once("create_order", send, write=True)
        order = pp.parse_order(self.venue, raw, self._contract_size(symbol), defaults={
            "symbol": symbol, "side": side.value, "type": type.value, "amount": str(amount),
            "price": str(price) if price is not None and type is OrderType.LIMIT else None,
            "clientOrderId": client_order_id, "reduceOnly": reduce_only,
            "timeInForce": _TIF_TO_CCXT[time_in_force] if time_in_force else None})
        if order.client_order_id is None:
            order = order.model_copy(update={"client_order_id": client_order_id})
        return order

    async def cancel(self, order_id: str, symbol: str) -> None:
        """Cancel one order (ccxt ``cancel_order``). Raises NotFound when it is not open."""
        await self._call("cancel_order", lambda: self.exchange.cancel_order(order_id, symbol), write=True)

    @property
    def has_cancel_all(self) -> bool:
        return bool(self.exchange.has.get("cancelAllOrders"))

    async def cancel_all(self, symbol: str | None) -> None:
        """Cancel every open order (in ``symbol``) with the venue's cancel-all (ccxt ``cancel_all_orders``)."""
        await self._call("cancel_all_orders", lambda: self.exchange.cancel_all_orders(symbol), write=True)

    async def set_leverage(self, symbol: str, leverage: int, margin_mode: MarginMode | None) -> None:
        """ccxt ``set_margin_mode`` (when asked and supported) then ``set_leverage``."""
        if margin_mode is not None and self.exchange.has.get("setMarginMode"):
            try:
                await self._call("set_margin_mode", lambda: self.exchange.set_margin_mode(
                    margin_mode.value, symbol, {"leverage": leverage}), write=True)
            except errors.VenueRejected as exc:
                if exc.extra.get("venue_error_type") != "MarginModeAlreadySet":
                    raise
        params: dict[str, Any] = {}
        if margin_mode is not None and self.venue == "hyperliquid":
            params["marginMode"] = margin_mode.value
        await self._call("set_leverage", lambda: self.exchange.set_leverage(leverage, symbol, params), write=True)

    async def check(self) -> None:
        """Prove the credentials work: ccxt ``fetch_balance``, and where that read is not signed
        (Hyperliquid and Pacifica read accounts by address), one signed request that changes
        nothing: the cancel of an order that does not exist (Hyperliquid ``cancelByCloid`` of a
        zero cloid, Pacifica order 0), whose "no such order" answer proves the signer known.

        Raises:
            VenueRejected: the venue refused the credentials.
        """
        await self._call("fetch_balance", lambda: self.exchange.fetch_balance())
        if not self.profile.signed_check:
            return
        symbol = next(iter(self.exchange.markets))
        if self.venue == "hyperliquid":
            probe = lambda: self.exchange.cancel_order(None, symbol, {"clientOrderId": "0x" + "0" * 32})  # noqa: E731
        else:
            probe = lambda: self.exchange.cancel_order("0", symbol)  # noqa: E731
        try:
            await self._call("cancel_order", probe, write=True)
        except errors.NotFound:
            return
        except errors.VenueRejected as exc:
            reason = str(exc.extra.get("venue_error", ""))
            if exc.extra.get("venue_error_type") in ("AuthenticationError", "PermissionDenied") \
                    or "does not exist" in reason or "Verification failed" in reason:
                raise
            return  # the venue knows the signer: it only says there is no such order

    def taker_rate(self, symbol: str) -> Decimal | None:
        """The market's taker fee rate as ccxt lists it (a fraction of the notional)."""
        market = (self.exchange.markets or {}).get(symbol) or {}
        rate = market.get("taker")
        return Decimal(str(rate)) if rate is not None else None

    def _contract_size(self, symbol: str | None) -> Decimal | None:
        market = (self.exchange.markets or {}).get(symbol) if symbol else None
        size = market.get("contractSize") if market else None
        return Decimal(str(size)) if size not in (None, 1, 1.0) else None

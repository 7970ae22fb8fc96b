"""The event bus: the SAME behaviour over the in-process bus and Redis Streams (real Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import orjson
import pytest

from exgate.bus import Bus, BusUnavailable, EventKind, MemoryBus, RedisBus, stream_key
from exgate.bus.events import parse_id
from tests.conftest import ManualClock, flush_redis

LIQ = {"side": "sell", "price": "64000.5", "amount": "0.25", "time": 1_790_000_000_000}


@pytest.fixture(params=["memory", "redis"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator:
    """A factory of clean buses of the parametrized backend (closed after the test)."""
    made: list[Bus] = []
    url = None
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        flush_redis(url)

    def make(maxlen: int = 10_000, clock=None) -> Bus:
        options = {"clock": clock} if clock is not None else {}
        bus = MemoryBus(maxlen, **options) if url is None else RedisBus(url, maxlen=maxlen, **options)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.close()


async def test_published_events_come_back_in_order_with_their_source(make_bus):
    bus = make_bus()
    key = stream_key("binanceusdm", EventKind.LIQUIDATION)
    assert key == "exgate:ev:binanceusdm:liquidation" == bus.stream_key("binanceusdm", "liquidation")
    ids = [await bus.publish("binanceusdm", EventKind.LIQUIDATION, {**LIQ, "n": n}, symbol="BTC/USDT:USDT",
                             asset="BTC", name="Binance USDⓈ-M") for n in range(3)]
    assert ids == sorted(ids, key=parse_id) and len(set(ids)) == 3
    read = await bus.read_after({key: "0-0"}, count=10, block_ms=0)
    assert [stream for stream, _ in read] == [key] * 3
    events = [event for _, event in read]
    assert [e.id for e in events] == ids and [e.data["n"] for e in events] == [0, 1, 2]
    first = events[0]
    assert (first.venue, first.kind, first.symbol, first.asset) == ("binanceusdm", EventKind.LIQUIDATION,
                                                                     "BTC/USDT:USDT", "BTC")
    assert (first.source_exchange_id, first.source_exchange_name) == ("binanceusdm", "Binance USDⓈ-M")
    assert first.data["price"] == "64000.5" and first.ts_ms > 0
    as_json = orjson.loads(first.to_json())
    assert as_json["kind"] == "liquidation" and as_json["source_exchange_name"] == "Binance USDⓈ-M"
    assert as_json["id"] == ids[0]


async def test_a_batch_is_published_in_order(make_bus):
    bus = make_bus()
    ids = await bus.publish_many("bybit", EventKind.TRADES, [({"n": n}, "ETH/USDT:USDT", "ETH") for n in range(5)],
                                 name="Bybit")
    assert len(set(ids)) == 5 and ids == sorted(ids, key=parse_id)
    kept = await bus.range_after(stream_key("bybit", "trades"), "0-0", 10)
    assert [(e.id, e.data["n"], e.asset, e.source_exchange_name) for e in kept] == [
        (i, n, "ETH", "Bybit") for n, i in enumerate(ids)]
    assert await bus.publish_many("bybit", EventKind.TRADES, []) == []


async def test_the_display_name_defaults_to_the_venue_id_and_venue_wide_events_have_no_symbol(make_bus):
    bus = make_bus()
    await bus.publish("bybit", EventKind.STATUS, {"state": "connected"})
    [(_, event)] = await bus.read_after({stream_key("bybit", "status"): "0-0"}, 10, 0)
    assert event.source_exchange_name == "bybit" and event.symbol is None and event.asset is None


async def test_reading_after_a_cursor_returns_only_newer_events_per_stream(make_bus):
    bus = make_bus()
    a, b = stream_key("binanceusdm", "ticker"), stream_key("bybit", "ticker")
    a1 = await bus.publish("binanceusdm", EventKind.TICKER, {"n": 1})
    await bus.publish("bybit", EventKind.TICKER, {"n": 10})
    await bus.publish("binanceusdm", EventKind.TICKER, {"n": 2})
    await bus.publish("bybit", EventKind.TICKER, {"n": 11})
    read = await bus.read_after({a: a1, b: "0-0"}, count=10, block_ms=0)
    by_stream = {key: [e.data["n"] for s, e in read if s == key] for key in (a, b)}
    assert by_stream == {a: [2], b: [10, 11]}
    assert [e.data["n"] for s, e in await bus.read_after({b: "0-0"}, count=1, block_ms=0)] == [10]


async def test_a_blocked_reader_wakes_on_publish(make_bus):
    bus = make_bus()
    key = stream_key("hyperliquid", "trades")
    last = (await bus.info(key)).last_id
    reader = asyncio.create_task(bus.read_after({key: last}, 10, block_ms=20_000))
    await asyncio.sleep(0)
    await bus.publish("hyperliquid", EventKind.TRADES, {"n": 1}, asset="ETH")
    [(stream, event)] = await asyncio.wait_for(reader, 20)
    assert stream == key and event.data == {"n": 1} and event.asset == "ETH"


async def test_a_read_with_nothing_new_returns_empty_when_its_wait_ends(make_bus):
    bus = make_bus()
    key = stream_key("bybit", "book")
    assert await bus.read_after({key: "0-0"}, 10, block_ms=0) == []
    assert await bus.read_after({key: "0-0"}, 10, block_ms=5) == []


async def test_range_after_is_exclusive_and_bounded(make_bus):
    bus = make_bus()
    ids = [await bus.publish("pacifica", EventKind.CANDLE, {"n": n}) for n in range(5)]
    key = stream_key("pacifica", "candle")
    assert [e.id for e in await bus.range_after(key, ids[1], 2)] == ids[2:4]
    assert [e.id for e in await bus.range_after(key, "0-0", 100)] == ids
    assert await bus.range_after(key, ids[-1], 100) == []
    assert await bus.range_after(stream_key("pacifica", "book"), "0-0", 10) == []


async def test_ids_increase_within_one_millisecond(make_bus):
    clock = ManualClock()
    bus = make_bus(clock=clock)
    ids = [await bus.publish("bybit", EventKind.TRADES, {"n": n}) for n in range(4)]
    assert [parse_id(i) for i in ids] == sorted(parse_id(i) for i in ids) and len(set(ids)) == 4
    assert all(e.ts_ms == clock.now for e in await bus.range_after(stream_key("bybit", "trades"), "0-0", 10))


async def test_streams_are_bounded_and_say_what_they_trimmed(make_bus):
    bus = make_bus(maxlen=10)
    ids = [await bus.publish("binanceusdm", EventKind.TRADES, {"n": n}) for n in range(350)]
    key = stream_key("binanceusdm", "trades")
    info = await bus.info(key)
    kept = await bus.range_after(key, "0-0", 1_000)
    assert 10 <= info.length == len(kept) < 350  # Redis trims whole nodes (MAXLEN ~): a little over 10
    assert kept[-1].id == ids[-1] == info.last_id and kept[0].id == info.first_id
    assert parse_id(info.trimmed_upto_id) >= parse_id(ids[0])  # a cursor at ids[0] has lost events
    assert ids.index(kept[0].id) == ids.index(info.trimmed_upto_id) + 1
    empty = await bus.info(stream_key("binanceusdm", "status"))
    assert (empty.length, empty.last_id, empty.trimmed_upto_id, empty.first_id) == (0, "0-0", "0-0", None)


async def test_data_that_is_not_json_is_refused(make_bus):
    bus = make_bus()
    with pytest.raises(TypeError):
        await bus.publish("bybit", EventKind.TICKER, {"price": Decimal("1.5")})
    with pytest.raises(ValueError):
        await bus.publish("bybit", "no-such-kind", {})  # type: ignore[arg-type]


async def test_redis_down_is_a_typed_error_not_a_redis_one():
    from tests.conftest import free_port

    bus = RedisBus(f"redis://127.0.0.1:{free_port()}/13", timeout_ms=200)
    try:
        for _ in range(4):  # failures, then the open circuit: the same typed error
            with pytest.raises(BusUnavailable) as caught:
                await bus.publish("bybit", EventKind.TICKER, {"n": 1})
            assert caught.value.status == 503 and "unavailable" in caught.value.detail
        with pytest.raises(BusUnavailable):
            await bus.read_after({stream_key("bybit", "ticker"): "0-0"}, 10, 100)
    finally:
        await bus.close()


async def test_book_streams_are_kept_shorter_by_default_and_lengths_can_be_chosen(make_bus):
    bus = make_bus()
    assert bus.maxlen_of(EventKind.BOOK) == 2_000 and bus.maxlen_of(EventKind.TICKER) == 10_000
    small = make_bus(maxlen=50)
    assert small.maxlen_of(EventKind.BOOK) == 50  # never longer than maxlen
    with pytest.raises(ValueError):
        make_bus(maxlen=0)

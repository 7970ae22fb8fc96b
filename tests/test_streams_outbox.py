"""The bounded stage between stream workers and the bus: full means dropped and counted, never
a wait; what is queued reaches the bus in order, one call per run of one stream."""

from __future__ import annotations

import asyncio

from exgate.bus import MemoryBus, stream_key
from exgate.streams.outbox import Outbox


async def test_a_full_outbox_drops_and_counts_and_the_rest_reaches_the_bus_in_order():
    bus = MemoryBus()
    outbox = Outbox(bus, maxsize=5)
    for n in range(7):  # nothing drains yet: two do not fit
        outbox.put("bybit", "trades" if n % 2 else "ticker", "Bybit", {"n": n}, "BTC/USDT:USDT", "BTC")
    assert outbox.dropped["bybit"] == 2 and outbox.depth == 5
    task = asyncio.create_task(outbox.run())
    try:
        async with asyncio.timeout(10):
            while outbox.depth:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    trades = await bus.range_after(stream_key("bybit", "trades"), "0-0", 10)
    tickers = await bus.range_after(stream_key("bybit", "ticker"), "0-0", 10)
    assert [e.data["n"] for e in trades] == [1, 3] and [e.data["n"] for e in tickers] == [0, 2, 4]
    assert {e.source_exchange_name for e in trades + tickers} == {"Bybit"} and trades[0].asset == "BTC"

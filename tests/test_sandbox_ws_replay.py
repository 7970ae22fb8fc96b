"""Replay mode: cryptofeed's recorded Binance USD-M capture served by the sandbox, released
by the test. At five checkpoints the book a real ``ccxt.pro.binanceusdm`` builds from the
replayed stream equals the book rebuilt from the recording by Binance's documented procedure
(written out below, independent of the sandbox)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest

from exgate.sandbox.app import create_sandbox_app
from tests.conftest import ManualClock, ServerThread, fixtures_dir
from tests.ws_harness import WAIT_S, RawSocket, drive, pro_client

_ROOT = fixtures_dir()
CAPTURE = (_ROOT / "cryptofeed/sample_data/BINANCE_FUTURES.ws.1.0") if _ROOT else None
SIBLINGS = ("BINANCE_FUTURES.http.0.0", "BINANCE_FUTURES.0")
if CAPTURE is None or not CAPTURE.is_file() or not all((CAPTURE.parent / s).is_file() for s in SIBLINGS):
    pytest.skip(f"replay capture not found: expected cryptofeed/sample_data/BINANCE_FUTURES.ws.1.0 with "
                f"{' and '.join(SIBLINGS)} under the recorded payloads ({_ROOT or 'EXGATE_FIXTURES unset'})",
                allow_module_level=True)

DEPTH = 500
"""Levels a side compared. ccxt cuts its book to the snapshot's 1000 levels at every watch (so
levels that later rise from below the cut are missing near its end), the rebuild keeps them:
the top 500 are far from that edge."""

SYMBOLS = {"SUSHIUSDT": "SUSHI/USDT:USDT", "CTKUSDT": "CTK/USDT:USDT"}


def recorded(path: Path) -> list[dict]:
    """The capture's messages in order (``ts: {"stream", "data"}`` lines)."""
    out = []
    for line in path.read_text().splitlines():
        head, sep, body = line.partition(": ")
        if sep and head.replace(".", "").isdigit():
            out.append(orjson.loads(body))
    return out


def snapshot_of(symbol: str) -> dict:
    """The recorded REST depth snapshot of ``symbol``."""
    for line in (CAPTURE.parent / SIBLINGS[0]).read_text().splitlines():
        url, _, rest = line.partition(" -> ")
        if f"symbol={symbol}&" in url + "&":
            return orjson.loads(rest.partition(": ")[2])
    raise AssertionError(f"no snapshot of {symbol}")


def rebuild(symbol: str, messages: list[dict]) -> tuple[int, dict, dict]:
    """Binance's "How to manage a local order book correctly" (USD-M): take the snapshot; drop
    events with ``u < lastUpdateId``; the first applied has ``U <= lastUpdateId <= u``; each next
    one's ``pu`` must equal the previous ``u``; a quantity of 0 removes the level. Returns
    ``(last u, bids, asks)`` as ``{price: qty}`` Decimals."""
    snapshot = snapshot_of(symbol)
    book = {"b": {Decimal(p): Decimal(q) for p, q in snapshot["bids"]},
            "a": {Decimal(p): Decimal(q) for p, q in snapshot["asks"]}}
    last, started = snapshot["lastUpdateId"], False
    for message in messages:
        event = message["data"]
        if event.get("e") != "depthUpdate" or event["s"] != symbol or event["u"] < snapshot["lastUpdateId"]:
            continue
        if not started:
            assert event["U"] <= snapshot["lastUpdateId"] <= event["u"]
            started = True
        else:
            assert event["pu"] == last, "the recording's pu chain breaks"
        for side in "ba":
            for p, q in event[side]:
                if Decimal(q) == 0:
                    book[side].pop(Decimal(p), None)
                else:
                    book[side][Decimal(p)] = Decimal(q)
        last = event["u"]
    return last, book["b"], book["a"]


@pytest.fixture(scope="module")
def messages() -> list[dict]:
    return recorded(CAPTURE)


@pytest.fixture
def server() -> Iterator[ServerThread]:
    app = create_sandbox_app(venues=["binanceusdm"], clock=ManualClock(1_760_000_000_000), replay=CAPTURE)
    with ServerThread(app) as server:
        yield server


@pytest.fixture
async def binance(server: ServerThread) -> AsyncIterator:
    exchange = pro_client("binanceusdm", server.url)
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


def release(server: ServerThread, step: int) -> dict:
    answer = httpx.post(f"{server.url}/__sandbox/replay", params={"step": step})
    answer.raise_for_status()
    return answer.json()


async def test_the_recorded_symbols_are_markets_and_rest_depth_is_the_recorded_snapshot(binance, server) -> None:
    assert set(SYMBOLS.values()) | {"AKRO/USDT:USDT", "KEEP/USDT:USDT"} == set(binance.markets)
    book = await binance.fetch_order_book("SUSHI/USDT:USDT", 1000)
    recorded_book = snapshot_of("SUSHIUSDT")
    assert book["nonce"] == recorded_book["lastUpdateId"] and book["bids"][0][0] == float(recorded_book["bids"][0][0])
    state = httpx.get(f"{server.url}/__sandbox/replay").json()
    assert state["position"] == 0 and state["total"] == 1535 and state["last_u"] == {}
    assert state["snapshots"]["SUSHIUSDT"] == recorded_book["lastUpdateId"]


async def test_at_five_checkpoints_ccxt_s_book_is_the_one_rebuilt_from_the_recording(
        binance, server: ServerThread, messages: list[dict]) -> None:
    books = {symbol: await drive(binance.watch_order_book(unified)) for symbol, unified in SYMBOLS.items()}
    position = 0
    for checkpoint in (400, 650, 900, 1200, len(messages)):  # every snapshot is behind the first
        state = release(server, checkpoint - position)
        position = state["position"]
        assert position == checkpoint and state["done"] is (checkpoint == len(messages))
        for symbol, unified in SYMBOLS.items():
            last, bids, asks = rebuild(symbol, messages[:position])
            assert state["last_u"][symbol] == last
            # ccxt applies every message as it arrives; a watch call would wait for the next one,
            # which never comes once the last released message was applied before the call
            async with asyncio.timeout(WAIT_S):
                while binance.orderbooks[unified]["nonce"] != last:
                    await asyncio.sleep(0.01)
            book = books[symbol] = binance.orderbooks[unified]
            assert book["bids"][:DEPTH] == [[float(p), float(q)] for p, q in sorted(bids.items(), reverse=True)][:DEPTH]
            assert book["asks"][:DEPTH] == [[float(p), float(q)] for p, q in sorted(asks.items())][:DEPTH]


async def test_replayed_depth_is_gap_free_unwrapped_on_ws_and_wrapped_on_stream(server: ServerThread) -> None:
    base = server.url.replace("http", "ws") + "/binanceusdm"
    async with RawSocket(base + "/public/ws/0") as raw, RawSocket(base + "/stream?streams=ctkusdt@aggTrade") as combined:
        await raw.send({"method": "SUBSCRIBE", "params": ["sushiusdt@depth@100ms"], "id": 1})
        assert await raw.recv() == {"result": None, "id": 1}
        last = release(server, 300)["last_u"]["SUSHIUSDT"]
        events = await raw.recv_until(lambda m: m["u"] == last)
        wrapped = await combined.recv()
    assert all(e["e"] == "depthUpdate" and e["s"] == "SUSHIUSDT" for e in events)
    assert [b["pu"] for b in events[1:]] == [a["u"] for a in events[:-1]]
    assert wrapped["stream"] == "ctkusdt@aggTrade" and wrapped["data"]["e"] == "aggTrade"


async def test_bad_steps_are_refused_and_a_sandbox_without_replay_says_how_to_start_one(server: ServerThread) -> None:
    for step in ("0", "-3", "x", "100001"):
        answer = httpx.post(f"{server.url}/__sandbox/replay", params={"step": step})
        assert answer.status_code == 422 and "step" in answer.json()["error"]
    with ServerThread(create_sandbox_app(venues=["binanceusdm"], clock=ManualClock())) as plain:
        answer = httpx.get(f"{plain.url}/__sandbox/replay")
        assert answer.status_code == 404 and "--replay" in answer.json()["error"]


def test_a_missing_capture_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="capture not found"):
        create_sandbox_app(venues=["binanceusdm"], replay=CAPTURE.parent / "NOPE.ws.1.0")
    with pytest.raises(ValueError, match="serve binanceusdm"):
        create_sandbox_app(venues=["bybit"], replay=CAPTURE)

"""Replay through the gateway: the sandbox replays cryptofeed's recorded Binance USD-M capture,
the gateway streams those markets, and at five checkpoints the book exgate holds (read over
``/v1/binanceusdm/markets/{symbol}/orderbook``, ``X-Cache-Source: stream``) equals the book
rebuilt from the recording by Binance's documented procedure."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from tests.conftest import ManualClock, ServerThread
from tests.streams_harness import all_live, gateway_app, stream_settings, wait_for
from tests.test_sandbox_ws_replay import CAPTURE, recorded, rebuild

SYMBOLS = {"SUSHIUSDT": "SUSHI", "CTKUSDT": "CTK"}
DEPTH = 100
"""Levels a side compared: what the gateway keeps of a streamed book."""


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[ServerThread, ServerThread]]:
    from exgate.sandbox.app import create_sandbox_app

    sandbox_app = create_sandbox_app(venues=["binanceusdm"], clock=ManualClock(1_760_000_000_000), replay=CAPTURE)
    # the replay sends only what the test releases: a long stall time keeps the quiet sockets open
    settings = stream_settings(stream_symbols=",".join(SYMBOLS.values()), stream_stall_ms=120_000)
    with ServerThread(sandbox_app) as sandbox, \
            ServerThread(gateway_app(sandbox.url, ("binanceusdm",), settings)) as gateway:
        wait_for(lambda: all_live(gateway, "binanceusdm", ("book",)) or None, "the books to be streamed",
                 timeout_s=60)
        yield sandbox, gateway


def test_at_five_checkpoints_the_gateways_book_is_the_one_rebuilt_from_the_recording(stack) -> None:
    sandbox, gateway = stack
    messages = recorded(CAPTURE)
    position = 0
    for checkpoint in (400, 650, 900, 1200, len(messages)):
        state = httpx.post(f"{sandbox.url}/__sandbox/replay", params={"step": checkpoint - position}).json()
        position = state["position"]
        assert position == checkpoint
        for symbol, base in SYMBOLS.items():
            last, bids, asks = rebuild(symbol, messages[:position])
            assert state["last_u"][symbol] == last

            def held() -> dict | None:
                answer = httpx.get(f"{gateway.url}/v1/binanceusdm/markets/{base}/orderbook",
                                   params={"depth": DEPTH}, timeout=10)
                book = answer.json()
                return book if answer.headers["x-cache-source"] == "stream" and book["sequence"] == last else None

            book = wait_for(held, f"{symbol}'s book at u={last}")
            assert [(Decimal(p), Decimal(q)) for p, q in book["bids"]] == sorted(bids.items(), reverse=True)[:DEPTH]
            assert [(Decimal(p), Decimal(q)) for p, q in book["asks"]] == sorted(asks.items())[:DEPTH]

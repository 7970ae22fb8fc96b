"""Per-venue server clock skew in the sandbox, through real ccxt clients: a venue whose server
clock runs ahead or behind refuses signed requests as the real one does (Binance -1021, Bybit
10002, Pacifica's expiry) until the client syncs with its time endpoint (ccxt's
``load_time_difference``); its time endpoints answer the skewed time and are counted in the
stats; market data stays on the model clock; ``/__sandbox/clock`` and ``--clock-skew`` set it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import ccxt
import httpx
import pytest

from tests import accounts_harness
from tests.conftest import ManualClock, ServerThread, ccxt_client, sandbox_data, sandbox_data_args, sandbox_stats

SYMBOL = "BTC/USDT:USDT"
DAY_MS = 86_400_000
T0 = 1_790_000_000_000


def set_skew(box: ServerThread, venue: str, skew_ms: int) -> None:
    r = httpx.post(f"{box.url}/__sandbox/clock", json={"venue": venue, "skew_ms": skew_ms})
    assert r.status_code == 200, r.text
    assert r.json() == {"venue": venue, "skew_ms": skew_ms}


@pytest.fixture(scope="module")
def live() -> Iterator[ServerThread]:
    """A sandbox on the real clock (ccxt signs with it), skews set by each test."""
    from exgate.sandbox.app import create_sandbox_app

    app = create_sandbox_app(sandbox_data(), venues=["binanceusdm", "bybit", "pacifica"])
    with ServerThread(app) as server:
        yield server


@pytest.fixture
def box(live: ServerThread) -> Iterator[ServerThread]:
    yield live
    for venue in ("binanceusdm", "bybit", "pacifica"):
        set_skew(live, venue, 0)


@pytest.fixture(scope="module")
def frozen() -> Iterator[tuple[ServerThread, ManualClock]]:
    """A sandbox of all four venues on a frozen clock, started with skews."""
    from exgate.sandbox.app import create_sandbox_app

    clock = ManualClock(T0)
    app = create_sandbox_app(sandbox_data(), clock=clock,
                             clock_skew={"binanceusdm": 2500, "bybit": -1500, "hyperliquid": 750})
    with ServerThread(app) as server:
        yield server, clock


def binance(box: ServerThread, credentials: dict | None = None):
    """ccxt binanceusdm on the sandbox, pinned to its fapi error table (see
    tests/test_sandbox_private_binance.py)."""
    ex = ccxt_client("binanceusdm", box.url, dict(credentials or {}))
    ex.get_exceptions_by_url = lambda url, kind: ex.exceptions["linear"].get(kind, {})
    return ex


# -- signed requests against a skewed server clock ---------------------------------------------

@pytest.mark.parametrize("skew_ms", [-2500, 15_000])
async def test_binance_refuses_an_unsynced_client_until_it_syncs(box, skew_ms):
    """-2500: the client's timestamp is 2.5 s in the venue's future (over the 1 s Binance
    allows); +15000: 15 s in its past, beyond ccxt's 10 s recvWindow. Both -1021."""
    account = accounts_harness.new_account(box.url, "binanceusdm", "10000")
    ex = binance(box, account["credentials"])
    try:
        await ex.load_markets()
        assert (await ex.fetch_balance())["USDT"]["total"] == 10000
        set_skew(box, "binanceusdm", skew_ms)
        with pytest.raises(ccxt.InvalidNonce, match="-1021"):
            await ex.fetch_balance()
        before = sandbox_stats(box)["venues"]["binanceusdm"]["by_path"].get("/fapi/v1/time", 0)
        difference = await ex.load_time_difference()
        assert ex.options["timeDifference"] == difference
        assert abs(difference + skew_ms) < 1000  # the client now signs on the venue's clock
        assert sandbox_stats(box)["venues"]["binanceusdm"]["by_path"]["/fapi/v1/time"] == before + 1
        assert (await ex.fetch_balance())["USDT"]["total"] == 10000
    finally:
        await ex.close()


async def test_binance_accepts_a_client_behind_by_less_than_its_recv_window(box):
    """A venue 2.5 s ahead: the client's timestamp is 2.5 s old, inside ccxt's 10 s recvWindow,
    so Binance accepts it; with a 2 s recvWindow it does not."""
    account = accounts_harness.new_account(box.url, "binanceusdm", "10000")
    ex = binance(box, account["credentials"])
    try:
        await ex.load_markets()
        set_skew(box, "binanceusdm", 2500)
        assert (await ex.fetch_balance())["USDT"]["total"] == 10000
        with pytest.raises(ccxt.InvalidNonce, match="-1021"):
            await ex.fetch_balance({"recvWindow": 2000})
    finally:
        await ex.close()


@pytest.mark.parametrize("skew_ms", [-2500, 7500])
async def test_bybit_refuses_an_unsynced_client_until_it_syncs(box, skew_ms):
    """Bybit accepts ``server - recvWindow (5 s) <= timestamp < server + 1 s``: 10002 outside."""
    account = accounts_harness.new_account(box.url, "bybit", "10000")
    ex = ccxt_client("bybit", box.url, account["credentials"])
    try:
        await ex.load_markets()
        assert (await ex.fetch_balance())["USDT"]["total"] == 10000
        set_skew(box, "bybit", skew_ms)
        with pytest.raises(ccxt.InvalidNonce, match="10002"):
            await ex.fetch_balance()
        before = sandbox_stats(box)["venues"]["bybit"]["by_path"].get("/v5/market/time", 0)
        difference = await ex.load_time_difference()
        assert abs(difference + skew_ms) < 1000
        assert sandbox_stats(box)["venues"]["bybit"]["by_path"]["/v5/market/time"] == before + 1
        assert (await ex.fetch_balance())["USDT"]["total"] == 10000
    finally:
        await ex.close()


async def test_pacifica_refuses_a_message_expired_on_its_clock(box):
    """Pacifica's clock 6 s ahead: ccxt's 5 s ``expiry_window`` has run out when it arrives
    (ccxt has no fetchTime for pacifica and signs with its own clock, so it cannot sync)."""
    account = accounts_harness.new_account(box.url, "pacifica", "10000")
    ex = ccxt_client("pacifica", box.url, {**account["credentials"], "enableRateLimit": False,
                                           "options": {"builderFee": False}})
    try:
        await ex.load_markets()
        set_skew(box, "pacifica", 6000)
        with pytest.raises(ccxt.BadRequest, match="Invalid message: expired"):
            await ex.set_leverage(5, "BTC/USDC:USDC")
        with pytest.raises(ccxt.NotSupported):
            await ex.fetch_time()
        set_skew(box, "pacifica", 0)
        await ex.set_leverage(5, "BTC/USDC:USDC")
    finally:
        await ex.close()


# -- time endpoints on a frozen clock ------------------------------------------------------------

async def test_fetch_time_answers_each_venues_skewed_time_and_is_counted(frozen):
    box, clock = frozen
    clients = {venue: ccxt_client(venue, box.url) for venue in ("binanceusdm", "bybit", "hyperliquid", "pacifica")}
    try:
        before = sandbox_stats(box)["venues"]
        assert await clients["binanceusdm"].fetch_time() == T0 + 2500
        assert await clients["bybit"].fetch_time() == T0 - 1500  # the envelope's time
        assert await clients["hyperliquid"].fetch_time() == T0 + 750  # POST /info exchangeStatus
        with pytest.raises(ccxt.NotSupported):
            await clients["pacifica"].fetch_time()
        after = sandbox_stats(box)["venues"]
        for venue, path, op in [("binanceusdm", "/fapi/v1/time", "GET /fapi/v1/time"),
                                ("bybit", "/v5/market/time", "GET /v5/market/time"),
                                ("hyperliquid", "/info", "POST /info exchangeStatus")]:
            assert after[venue]["by_path"][path] == before[venue]["by_path"].get(path, 0) + 1
            assert after[venue]["by_operation"][op] == before[venue]["by_operation"].get(op, 0) + 1
        assert after["pacifica"]["requests"] == before["pacifica"]["requests"]  # nothing asked
        bybit_time = httpx.get(f"{box.url}/bybit/v5/market/time").json()
        assert bybit_time["result"] == {"timeSecond": str((T0 - 1500) // 1000), "timeNano": str((T0 - 1500) * 10**6)}
        tickers = httpx.get(f"{box.url}/bybit/v5/market/tickers", params={"category": "linear"}).json()
        assert tickers["time"] == T0 - 1500  # every Bybit answer carries the server time
        info = httpx.get(f"{box.url}/binanceusdm/fapi/v1/exchangeInfo").json()
        assert info["serverTime"] == T0 + 2500
    finally:
        for ex in clients.values():
            await ex.close()


async def test_market_data_stays_on_the_model_clock(frozen):
    box, clock = frozen
    ex = ccxt_client("binanceusdm", box.url)
    try:
        ticker = await ex.fetch_ticker(SYMBOL)
        assert ticker["timestamp"] == clock()  # not clock() + 2500
        trades = await ex.fetch_trades(SYMBOL, limit=5)
        assert trades and max(t["timestamp"] for t in trades) <= clock()
    finally:
        await ex.close()


async def test_the_skew_changes_at_run_time_and_survives_a_reset(frozen):
    box, clock = frozen
    ex = ccxt_client("binanceusdm", box.url)
    try:
        shown = httpx.get(f"{box.url}/__sandbox/clock").json()
        assert shown["skew_ms"] == {"binanceusdm": 2500, "bybit": -1500, "hyperliquid": 750, "pacifica": 0}
        assert shown["now_ms"] == clock()
        assert shown["server_ms"]["bybit"] == clock() - 1500
        set_skew(box, "binanceusdm", -4000)
        assert await ex.fetch_time() == clock() - 4000
        assert httpx.post(f"{box.url}/__sandbox/reset").status_code == 200
        assert httpx.get(f"{box.url}/__sandbox/clock").json()["skew_ms"]["binanceusdm"] == -4000
        assert await ex.fetch_time() == clock() - 4000
    finally:
        set_skew(box, "binanceusdm", 2500)
        await ex.close()


@pytest.mark.parametrize(("body", "field"), [
    ({"venue": "kraken", "skew_ms": 100}, "venue: expected one of binanceusdm, bybit, hyperliquid, pacifica"),
    ({"skew_ms": 100}, "venue: expected one of"),
    ({"venue": "bybit", "skew_ms": "100"}, "skew_ms: expected a whole number of ms within ±86400000"),
    ({"venue": "bybit", "skew_ms": 2.5}, "skew_ms: expected a whole number"),
    ({"venue": "bybit", "skew_ms": True}, "skew_ms: expected a whole number"),
    ({"venue": "bybit"}, "skew_ms: expected a whole number"),
    ({"venue": "bybit", "skew_ms": DAY_MS + 1}, "skew_ms: expected a whole number of ms within ±86400000"),
    ({"venue": "bybit", "skew_ms": -DAY_MS - 1}, "skew_ms:"),
    ([1, 2], "expected a JSON object with venue and skew_ms"),
])
def test_bad_clock_input_is_422_naming_the_field(frozen, body, field):
    box, _ = frozen
    r = httpx.post(f"{box.url}/__sandbox/clock", json=body)
    assert r.status_code == 422
    assert field in r.json()["error"]
    assert httpx.get(f"{box.url}/__sandbox/clock").json()["skew_ms"]["bybit"] == -1500  # unchanged


def test_a_body_that_is_not_json_is_422(frozen):
    box, _ = frozen
    r = httpx.post(f"{box.url}/__sandbox/clock", content=b"venue=bybit")
    assert r.status_code == 422 and "expected a JSON object" in r.json()["error"]


def test_a_skew_of_exactly_one_day_is_allowed(frozen):
    box, clock = frozen
    try:
        set_skew(box, "pacifica", -DAY_MS)
        assert httpx.get(f"{box.url}/__sandbox/clock").json()["server_ms"]["pacifica"] == clock() - DAY_MS
    finally:
        set_skew(box, "pacifica", 0)


@pytest.mark.parametrize("skews", [{"kraken": 5}, {"bybit": DAY_MS + 1}, {"bybit": "5"}])
def test_create_sandbox_app_refuses_bad_skews(skews):
    from exgate.sandbox.app import create_sandbox_app

    with pytest.raises(ValueError, match="clock_skew: .*expected VENUE="):
        create_sandbox_app(sandbox_data(), venues=["bybit"], clock_skew=skews)


# -- the command line ------------------------------------------------------------------------------

def test_parse_clock_skew_reads_signed_ms():
    from exgate.sandbox.clock import parse_clock_skew

    venues = ["binanceusdm", "bybit"]
    assert parse_clock_skew(["binanceusdm=+2500", "bybit=-300"], venues) == {"binanceusdm": 2500, "bybit": -300}
    assert parse_clock_skew(["BYBIT=40", "bybit=41"], venues) == {"bybit": 41}
    for bad in ("binanceusdm=abc", "binanceusdm", "binanceusdm=2.5", "=5", "kraken=5", f"bybit=+{DAY_MS + 1}"):
        with pytest.raises(ValueError, match=r"^--clock-skew: .*expected VENUE=\[\+\|-\]MS"):
            parse_clock_skew([bad], venues)


def _env() -> dict[str, str]:
    """This environment without ``EXGATE_*`` settings (the developer's own must not leak in)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("EXGATE_")}


def test_the_cli_rejects_a_bad_clock_skew():
    run = subprocess.run([sys.executable, "-m", "exgate", "sandbox", "--port", "0", "--clock-skew", "binanceusdm=abc"],
                         env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --clock-skew: 'binanceusdm=abc': expected VENUE=[+|-]MS")
    assert "binanceusdm, bybit, hyperliquid, pacifica" in lines[0]


def test_the_cli_starts_a_sandbox_with_skews():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "exgate", "sandbox", "--port", str(port), *sandbox_data_args(),
                             "--clock-skew", "binanceusdm=+2500", "--clock-skew", "bybit=-300"],
                            env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        shown = None
        deadline = time.monotonic() + 120
        while shown is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                shown = httpx.get(f"http://127.0.0.1:{port}/__sandbox/clock").json()
            except httpx.TransportError:
                time.sleep(0.2)  # waiting for another process to bind its port; no clock to inject
        assert shown is not None, proc.stderr.read() if proc.poll() is not None else "not started"
        assert shown["skew_ms"] == {"binanceusdm": 2500, "bybit": -300, "hyperliquid": 0, "pacifica": 0}
    finally:
        proc.terminate()
        proc.wait(timeout=30)

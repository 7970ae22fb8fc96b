"""``exgate loadtest``: the user model's rates, the time compression of the spawned stack, and a
short real run of the ``250`` preset (sandbox, Redis, a gateway, all spawned by the command)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import orjson
import pytest

from tests.conftest import sandbox_data_args


def _model(**figures):
    from exgate.loadtest.model import UserModel

    return UserModel(**{"users": 1_000, **figures})


def test_the_population_keeps_the_models_shares_and_spreads_users_over_venues_and_targets():
    from exgate.loadtest.model import population

    users = population(_model(), targets=3, seed=1)
    online = [u for u in users if u.online]
    assert len(online) == 500 and sum(u.connected for u in users) == 250
    assert all(u.online for u in users if u.connected or u.ws_up)
    assert sum(u.ws_up for u in online) == 250
    assert Counter(u.venue for u in users) == {v: 250 for v in ("binanceusdm", "bybit", "hyperliquid", "pacifica")}
    assert Counter(u.target for u in users) == {0: 334, 1: 333, 2: 333}


def test_the_schedule_fires_at_the_models_rates():
    from exgate.loadtest.model import Action, Schedule, population

    model = _model()
    users = population(model, targets=1, seed=3)
    horizon = 600.0
    fired = Counter(event.action for event in Schedule(model, users, seed=3).until(horizon))
    connected = [u for u in users if u.connected]
    polls = sum(horizon / (model.poll_ws_s if u.ws_up else model.poll_s) for u in connected)
    price_polls = sum(horizon / model.price_poll_s for u in users if u.online and not u.ws_up)
    assert fired[Action.ACCOUNT_POLL] == pytest.approx(polls, abs=len(connected))  # one per poller at most
    assert fired[Action.PRICE_POLL] == pytest.approx(price_polls, abs=len(users))
    # Poisson arrivals: 3 page loads per 1,000 users per s, 0.05 orders per user per min
    assert fired[Action.PAGE_LOAD] == pytest.approx(3 * horizon, rel=0.1)
    assert fired[Action.ORDER] == pytest.approx(0.05 * 1_000 * horizon / 60, rel=0.1)


def test_events_come_in_time_order_and_a_herd_polls_at_once():
    from exgate.loadtest.model import Action, Schedule, population

    model = _model(users=200)
    events = list(Schedule(model, population(model, 1, 5), seed=5).until(60.0))
    assert [e.at_s for e in events] == sorted(e.at_s for e in events)
    first_polls = [e for e in events if e.action is Action.ACCOUNT_POLL and e.at_s < model.poll_s]
    assert len({round(e.at_s, 3) for e in first_polls}) > 10  # random phases: no herd

    herd = _model(users=200, herd=True)
    at_zero = [e for e in Schedule(herd, population(herd, 1, 5), seed=5).until(0.001)
               if e.action is Action.ACCOUNT_POLL]
    assert len(at_zero) == sum(u.connected for u in population(herd, 1, 5))


def test_speed_divides_every_ttl_and_limit_window():
    from exgate.cache import DEFAULT_FRESHNESS, DataType, load_freshness
    from exgate.loadtest.stack import cache_config, venue_limits

    def scaled(config: str, tmp) -> dict:
        path = tmp / "cache.toml"
        path.write_text(config)
        return load_freshness("", path)

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        fast = scaled(cache_config(4.0), Path(folder))
    for kind in (DataType.ORDER_BOOK, DataType.ACCOUNT, DataType.MARKETS):
        assert fast[kind].ttl_ms == DEFAULT_FRESHNESS[kind].ttl_ms / 4
    assert venue_limits(["binanceusdm"], 4.0, lifted=False) == {"binanceusdm": (2_400, 15_000)}
    assert venue_limits(["binanceusdm"], 0.5, lifted=True) == {"binanceusdm": (2_400_000, 120_000)}


def _loadtest(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exgate", "loadtest", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_bad_flags_name_what_is_wrong():
    both = _loadtest("--spawn", "1", "--targets", "http://127.0.0.1:1")
    assert both.returncode == 2 and "exactly one of --spawn" in both.stderr
    bare = _loadtest("--targets", "http://127.0.0.1:1")
    assert bare.returncode == 2 and "--sandbox" in bare.stderr and "--tenant-key" in bare.stderr
    mode = _loadtest("--spawn", "1", "--modes", "direct,turbo")
    assert mode.returncode == 2 and "turbo" in mode.stderr and "direct, cached, streams" in mode.stderr
    share = _loadtest("--spawn", "1", "--online", "1.5")
    assert share.returncode == 2 and "--online" in share.stderr


def test_the_250_preset_writes_the_report_and_the_cache_absorbs_reads(tmp_path):
    out = tmp_path / "report"
    run = _loadtest("--preset", "250", "--spawn", "1", "--duration", "16", "--warmup", "2", "--out", str(out),
                    *sandbox_data_args("--sandbox-data"))
    assert run.returncode == 0, run.stderr[-2000:]
    result = orjson.loads((out / "report.json").read_bytes())
    assert (out / "upstream.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "report.md").read_text()
    assert "## Comparison" in markdown and "K = 8" in markdown

    assert result["users"] == 250 and result["speed"] == 8.0
    assert result["provisioned"] == {"created": 62}
    runs = {r["mode"]: r for r in result["runs"]}
    assert [r["mode"] for r in result["runs"]] == ["direct", "cached", "streams"]
    direct, cached, streamed = runs["direct"], runs["cached"], runs["streams"]
    for ran in (direct, cached, streamed):
        assert ran["status"] == "ran"
        assert ran["client"]["requests"] > 100
        assert not [s for s in ran["client"]["errors"] if s.startswith("5")], ran["client"]["errors"]
        assert set(ran["upstream"]["by_venue"]) == {"binanceusdm", "bybit", "hyperliquid", "pacifica"}
        assert ran["client"]["by_class"]["account"]["p99_ms"] is not None
    # the point of the gateway: the same users, fewer upstream reads; orders stay orders
    assert cached["upstream"]["reads_per_s"] < direct["upstream"]["reads_per_s"]
    assert direct["cache"]["hit_rate"] == 0 and cached["cache"]["hit_rate"] > 0.3
    assert cached["upstream"]["by_class"]["market"] < direct["upstream"]["by_class"]["market"] / 2
    # streams answer the page loads' books, trades and candles: fewer market reads still
    assert streamed["upstream"]["by_class"]["market"] < cached["upstream"]["by_class"]["market"]

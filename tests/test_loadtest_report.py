"""The load test's report: the files a user opens after `exgate loadtest --out DIR`."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson

from exgate.loadtest.chart import chart
from exgate.loadtest.report import render_markdown, scale_table, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _latency(count: int, per_s: float, p99: float) -> dict[str, Any]:
    return {"count": count, "per_s": per_s, "p50_ms": 3.1, "p95_ms": 9.0, "p99_ms": p99}


def _run(mode: str, reads: float, writes: float, hit_rate: float, p99: float) -> dict[str, Any]:
    return {
        "mode": mode,
        "status": "ran",
        "reason": None,
        "wall_s": 171.2,
        "client": {
            "requests": 41234,
            "per_s": 580.2,
            "late": 12,
            "dropped": 0,
            "by_class": {
                "account": _latency(30000, 420.0, p99),
                "market": _latency(8000, 110.0, p99 / 2),
                "prices": _latency(3000, 45.0, p99 / 3),
                "order": _latency(234, 3.3, p99 * 2),
            },
            "all": _latency(41234, 580.2, p99),
            "errors": {"503": 4, "timeout": 1},
        },
        "upstream": {
            "per_s": reads + writes,
            "reads_per_s": reads,
            "writes_per_s": writes,
            "throttled": {"429": 0, "418": 0},
            "by_venue": {
                "binanceusdm": {
                    "per_s": reads / 2 + writes,
                    "reads_per_s": reads / 2,
                    "writes_per_s": writes,
                    "weight_per_min": 4000.0,
                    "limit_per_min": 2400.0,
                    "by_operation": {"GET /fapi/v1/depth": reads / 4, "POST /fapi/v1/order": writes},
                },
                "bybit": {
                    "per_s": reads / 2,
                    "reads_per_s": reads / 2,
                    "writes_per_s": 0.0,
                    "weight_per_min": 600.0,
                    "limit_per_min": 6000.0,
                    "by_operation": {"GET /v5/position/list": reads / 2},
                },
            },
        },
        "cache": {"hit_rate": hit_rate, "lookups": {"hit": 1000, "miss": 30, "coalesced": 2, "stale": 1}},
    }


def _result(users: int = 10000, preset: str | None = "10k", scale: float = 1.0) -> dict[str, Any]:
    return {
        "exgate_loadtest": 1,
        "command": f"exgate loadtest --preset {preset} --spawn 3 --out report/",
        "preset": preset,
        "users": users,
        "speed": 0.3,
        "duration_model_s": 60.0,
        "warmup_model_s": 15.0,
        "model": {"online": 0.5, "connected": 0.5, "poll_s": 15.0, "poll_ws_s": 30.0, "ws_share": 0.5,
                  "price_poll_s": 30.0, "page_loads_per_1k_per_s": 3.0, "orders_per_user_per_min": 0.05,
                  "herd": False, "limit_share": 0.5},
        "targets": {"spawn": 3, "urls": ["http://127.0.0.1:41231", "http://127.0.0.1:41232"],
                    "sandbox": "http://127.0.0.1:40001"},
        "limits": "lifted",
        "started_ms": 1790000000000,
        "finished_ms": 1790000300000,
        "projections": {"250": {"uncached": [20, 35]}, "5000": {"uncached": [200, 300]},
                        "10000": {"uncached": [250, 400], "cached": [100, 200]}},
        "runs": [
            _run("direct", 300.0 * scale, 8.3 * scale, 0.0, 40.0),
            _run("cached", 150.0 * scale, 8.3 * scale, 0.97, 22.0),
            {"mode": "streams", "status": "skipped", "reason": "the sandbox serves no private streams",
             "wall_s": None},
        ],
        "notes": ["converted rates compare with the uncompressed model"],
    }


def test_write_report_writes_the_three_files(tmp_path: Path) -> None:
    result = _result()
    original = copy.deepcopy(result)
    paths = write_report(result, tmp_path / "out")

    assert set(paths) == {"json", "markdown", "chart"}
    assert paths["json"] == tmp_path / "out" / "report.json"
    png = paths["chart"].read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    assert len(png) > 10_000  # a drawn chart, not an empty canvas
    assert orjson.loads(paths["json"].read_bytes()) == original
    assert result == original  # the caller's dict is left alone

    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert markdown.startswith("# exgate load test: 10000 users (preset 10k)")
    assert "`exgate loadtest --preset 10k --spawn 3 --out report/`" in markdown
    assert "K = 0.3" in markdown and "NOT scaled" in markdown
    assert "venue limits lifted so the table measures demand" in markdown
    assert "![upstream requests/s against users](upstream.png)" in markdown
    assert "converted rates compare with the uncompressed model" in markdown


def test_markdown_compares_modes_and_shows_weight_against_limit() -> None:
    markdown = render_markdown(_result())
    comparison = markdown[markdown.index("## Comparison"):]
    assert "| direct | ran | 300.0 | 8.3 | 0.0% | 40.0 |" in comparison
    assert "| cached | ran | 150.0 | 8.3 | 97.0% | 22.0 |" in comparison
    assert "Reduction of upstream reads, direct / cached: **2.0×**" in comparison
    # the skipped mode: its reason, in its own section and the comparison
    assert "**skipped**: the sandbox serves no private streams" in markdown
    assert "| streams | skipped: the sandbox serves no private streams |" in comparison
    assert "direct / streams: **–**" in comparison
    # 4000 weight/min against Binance's 2400 limit
    assert "| binanceusdm | 150.0 | 8.3 | 158.3 | 4000.0 | 2400.0 | 1.7× |" in markdown
    assert "Errors: 503: 4, timeout: 1." in markdown
    assert "Hit rate 97.0%; lookups: hit 1000, miss 30, coalesced 2, stale 1." in markdown
    # the direct run's busiest operations first, across venues
    direct = markdown[markdown.index("## Mode: direct"):markdown.index("## Mode: cached")]
    top = direct[direct.index("Top operations:"):]
    assert top.index("| bybit | GET /v5/position/list | 150.0 |") < top.index(
        "| binanceusdm | GET /fapi/v1/depth | 75.0 |") < top.index("| binanceusdm | POST /fapi/v1/order | 8.3 |")


def test_a_run_that_failed_half_way_still_renders(tmp_path: Path) -> None:
    result = _result()
    del result["runs"][0]["client"]
    del result["runs"][1]["upstream"]
    result["runs"][1]["cache"] = {"hit_rate": None}
    result["runs"].append({"mode": "streams", "status": "ran"})
    del result["model"], result["projections"], result["speed"]
    result["users"] = float("nan")  # a runner that divided by zero

    markdown = render_markdown(result)
    assert "No client measurements." in markdown
    assert "No upstream measurements." in markdown
    assert "| cached | ran | – | 8.3 |" not in markdown and "| cached | ran | – | – | – | 22.0 |" in markdown
    assert "direct / cached: **–**" in markdown
    paths = write_report(result, tmp_path)
    assert paths["chart"].read_bytes().startswith(PNG_SIGNATURE)
    assert markdown.startswith("# exgate load test: – users (preset 10k)")
    assert render_markdown({}).startswith("# exgate load test: – users\n")


def test_scale_table_and_chart_over_several_presets(tmp_path: Path) -> None:
    results = [_result(10000, "10k", 1.0), _result(250, "250", 250 / 10000), _result(5000, "5k", 0.5)]
    table = scale_table(results).splitlines()
    assert table[0] == ("| users | mode | upstream reads/s | upstream orders/s | total/s | hit rate "
                        "| p99 ms (all routes) | projected |")
    body = table[2:]
    assert [row.split(" | ")[0:2] for row in body] == [
        ["| 250", "direct"], ["| 250", "cached"], ["| 250", "streams (skipped: the sandbox serves no private streams)"],
        ["| 5000", "direct"], ["| 5000", "cached"], ["| 5000", "streams (skipped: the sandbox serves no private streams)"],
        ["| 10000", "direct"], ["| 10000", "cached"], ["| 10000", "streams (skipped: the sandbox serves no private streams)"],
    ]
    # 10k direct: 308.3/s total against the uncached projection 250–400
    assert body[6] == "| 10000 | direct | 300.0 | 8.3 | 308.3 | 0.0% | 40.0 | 250–400 (within) |"
    assert body[7].endswith("| 158.3 | 97.0% | 22.0 | 100–200 (within) |")
    assert body[0].endswith("| 7.7 | 0.0% | 40.0 | 20–35 (below) |")
    assert body[4].endswith("| –" + " |")  # 5k has no cached projection

    # a run whose own result lacks projections borrows the band another result gives for its users
    del results[0]["projections"]
    assert "| 10000 | direct | 300.0 | 8.3 | 308.3 | 0.0% | 40.0 | 250–400 (within) |" in scale_table(results)

    path = chart(results, tmp_path / "scale.png")
    assert path == tmp_path / "scale.png"
    assert path.read_bytes().startswith(PNG_SIGNATURE) and path.stat().st_size > 10_000

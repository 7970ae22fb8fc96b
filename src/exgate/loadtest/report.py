"""The load test's output: one run's JSON result turned into ``report.json``, ``report.md`` and
``upstream.png``, plus a Markdown table over several runs (e.g. presets 250, 1k, 5k, 10k).

The result dict (``"exgate_loadtest": 1``) is produced by the runner; every rate in it is per
second of MODEL time, already converted back by dividing the wall rate by the speed K. This
module only formats: a missing field renders as "–", never an exception, so the report of a
run that failed half-way still shows what it has.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import orjson

from exgate.loadtest.chart import MODE_ORDER, chart

__all__ = ["chart", "render_markdown", "scale_table", "write_report"]

DASH = "–"
_MODEL_LABELS = {
    "online": "share of users online",
    "connected": "share of online users with a connected account",
    "poll_s": "account poll interval, s (app WebSocket down)",
    "poll_ws_s": "account poll interval, s (app WebSocket up)",
    "ws_share": "share of online users whose app WebSocket is up",
    "price_poll_s": "price poll interval, s",
    "page_loads_per_1k_per_s": "page loads per 1k users per s",
    "orders_per_user_per_min": "orders per user per min (all users; placed by connected ones)",
    "herd": "herd (all users start in step)",
    "limit_share": "share of limit orders",
}
_LIMITS = {
    "lifted": "venue limits lifted so the table measures demand; weight/min is shown against "
              "each venue's published limit",
    "real": "real venue limits enforced: upstream rates are capped by the venues' budgets and "
            "429/418 answers count as throttled",
}
_PROJECTION_KIND = {"direct": "uncached", "cached": "cached", "streams": "cached"}


def _get(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...`` or None when any level is missing or not a dict."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _fmt(value: Any, digits: int = 1) -> str:
    """A number with ``digits`` decimals (rates, ms), "–" when missing or not a number."""
    number = _num(value)
    return DASH if number is None else f"{number:.{digits}f}"


def _int(value: Any) -> str:
    number = _num(value)
    return DASH if number is None else f"{int(number)}"


def _pct(value: Any) -> str:
    """A 0..1 ratio as a percentage with one decimal, e.g. 0.97 → "97.0%"."""
    number = _num(value)
    return DASH if number is None else f"{number * 100:.1f}%"


def _times(numerator: Any, denominator: Any) -> str:
    """``numerator / denominator`` as a factor, e.g. 300 / 150 → "2.0×"; "–" if not computable."""
    top, bottom = _num(numerator), _num(denominator)
    if top is None or bottom is None or bottom == 0:
        return DASH
    return f"{top / bottom:.1f}×"


def _cell(value: Any) -> str:
    text = DASH if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _when(ms: Any) -> str:
    number = _num(ms)
    if number is None:
        return DASH
    try:
        return dt.datetime.fromtimestamp(number / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return DASH


def _safe_float(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _runs(result: dict[str, Any]) -> list[dict[str, Any]]:
    runs = result.get("runs") if isinstance(result, dict) else None
    return [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []


def _projection(results: list[dict[str, Any]], users: Any, mode: Any) -> Any:
    """The projected band for ``users`` and ``mode``'s kind, from the first result that has one."""
    kind = _PROJECTION_KIND.get(str(mode))
    number = _num(users)
    if kind is None or number is None:
        return None
    for result in results:
        band = _get(result, "projections", str(int(number)), kind)
        if band is not None:
            return band
    return None


def _band(band: Any, measured: Any = None) -> str:
    """A projection ``[low, high]`` as "low–high", with where ``measured`` falls against it."""
    if not isinstance(band, (list, tuple)) or len(band) != 2:
        return DASH
    low, high = _num(band[0]), _num(band[1])
    if low is None or high is None:
        return DASH
    text = f"{low:.0f}–{high:.0f}"
    value = _num(measured)
    if value is not None:
        text += " (below)" if value < low else " (above)" if value > high else " (within)"
    return text


def _mode_section(run: dict[str, Any]) -> list[str]:
    mode, status = run.get("mode") or "?", run.get("status") or "?"
    lines = [f"## Mode: {mode}", ""]
    if status != "ran":
        return lines + [f"**{status}**: {run.get('reason') or 'no reason given'}", ""]
    lines += [f"Wall-clock time: {_fmt(run.get('wall_s'))} s.", ""]

    upstream = run.get("upstream") if isinstance(run.get("upstream"), dict) else None
    lines += ["### Upstream (requests/s, model time)", ""]
    if upstream is None:
        lines += ["No upstream measurements.", ""]
    else:
        throttled = upstream.get("throttled") if isinstance(upstream.get("throttled"), dict) else {}
        lines += [
            f"Total {_fmt(upstream.get('per_s'))}/s: reads {_fmt(upstream.get('reads_per_s'))}/s, "
            f"writes {_fmt(upstream.get('writes_per_s'))}/s. Throttled: "
            + (", ".join(f"{k}: {_int(v)}" for k, v in throttled.items()) or DASH) + ".",
            "",
        ]
        venues = upstream.get("by_venue") if isinstance(upstream.get("by_venue"), dict) else {}
        rows, operations = [], []
        for venue, stats in venues.items():
            stats = stats if isinstance(stats, dict) else {}
            weight, limit = stats.get("weight_per_min"), stats.get("limit_per_min")
            rows.append([venue, _fmt(stats.get("reads_per_s")), _fmt(stats.get("writes_per_s")),
                         _fmt(stats.get("per_s")), _fmt(weight), _fmt(limit), _times(weight, limit)])
            by_operation = stats.get("by_operation") if isinstance(stats.get("by_operation"), dict) else {}
            operations += [(_num(rate), venue, op) for op, rate in by_operation.items()]
        if rows:
            lines += _table(["venue", "reads/s", "writes/s", "total/s", "weight/min", "limit/min",
                             "weight/limit"], rows) + [""]
        top = sorted((o for o in operations if o[0] is not None), reverse=True)[:10]
        if top:
            lines += ["Top operations:", ""]
            lines += _table(["venue", "operation", "per s"], [[v, op, _fmt(r)] for r, v, op in top]) + [""]

    client = run.get("client") if isinstance(run.get("client"), dict) else None
    lines += ["### Client (latency is wall-clock, not scaled)", ""]
    if client is None:
        lines += ["No client measurements.", ""]
    else:
        lines += [
            f"Requests {_int(client.get('requests'))} ({_fmt(client.get('per_s'))}/s), "
            f"late {_int(client.get('late'))}, dropped {_int(client.get('dropped'))}.",
            "",
        ]
        classes = client.get("by_class") if isinstance(client.get("by_class"), dict) else {}
        named = list(classes.items()) + [("all", client.get("all"))]
        rows = []
        for name, stats in named:
            stats = stats if isinstance(stats, dict) else {}
            rows.append([f"**{name}**" if name == "all" else name, _int(stats.get("count")),
                         _fmt(stats.get("per_s")), _fmt(stats.get("p50_ms")),
                         _fmt(stats.get("p95_ms")), _fmt(stats.get("p99_ms"))])
        lines += _table(["class", "count", "per s", "p50 ms", "p95 ms", "p99 ms"], rows) + [""]
        errors = client.get("errors") if isinstance(client.get("errors"), dict) else {}
        lines += ["Errors: " + (", ".join(f"{k}: {_int(v)}" for k, v in errors.items()) or "none") + ".", ""]

    cache = run.get("cache") if isinstance(run.get("cache"), dict) else None
    if cache is not None:
        lookups = cache.get("lookups") if isinstance(cache.get("lookups"), dict) else {}
        lines += [
            "### Cache", "",
            f"Hit rate {_pct(cache.get('hit_rate'))}; lookups: "
            + (", ".join(f"{k} {_int(v)}" for k, v in lookups.items()) or DASH) + ".",
            "",
        ]
    unabsorbed = run.get("unabsorbed") if isinstance(run.get("unabsorbed"), dict) else None
    if unabsorbed is not None:
        by_class = unabsorbed.get("by_class") if isinstance(unabsorbed.get("by_class"), dict) else {}
        lines += [
            f"Upstream reads the cache could not absorb: {_fmt(unabsorbed.get('per_s'))}/s ("
            + (", ".join(f"{k} {_fmt(v)}/s" for k, v in by_class.items()) or DASH) + ").",
            "",
        ]
    return lines


def _comparison(result: dict[str, Any]) -> list[str]:
    runs = {str(r.get("mode")): r for r in _runs(result)}
    if not runs:
        return []
    rows = []
    for mode, run in sorted(runs.items(), key=lambda kv: _mode_key(kv[0])):
        if run.get("status") != "ran":
            rows.append([mode, f"skipped: {run.get('reason') or DASH}", DASH, DASH, DASH, DASH])
            continue
        rows.append([mode, "ran", _fmt(_get(run, "upstream", "reads_per_s")),
                     _fmt(_get(run, "upstream", "writes_per_s")), _pct(_get(run, "cache", "hit_rate")),
                     _fmt(_get(run, "client", "all", "p99_ms"))])
    lines = ["## Comparison", ""]
    lines += _table(["mode", "status", "upstream reads/s", "upstream orders/s", "hit rate",
                     "p99 ms (all routes)"], rows) + [""]
    direct = _get(runs.get("direct"), "upstream", "reads_per_s")
    for other in ("cached", "streams"):
        ran = _get(runs.get(other), "status") == "ran"
        factor = _times(direct, _get(runs.get(other), "upstream", "reads_per_s")) if ran else DASH
        if other in runs:
            lines.append(f"Reduction of upstream reads, direct / {other}: **{factor}**")
            lines.append("")
    return lines


def _mode_key(mode: str) -> tuple[int, str]:
    return (MODE_ORDER.index(mode) if mode in MODE_ORDER else len(MODE_ORDER), mode)


def render_markdown(result: dict[str, Any]) -> str:
    """The Markdown report of one load test result (schema ``"exgate_loadtest": 1``).

    Sections: title, command, time compression (K), model, limits, one per mode (skipped ones
    with their reason), the direct / cached / streams comparison with the reduction of reads,
    the projections, the chart (``upstream.png`` beside the file) and the runner's notes.
    Never raises on missing or malformed fields; they show as "–".
    """
    result = result if isinstance(result, dict) else {}
    users, preset = result.get("users"), result.get("preset")
    title = f"# exgate load test: {_int(users)} users" + (f" (preset {preset})" if preset else "")
    speed_value = _num(result.get("speed"))
    speed = DASH if speed_value is None else f"{speed_value:g}"
    lines = [title, ""]
    lines += [f"Command: `{result.get('command') or DASH}`", ""]
    lines += [
        f"Started {_when(result.get('started_ms'))}, finished {_when(result.get('finished_ms'))}; "
        f"measured {_fmt(result.get('duration_model_s'))} s of model time after a "
        f"{_fmt(result.get('warmup_model_s'))} s warm-up.",
        "",
        "## Time compression",
        "",
        f"Speed K = {speed}. Every interval, TTL and lease is divided by K, so every rate in the "
        "model (polls, page loads, orders, cache expiries) is multiplied by the same K; upstream "
        "calls per second and hit rate converted back by dividing by K therefore compare with the "
        "uncompressed model; latencies are wall-clock and are NOT scaled.",
        "",
    ]
    model = result.get("model") if isinstance(result.get("model"), dict) else {}
    if model:
        lines += ["## Model", ""]
        lines += _table(["parameter", "value"],
                        [[_MODEL_LABELS.get(k, k), str(v)] for k, v in model.items()]) + [""]
    targets = result.get("targets") if isinstance(result.get("targets"), dict) else {}
    if targets:
        urls = targets.get("urls") if isinstance(targets.get("urls"), list) else []
        lines += [f"Targets: {_int(targets.get('spawn'))} gateway instance(s) "
                  f"({', '.join(map(str, urls)) or DASH}), sandbox {targets.get('sandbox') or DASH}.", ""]
    limits = result.get("limits")
    lines += ["## Venue limits", "", f"**{limits or DASH}**: {_LIMITS.get(str(limits), DASH)}", ""]

    for run in _runs(result):
        lines += _mode_section(run)
    lines += _comparison(result)

    projections = result.get("projections") if isinstance(result.get("projections"), dict) else {}
    if projections:
        ordered = sorted(projections.items(), key=lambda kv: (_num(_safe_float(kv[0])) or 0.0, str(kv[0])))
        rows = [[str(k), _band(_get(v, "uncached")), _band(_get(v, "cached"))] for k, v in ordered]
        lines += ["## Projections (upstream requests/s)", ""]
        lines += _table(["users", "uncached", "cached"], rows) + [""]
    lines += ["![upstream requests/s against users](upstream.png)", ""]
    notes = result.get("notes") if isinstance(result.get("notes"), list) else []
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)


def scale_table(results: list[dict[str, Any]]) -> str:
    """A Markdown table over several results, one row per (users, mode), sorted by users then mode.

    Columns: users | mode | upstream reads/s | upstream orders/s | total/s | hit rate |
    p99 ms (all routes) | projected (the band for that user count, from the row's own result
    or else any other: uncached for direct, cached otherwise, with where the measured total
    upstream requests/s falls: below, within or above). Skipped runs show their
    reason in the mode cell. Never raises on missing fields.
    """
    keyed = []
    for result in results:
        for run in _runs(result):
            keyed.append(((_num(result.get("users")) or 0.0, _mode_key(str(run.get("mode")))), result, run))
    rows = []
    for _, result, run in sorted(keyed, key=lambda item: item[0]):
        mode, users = str(run.get("mode") or "?"), result.get("users")
        if run.get("status") != "ran":
            rows.append([_int(users), f"{mode} (skipped: {run.get('reason') or DASH})"] + [DASH] * 6)
            continue
        total = _get(run, "upstream", "per_s")
        rows.append([
            _int(users), mode, _fmt(_get(run, "upstream", "reads_per_s")),
            _fmt(_get(run, "upstream", "writes_per_s")), _fmt(total), _pct(_get(run, "cache", "hit_rate")),
            _fmt(_get(run, "client", "all", "p99_ms")), _band(_projection([result, *results], users, mode), total),
        ])
    header = ["users", "mode", "upstream reads/s", "upstream orders/s", "total/s", "hit rate",
              "p99 ms (all routes)", "projected"]
    return "\n".join(_table(header, rows)) + "\n"


def write_report(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write ``report.json`` (the result, orjson, indent 2), ``report.md`` and ``upstream.png``.

    ``out_dir`` is created with its parents if missing. Returns ``{"json": path, "markdown":
    path, "chart": path}``. Raises OSError when the folder cannot be written and TypeError when
    the result holds values JSON cannot encode.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "markdown": out_dir / "report.md", "chart": out_dir / "upstream.png"}
    paths["json"].write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    paths["markdown"].write_text(render_markdown(result), encoding="utf-8")
    chart([result], paths["chart"])
    return paths

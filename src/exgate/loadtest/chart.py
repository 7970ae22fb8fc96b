"""The load test's chart: upstream requests/s against users, one series per mode.

Drawn with matplotlib's object API on the Agg canvas (a :class:`~matplotlib.figure.Figure`
without pyplot), so it needs no display and leaves no global figure state behind.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

MODE_ORDER = ("direct", "cached", "streams")
_COLOURS = {"direct": "tab:red", "cached": "tab:blue", "streams": "tab:green"}
_BANDS = {"uncached": ("projected uncached", "tab:gray"), "cached": ("projected cached", "tab:cyan")}
# a y (or x) range wider than this factor gets a log axis
_LOG_SPAN = 20.0


def _number(value: Any) -> float | None:
    """``value`` as a float, or None for a missing, boolean, non-numeric or non-finite value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def measured_points(results: list[dict[str, Any]]) -> dict[str, list[tuple[float, float, float | None]]]:
    """``{mode: [(users, upstream per_s, upstream reads_per_s or None), ...]}`` sorted by users.

    Only runs that ran and report an upstream ``per_s`` count; anything else is left out.
    """
    points: dict[str, list[tuple[float, float, float | None]]] = {}
    for result in results:
        users = _number(result.get("users")) if isinstance(result, dict) else None
        if users is None:
            continue
        for run in result.get("runs") or []:
            if not isinstance(run, dict) or run.get("status") != "ran":
                continue
            upstream = run.get("upstream") if isinstance(run.get("upstream"), dict) else {}
            total = _number(upstream.get("per_s"))
            if total is None:
                continue
            mode = str(run.get("mode") or "?")
            points.setdefault(mode, []).append((users, total, _number(upstream.get("reads_per_s"))))
    for series in points.values():
        series.sort()
    return points


def projection_bands(results: list[dict[str, Any]]) -> dict[str, list[tuple[float, float, float]]]:
    """``{"uncached"|"cached": [(users, low, high), ...]}`` merged over the results' projections.

    A later result's band for the same users replaces an earlier one; malformed bands are skipped.
    """
    merged: dict[str, dict[float, tuple[float, float]]] = {}
    for result in results:
        projections = result.get("projections") if isinstance(result, dict) else None
        if not isinstance(projections, dict):
            continue
        for users_key, kinds in projections.items():
            try:
                users = float(users_key)
            except (TypeError, ValueError):
                continue
            if not math.isfinite(users) or not isinstance(kinds, dict):
                continue
            for kind, band in kinds.items():
                if not isinstance(band, (list, tuple)) or len(band) != 2:
                    continue
                low, high = _number(band[0]), _number(band[1])
                if low is None or high is None:
                    continue
                merged.setdefault(str(kind), {})[users] = (min(low, high), max(low, high))
    return {kind: sorted((u, lo, hi) for u, (lo, hi) in by_users.items()) for kind, by_users in merged.items()}


def _wide(values: list[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) >= 2 and max(positive) / min(positive) > _LOG_SPAN and len(positive) == len(values)


def chart(results: list[dict[str, Any]], path: Path) -> Path:
    """Write a PNG of upstream requests/s (y) against users (x) to ``path`` and return ``path``.

    One colour per mode: a solid line with round markers for all upstream requests/s and a
    dashed one with crosses for the reads alone. The projections are drawn as error bars at
    their user counts (and a shaded band between them once there are two or more), labelled
    "projected uncached" and "projected cached". Either axis turns logarithmic when its values
    span more than a factor of 20. Results without usable numbers give a chart saying so;
    the parent directory must exist (OSError otherwise).
    """
    points = measured_points(results)
    bands = projection_bands(results)
    figure = Figure(figsize=(8, 5), dpi=100)
    axes = figure.add_subplot()
    xs: list[float] = []
    ys: list[float] = []

    for kind, series in bands.items():
        label, colour = _BANDS.get(kind, (f"projected {kind}", "tab:olive"))
        users = [u for u, _, _ in series]
        lows = [lo for _, lo, _ in series]
        highs = [hi for _, _, hi in series]
        middles = [(lo + hi) / 2 for lo, hi in zip(lows, highs, strict=True)]
        if len(series) >= 2:
            axes.fill_between(users, lows, highs, color=colour, alpha=0.2, linewidth=0)
        axes.errorbar(
            users,
            middles,
            yerr=[[m - lo for m, lo in zip(middles, lows, strict=True)],
                  [hi - m for m, hi in zip(middles, highs, strict=True)]],
            fmt="none",
            ecolor=colour,
            elinewidth=6,
            alpha=0.5,
            capsize=0,
            label=label,
        )
        xs += users
        ys += lows + highs

    modes = sorted(points, key=lambda m: (MODE_ORDER.index(m) if m in MODE_ORDER else len(MODE_ORDER), m))
    for mode in modes:
        series = points[mode]
        colour = _COLOURS.get(mode)
        users = [u for u, _, _ in series]
        totals = [t for _, t, _ in series]
        axes.plot(users, totals, marker="o", linestyle="-", color=colour, label=f"{mode}: total")
        reads = [(u, r) for u, _, r in series if r is not None]
        if reads:
            axes.plot(
                [u for u, _ in reads], [r for _, r in reads],
                marker="x", linestyle="--", color=colour, label=f"{mode}: reads",
            )
            ys += [r for _, r in reads]
        xs += users
        ys += totals

    if not xs:
        axes.text(0.5, 0.5, "no upstream measurements", ha="center", va="center", transform=axes.transAxes)
    else:
        if _wide(ys):
            axes.set_yscale("log")
        if _wide(sorted(set(xs))):
            axes.set_xscale("log")
        axes.legend(loc="best", fontsize="small")
    axes.set_xlabel("users")
    axes.set_ylabel("upstream requests/s (model time)")
    axes.set_title("exgate load test: upstream requests/s by users and mode")
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path

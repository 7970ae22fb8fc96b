"""The scale table: ``exgate loadtest`` at every preset, merged into one table and one chart.

Run: ``.venv/bin/python bench/scale_table.py [--presets 250,1k,5k,10k] [--spawn 3] [--out DIR]``
(about 12 minutes for all four presets here; not part of ``make bench``). Each preset runs as
``exgate loadtest --preset P --spawn N --out DIR/P`` (modes direct, cached and streams, each on
a fresh sandbox counter); this script then prints the Markdown scale table (users x mode:
upstream reads/s and orders/s in model time, hit rate, p99, the projected band) and writes
``DIR/scale.png``, upstream requests/s against users per mode beside the projections. Upstream
calls are the sandbox's counts; the baseline of each row is the ``direct`` run of the same
preset (the same users and arrivals with caching off), measured in the same run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import sandbox_data_args  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="250,1k,5k,10k")
    parser.add_argument("--spawn", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("loadtest-scale"))
    args = parser.parse_args()
    from exgate.loadtest.report import chart, scale_table

    results = []
    for preset in [p.strip() for p in args.presets.split(",") if p.strip()]:
        out = args.out / preset
        started = time.monotonic()
        command = [sys.executable, "-m", "exgate", "loadtest", "--preset", preset, "--spawn", str(args.spawn),
                   "--out", str(out), *sandbox_data_args("--sandbox-data")]
        subprocess.run(command, check=True)
        print(f"preset {preset}: {time.monotonic() - started:.0f} s", flush=True)
        results.append(orjson.loads((out / "report.json").read_bytes()))
    print()
    print(scale_table(results))
    for result in results:
        for run in result["runs"]:
            if run.get("status") == "ran" and run["mode"] == "cached":
                left = run.get("unabsorbed", {})
                print(f"{result['users']} users, cached: upstream reads the cache did not absorb "
                      f"{left.get('per_s', 0):.1f}/s ({', '.join(f'{k} {v:.1f}/s' for k, v in left.get('by_class', {}).items())})")
    print(f"chart: {chart(results, args.out / 'scale.png')}")


if __name__ == "__main__":
    main()

"""Draw the open-loop latencies of a bench/run.py --open-loop result as a PNG.

    .venv/bin/python bench/plot_openloop.py bench/results/<stamp>-sqlite.json bench/openloop.png

One panel per scenario: p50, p99 and p99.9 (log scale) against the offered load as a fraction
of the scenario's closed-loop maximum measured in the same run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

PERCENTILES = (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a bench/results/*.json with open_loop rows")
    parser.add_argument("png", type=Path)
    args = parser.parse_args()
    report = json.loads(args.results.read_text())
    rows = report["open_loop"]
    names = list(dict.fromkeys(row["name"] for row in rows))
    figure, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.6), sharey=True)
    for axis, name in zip(axes if len(names) > 1 else [axes], names, strict=True):
        mine = sorted((r for r in rows if r["name"] == name), key=lambda r: r["load"])
        loads = [r["load"] * 100 for r in mine]
        for key, label in PERCENTILES:
            axis.plot(loads, [r[key] for r in mine], marker="o", label=label)
        maximum = mine[0]["offered_rps"] / mine[0]["load"]
        axis.set_title(f"{name}\n(max {maximum:,.0f} req/s)", fontsize=10)
        axis.set_xlabel("offered load, % of measured maximum")
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    axes_list = axes if len(names) > 1 else [axes]
    axes_list[0].set_ylabel("latency from scheduled send, ms")
    axes_list[0].legend()
    figure.suptitle(
        f"Open-loop latency, {report['database']}, {report['data']['thoughts']:,} thoughts, "
        f"{report['settings']['workers']} workers, {report['machine']['cores']} shared cores "
        f"({report['date']})",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(args.png, dpi=100)


if __name__ == "__main__":
    main()

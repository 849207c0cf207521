"""Draw the open-loop latencies of bench/run.py --open-loop results as one PNG.

    .venv/bin/python bench/plot_openloop.py bench/openloop.png \
        bench/results/<stamp>-postgresql.json bench/results/<stamp>-sqlite.json

One row per results file (a database), one panel per scenario: p50, p99 and p99.9 (log scale)
against the offered load as a fraction of the scenario's closed-loop maximum measured in the same
run, the send lag's p99 (the generator's own share) dotted, and issue 15's p99 target at 50 %
(20 ms for the API, 50 ms for the pages) as a dashed line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

PERCENTILES = (("p50_ms", "p50", "C0"), ("p99_ms", "p99", "C3"), ("p999_ms", "p99.9", "C1"))


def draw_panel(axis: Axes, name: str, rows: list[dict[str, Any]]) -> None:
    mine = sorted((r for r in rows if r["name"] == name), key=lambda r: r["load"])
    loads = [r["load"] * 100 for r in mine]
    for key, label, colour in PERCENTILES:
        axis.plot(loads, [r[key] for r in mine], marker="o", label=label, color=colour)
    axis.plot(
        loads,
        [max(r["send_lag_p99_ms"], 0.01) for r in mine],
        linestyle=":",
        color="grey",
        label="send lag p99",
    )
    target = mine[0].get("p99_target_ms")
    if target:
        axis.axhline(target, color="C3", linestyle="--", linewidth=1, label="p99 target")
    axis.axvline(50, color="black", linewidth=0.5, alpha=0.4)
    maximum = mine[0]["offered_rps"] / mine[0]["load"]
    axis.set_title(f"{name}\n(max {maximum:,.0f} req/s)", fontsize=10)
    axis.set_yscale("log")
    axis.set_xlim(0, 100)
    axis.grid(True, which="both", alpha=0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("png", type=Path)
    parser.add_argument("results", type=Path, nargs="+", help="bench/results/*.json (open_loop)")
    args = parser.parse_args()
    reports = [json.loads(path.read_text()) for path in args.results]
    names = list(dict.fromkeys(row["name"] for report in reports for row in report["open_loop"]))
    figure, axes = plt.subplots(
        len(reports),
        len(names),
        figsize=(2.9 * len(names), 3.3 * len(reports) + 0.6),
        sharey=True,
        squeeze=False,
    )
    for line, report in zip(axes, reports, strict=True):
        rows = report["open_loop"]
        load = report["machine"]["load_average_before"][0]
        for axis, name in zip(line, names, strict=True):
            if any(r["name"] == name for r in rows):
                draw_panel(axis, name, rows)
            else:
                axis.set_visible(False)
        line[0].set_ylabel(
            f"{report['database']}, {report['data']['thoughts']:,} thoughts\n"
            f"{report['date'][:16]}Z, load avg {load:.1f}\nms from scheduled send"
        )
    for axis in axes[-1]:
        axis.set_xlabel("offered load, % of max")
    axes[0][0].legend(fontsize=8, loc="upper left")
    figure.suptitle(
        "Open-loop latency against offered load (bench/run.py --open-loop; "
        f"{reports[0]['settings']['workers']} workers per service, "
        f"{reports[0]['machine']['cores']} shared cores)",
        fontsize=11,
    )
    figure.tight_layout()
    figure.savefig(args.png, dpi=90)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Draws throughput by file size (upload, warm and cold download) from ferry-bench throughput's JSON."""
import json
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(source, target):
    report = json.load(open(source))
    series = {}
    for row in report["rows"]:
        m = re.match(r"(TLS )?(upload|download) (\d+) (KiB|MiB|GiB)(, (warm|cold) server cache)?", row["name"])
        if not m or row["unit"] != "MB/s":
            continue
        size = int(m.group(3)) * {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m.group(4)]
        key = "upload" if m.group(2) == "upload" else f"download, {m.group(6)} server cache"
        series.setdefault(key + (" (TLS)" if m.group(1) else ""), {})[size] = row["value"]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for label, points in series.items():
        sizes = sorted(points)
        ax.plot(sizes, [points[s] for s in sizes], marker="o", label=label, linestyle="--" if "TLS" in label else "-")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ticks = sorted({s for points in series.values() for s in points})
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{s >> 30} GiB" if s >= 1 << 30 else f"{s >> 20} MiB" if s >= 1 << 20 else f"{s >> 10} KiB" for s in ticks])
    ax.set_xlabel("file size")
    ax.set_ylabel("MB/s (log)")
    ax.set_title(f"Ferry over loopback, by file size ({report['mode']} run, {report['machine'].get('cores', '?')} cores)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(target)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

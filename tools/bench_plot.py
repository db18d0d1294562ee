"""The sweep plot of a benchmark report: output throughput and median TTFT against concurrency."""

from __future__ import annotations

import io
from pathlib import Path

from swarm.core.atomic import write_bytes
from tools.benchmark import BenchmarkReport


def knee_concurrency(report: BenchmarkReport) -> int | None:
    """Where the plot marks the knee: the summary's level, the last one that still added."""
    value = (report.summary.get("knee") or {}).get("concurrency")
    return int(value) if value else None


def write_sweep_png(report: BenchmarkReport, path: Path) -> Path:
    write_bytes(path, render_png(report))
    return path


def render_png(report: BenchmarkReport) -> bytes:
    """The plot as PNG bytes, the same bytes for the same report (no timestamp, no version)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    levels = [lv for lv in report.levels if lv.concurrency]
    xs = [lv.concurrency or 0 for lv in levels]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    ax.plot(
        xs, [lv.output_throughput for lv in levels], "o-", color="tab:blue", label="output tok/s"
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("concurrency (closed loop)")
    ax.set_ylabel("output tokens/s", color="tab:blue")
    ttft = ax.twinx()
    ttft.plot(xs, [lv.metrics.get("median_ttft_ms", 0.0) for lv in levels], "s--", color="tab:red",
              label="median TTFT (ms)")  # fmt: skip
    ttft.set_ylabel("median TTFT (ms)", color="tab:red")
    ttft.set_ylim(bottom=0)
    knee = knee_concurrency(report)
    if knee:
        ax.axvline(knee, color="grey", linestyle=":", label=f"knee c={knee}")
    for lv in levels:
        if not lv.valid:  # drawn, so the gap is visible, but never read as a result
            ax.annotate("invalid", (lv.concurrency, lv.output_throughput), fontsize=7, color="red")
        elif lv.client_limited:
            ax.annotate("client-limited", (lv.concurrency, lv.output_throughput), fontsize=7)
    lines, labels = ax.get_legend_handles_labels()
    more_lines, more_labels = ttft.get_legend_handles_labels()
    ax.legend(lines + more_lines, labels + more_labels, loc="upper left", fontsize=8)
    name = report.config.lab.get("model", report.config.model)
    ax.set_title(f"{name} @ {report.target['endpoint']}", fontsize=9)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    plt.close(fig)
    return out.getvalue()

"""Draws the series of a soak report (bench/soak.ts) as one PNG.

Usage: python soak-plot.py <report.json> <out.png>

Panels, over minutes since traffic started (warm-up shaded, the end of traffic marked):
RSS of each role with the least-squares line of its steady part; the V8 heap of each role (from
its /metrics: what RSS holds beyond it is native); the lag of the ingest and
scorer groups; the p99 per interval of the HTTP subscriber route and of event -> churn-risk
event; the depth of the campaign queues. Runs on the project's venv (matplotlib, Agg backend).
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROLES = ["ingest", "score", "work", "serve"]
# Legends right of the panels, so they never hide a series.
LEGEND = {"loc": "upper left", "bbox_to_anchor": (1.01, 1), "fontsize": 8, "borderaxespad": 0}
COLOURS = {"ingest": "tab:blue", "score": "tab:orange", "work": "tab:green", "serve": "tab:red", "driver": "tab:gray"}


def fit(xs, ys):
    """Least-squares line (slope, intercept) of ys over xs, or None."""
    n = len(xs)
    if n < 2:
        return None
    mx = sum(xs) / n
    my = sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    if den == 0:
        return None
    k = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den
    return k, my - k * mx


def draw_steady_fit(ax, pts, steady_from, steady_to):
    """The least-squares line of (minute, value, sample) points over the steady part, dashed black."""
    if steady_from is None or steady_to is None:
        return
    steady = [(m, y) for m, y, s in pts if s["phase"] == "traffic" and steady_from <= s["t"] <= steady_to]
    line = fit([m for m, _ in steady], [y for _, y in steady])
    if line is not None:
        k, b = line
        x0, x1 = steady_from / 60, steady_to / 60
        ax.plot([x0, x1], [k * x0 + b, k * x1 + b], color="black", linestyle=(0, (4, 2)), linewidth=0.8)


def main(report_path, png_path):
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    samples = report["samples"]
    if not samples:
        raise SystemExit("the report holds no samples")
    minutes = [s["t"] / 60 for s in samples]
    warm_up = report["warmUpSeconds"] / 60
    traffic_end = report["traffic"]["seconds"] / 60
    growth = {g["series"]: g for g in report["growth"]}

    fig, axes = plt.subplots(5, 1, figsize=(15, 16), sharex=True, constrained_layout=True)
    options = report["options"]
    fig.suptitle(
        f"Soak {report['startedAt']} ({report['mode']}): {options['rate']:,.0f} events/s, "
        f"{options['httpRate']:,.0f} HTTP req/s, {options['subscribers']:,} subscribers\n"
        f"verdict: {report['verdict'] if not report['failures'] else 'FAIL'}",
        fontsize=12,
    )
    for ax in axes:
        ax.axvspan(min(minutes[0], 0), warm_up, color="0.92", label="_warm-up")
        ax.axvline(traffic_end, color="0.4", linestyle=":", linewidth=1)
        ax.grid(True, alpha=0.3)

    # RSS per role, with the steady part's fitted line and slope in the legend.
    ax = axes[0]
    steady_from = report["steady"]["from"]
    steady_to = report["steady"]["to"]
    for role in ROLES + ["driver"]:
        pts = [(m, s["rssMb"][role], s) for m, s in zip(minutes, samples) if role in s["rssMb"]]
        if not pts:
            continue
        g = growth.get(f"RSS {role}")
        if role == "driver":
            label = "soak driver (producer, load, reader; not judged)"
        elif g is None or g["slope"] is None:
            label = role
        else:
            label = f"{role}: {g['slope']:+.2f} MB/min over the steady part ({g['verdict']})"
        ax.plot([m for m, _, _ in pts], [y for _, y, _ in pts], color=COLOURS[role],
                linewidth=1.6 if role != "driver" else 1, linestyle="-" if role != "driver" else "--", label=label)
        if g is not None:
            draw_steady_fit(ax, pts, steady_from, steady_to)
        # Ingest is judged on its RSS minus DuckDB's buffer manager (bounded by its own limit).
        outside = growth.get(f"RSS {role} - DuckDB")
        inner = [(m, s["rssMb"][role] - s["duckdbMb"][role], s) for m, _, s in pts if role in s.get("duckdbMb", {})]
        if outside is not None and inner:
            slope = "" if outside["slope"] is None else f": {outside['slope']:+.2f} MB/min over the steady part ({outside['verdict']})"
            ax.plot([m for m, _, _ in inner], [y for _, y, _ in inner], color=COLOURS[role], linewidth=1.2, linestyle=":", label=f"{role} minus DuckDB's buffers{slope}")
            draw_steady_fit(ax, inner, steady_from, steady_to)
    bounds = report["bounds"]
    ax.plot([], [], color="black", linestyle=(0, (4, 2)), linewidth=0.8, label="dashed black: least-squares fit, steady part")
    ax.set_ylabel("MB")
    ax.set_title(f"Resident memory (RSS) per role (bound: slope <= {bounds['rssSlopeMbPerMin']} MB/min or rise <= {bounds['rssMarginMb']} MB)", fontsize=10)
    ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.05)
    ax.legend(**LEGEND)

    # V8 heap: with RSS, it tells JavaScript objects from native memory (DuckDB in ingest).
    ax = axes[1]
    for role in ROLES:
        heap = [(m, s["heapMb"][role]) for m, s in zip(minutes, samples) if role in s.get("heapMb", {})]
        if heap:
            ax.plot([m for m, _ in heap], [y for _, y in heap], color=COLOURS[role], linewidth=1.2, label=role)
        duckdb = [(m, s["duckdbMb"][role]) for m, s in zip(minutes, samples) if role in s.get("duckdbMb", {})]
        if duckdb:
            ax.plot([m for m, _ in duckdb], [y for _, y in duckdb], color=COLOURS[role], linewidth=1.2, linestyle="--", label=f"{role}: DuckDB buffers")
    ax.set_ylabel("MB")
    ax.set_ylim(bottom=0)
    ax.set_title("V8 heap used per role, and DuckDB's buffer manager in ingest (dashed; from /metrics)", fontsize=10)
    ax.legend(**LEGEND)

    # Consumer lag.
    ax = axes[2]
    ax.plot(minutes, [s["lag"]["ingest"] for s in samples], color="tab:blue", label="ingest group (source events)")
    ax.plot(minutes, [s["lag"]["scorer"] for s in samples], color="tab:orange", label="scorer group (changelog records)")
    ax.set_yscale("symlog", linthresh=100)
    ax.set_ylabel("lag (messages)")
    ax.set_title("Consumer lag", fontsize=10)
    ax.legend(**LEGEND)

    # p99 latencies.
    ax = axes[3]

    def series(key, field):
        pts = [(m, s[key][field]) for m, s in zip(minutes, samples) if s[key][field] is not None]
        return zip(*pts) if pts else ([], [])

    xs, ys = series("http", "p99")
    ax.plot(list(xs), list(ys), color="tab:purple", marker=".", label="HTTP subscriber route, p99 (ms from scheduled moment)")
    xs, ys = series("e2e", "p99")
    ax.plot(list(xs), list(ys), color="tab:brown", marker=".", label="event -> churn-risk event received, p99 (ms)")
    xs, ys = series("e2e", "p50")
    ax.plot(list(xs), list(ys), color="tab:brown", linestyle="--", linewidth=1, label="event -> churn-risk event received, p50 (ms)")
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency per sample interval", fontsize=10)
    ax.legend(**LEGEND)

    # Campaign queues.
    ax = axes[4]
    for channel, colour in (("crm", "tab:red"), ("sms", "tab:cyan")):
        depth = [s["queues"][channel]["waiting"] + s["queues"][channel]["active"] + s["queues"][channel]["delayed"] for s in samples]
        done = [s["queues"][channel]["completed"] for s in samples]
        ax.plot(minutes, depth, color=colour, label=f"{channel}: waiting + active + delayed")
        ax.plot(minutes, done, color=colour, linestyle=":", label=f"{channel}: completed (kept for the cooldown)")
    ax.set_ylabel("jobs")
    ax.set_xlabel("minutes since traffic started (shaded: warm-up, dotted line: traffic ends)")
    ax.set_title("Campaign queues", fontsize=10)
    ax.legend(**LEGEND)

    fig.savefig(png_path, dpi=100)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: soak-plot.py <report.json> <out.png>")
    main(sys.argv[1], sys.argv[2])

#!/usr/bin/env python3
"""Draws SVG plots from `cephlock bench <workload> --json` output (python3 standard library only).

Regenerate the committed plots (release build, short runs; on the 2-core reference box the
whole thing takes about a minute):

    cargo build --release -p cephlock
    for w in journal rbd-pingpong rbd-snap-forward mds-create mds-stat mds-rename-cross; do
        target/release/cephlock bench $w --json --duration 1 > docs/plots/$w.json
    done
    scripts/plot-bench.py docs/plots/*.json                 # writes docs/plots/<workload>.svg

The JSON files are committed next to the plots, so a plot can be redrawn (after changing this
script) without measuring again. Check a result with `rsvg-convert docs/plots/journal.svg -o
/tmp/journal.png` (Debian: librsvg2-bin) or any browser.

(`bench journal` writes to a scratch directory under --dir, the current directory by default:
point it at the disk you care about. New workloads need no change here; see below.)

Usage: plot-bench.py [--out DIR] FILE.json...   (default DIR: docs/plots next to this script)

Each input file is one JSON document with a "workload" key; the plot goes to
DIR/<workload>.svg, one SVG with two panels:

1. Throughput: a horizontal bar for every number whose key ends in `_per_s` or `_iops`
   (events_per_s, handovers_per_s, write_iops, ...), one bar per row of the results. Numbers
   found under a key containing "baseline" are drawn grey, the others blue; a sibling number
   whose key starts with `vs_` (vs_baseline, vs_notify_round_trip) is printed after the bar as
   a ratio.
2. Latency percentiles: one row per latency summary, i.e. every object holding at least two of
   p50 / p90 / p99 / p999 / max (keys may carry a `baseline_` prefix, which makes a separate
   baseline row), drawn on a logarithmic microsecond axis: a line from the smallest to the
   largest percentile with a marker for each. Baseline rows are grey.

Rows are labelled by their path in the document, with array elements named by their
identifying fields (clients=4, event_bytes=512, any string field such as mode=shared) rather
than by index. The latency unit is the benchmarks' convention: microseconds.
"""

import json
import math
import os
import sys
from xml.sax.saxutils import escape

PERCENTILES = ["p50", "p90", "p99", "p999", "max"]
MARKERS = {"p50": "circle", "p90": "diamond", "p99": "square", "p999": "triangle", "max": "cross"}
# Integer fields that say which configuration an array element is (not what was measured).
ID_INT_KEYS = ["clients", "event_bytes", "block_size", "size", "bytes", "window", "threads",
               "ranks", "dirs", "readers", "writers", "files", "depth"]
# String fields that describe the run rather than a configuration.
NOT_ID_STR_KEYS = {"workload", "backend", "path", "fs", "kind", "error", "note"}

BLUE = "#3b6fb6"
GREY = "#9a9a9a"
FONT = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def element_label(obj, index):
    """How an array element is named in labels: its identifying fields, else its index."""
    parts = []
    if isinstance(obj, dict):
        for k in ID_INT_KEYS:
            if is_number(obj.get(k)):
                parts.append(f"{k}={obj[k]:g}" if isinstance(obj[k], float) else f"{k}={obj[k]}")
        for k, v in obj.items():
            if isinstance(v, str) and k not in NOT_ID_STR_KEYS:
                parts.append(f"{k}={v}")
    return "[" + ", ".join(parts) + "]" if parts else f"[{index}]"


def walk(node, path, baseline, out_tp, out_lat):
    """Collects throughput numbers and latency summaries with their labels."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            walk(item, path + element_label(item, i), baseline, out_tp, out_lat)
        return
    if not isinstance(node, dict):
        return
    # Latency summaries: group percentile keys by an optional "baseline_" prefix.
    groups = {}
    for k, v in node.items():
        if not is_number(v):
            continue
        prefix, name = ("baseline_", k[9:]) if k.startswith("baseline_") else ("", k)
        if name in PERCENTILES:
            groups.setdefault(prefix, {})[name] = float(v)
    for prefix, pcts in groups.items():
        if len(pcts) >= 2:
            label = path + (" (baseline)" if prefix else "")
            out_lat.append((label.strip(".") or "latency", baseline or bool(prefix), pcts))
    ratios = {k: v for k, v in node.items() if k.startswith("vs_") and is_number(v)}
    for k, v in node.items():
        # "results" is the usual name of the array of configurations; it adds nothing to a label.
        child = f"{path}.{k}" if path else ("" if k == "results" and isinstance(v, list) else k)
        is_base = baseline or "baseline" in k
        if is_number(v) and (k.endswith("_per_s") or k.endswith("_iops")):
            ratio = next(iter(ratios.items()), None)
            out_tp.append((child, is_base, float(v), None if is_base else ratio))
        elif isinstance(v, (dict, list)):
            walk(v, child, is_base, out_tp, out_lat)


def fmt_num(v):
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def fmt_us(v):
    if v >= 1e6:
        return f"{v / 1e6:g} s"
    if v >= 1e3:
        return f"{v / 1e3:g} ms"
    return f"{v:g} µs"


def text(x, y, s, size=12, anchor="start", weight="normal", fill="#222"):
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{fill}" {FONT}>{escape(s)}</text>')


def marker(kind, x, y, color):
    r = 4.5
    if kind == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{color}"/>'
    if kind == "square":
        return f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r}" height="{2 * r}" fill="{color}"/>'
    if kind == "diamond":
        return (f'<polygon points="{x:.1f},{y - r - 1:.1f} {x + r + 1:.1f},{y:.1f} '
                f'{x:.1f},{y + r + 1:.1f} {x - r - 1:.1f},{y:.1f}" fill="{color}"/>')
    if kind == "triangle":
        return (f'<polygon points="{x:.1f},{y - r - 1:.1f} {x + r + 1:.1f},{y + r:.1f} '
                f'{x - r - 1:.1f},{y + r:.1f}" fill="{color}"/>')
    return (f'<path d="M{x - r:.1f},{y - r:.1f} L{x + r:.1f},{y + r:.1f} M{x - r:.1f},{y + r:.1f} '
            f'L{x + r:.1f},{y - r:.1f}" stroke="{color}" stroke-width="2"/>')


def label_width(labels):
    longest = max((len(s) for s in labels), default=10)
    return min(460, max(160, 7 * longest + 16))


WIDTH = 1000
ROW = 24


def throughput_panel(rows, top):
    """Horizontal bars; returns (svg parts, height)."""
    parts = [text(20, top + 20, "Throughput (operations per second; grey: baseline)", 15, weight="bold")]
    if not rows:
        parts.append(text(20, top + 46, "No throughput figures in this report (the baselines "
                          "of this workload are latencies: see below).", 12, fill="#555"))
        return parts, 64
    def note(value, ratio):
        return fmt_num(value) + (f"  ({ratio[0]} {ratio[1]:.2f}×)" if ratio else "")

    lw = label_width(r[0] for r in rows)
    reserve = 16 + 6.5 * max(len(note(r[2], r[3])) for r in rows)
    x0, x1 = 20 + lw, WIDTH - reserve
    vmax = max(r[2] for r in rows) or 1.0
    y = top + 40
    for label, base, value, ratio in rows:
        w = max(1.0, (x1 - x0) * value / vmax)
        parts.append(text(x0 - 8, y + 15, label, 12, "end"))
        parts.append(f'<rect x="{x0}" y="{y + 3}" width="{w:.1f}" height="{ROW - 7}" '
                     f'fill="{GREY if base else BLUE}"/>')
        parts.append(text(x0 + w + 6, y + 15, note(value, ratio), 11, fill="#333"))
        y += ROW
    parts.append(f'<line x1="{x0}" y1="{top + 36}" x2="{x0}" y2="{y + 2}" stroke="#444"/>')
    if not any(r[1] for r in rows):
        parts.append(text(x0, y + 16, "No throughput baseline in this report: its baselines are "
                          "latencies (grey rows below).", 11, fill="#555"))
        y += 20
    return parts, y - top + 16


def latency_panel(rows, top):
    parts = [text(20, top + 20, "Latency percentiles (µs, log scale; grey: baseline)", 15, weight="bold")]
    if not rows:
        parts.append(text(20, top + 46, "No latency summaries in this report.", 12, fill="#555"))
        return parts, 64
    present = [p for p in PERCENTILES if any(p in r[2] for r in rows)]
    lx = 20
    for p in present:  # legend
        parts.append(marker(MARKERS[p], lx + 6, top + 40, "#444"))
        parts.append(text(lx + 16, top + 44, p, 12))
        lx += 70
    lw = label_width(r[0] for r in rows)
    x0, x1 = 20 + lw, WIDTH - 40
    values = [v for r in rows for v in r[2].values() if v > 0]
    lo = 10 ** math.floor(math.log10(min(values))) if values else 1.0
    hi = 10 ** math.ceil(math.log10(max(values))) if values else 10.0
    if hi <= lo:
        hi = lo * 10

    def xpos(v):
        v = max(v, lo)
        return x0 + (x1 - x0) * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    y_top = top + 58
    y_end = y_top + ROW * len(rows)
    decade = lo
    while decade <= hi * 1.0001:  # grid and axis labels
        x = xpos(decade)
        parts.append(f'<line x1="{x:.1f}" y1="{y_top}" x2="{x:.1f}" y2="{y_end}" stroke="#ddd"/>')
        parts.append(text(x, y_end + 16, fmt_us(decade), 11, "middle", fill="#444"))
        decade *= 10
    y = y_top
    for i, (label, base, pcts) in enumerate(rows):
        color = GREY if base else BLUE
        cy = y + ROW / 2
        if i % 2 == 0:
            parts.append(f'<rect x="{x0}" y="{y}" width="{x1 - x0}" height="{ROW}" fill="#f5f5f5" '
                         f'fill-opacity="0.6"/>')
        parts.append(text(x0 - 8, cy + 4, label, 12, "end"))
        xs = [xpos(v) for v in pcts.values()]
        parts.append(f'<line x1="{min(xs):.1f}" y1="{cy:.1f}" x2="{max(xs):.1f}" y2="{cy:.1f}" '
                     f'stroke="{color}" stroke-width="2"/>')
        for p in reversed(present):  # p50 last, on top where markers overlap
            if p in pcts:
                parts.append(marker(MARKERS[p], xpos(pcts[p]), cy, color))
        tip = ", ".join(f"{p} {fmt_us(pcts[p])}" for p in present if p in pcts)
        parts.append(f'<title>{escape(label + ": " + tip)}</title>')
        y += ROW
    parts.append(f'<line x1="{x0}" y1="{y_end}" x2="{x1}" y2="{y_end}" stroke="#444"/>')
    return parts, y_end - top + 30


def subtitle(doc):
    bits = []
    for k in ("backend", "duration_s", "phase_seconds", "threads", "window", "block_size"):
        if k in doc and not isinstance(doc[k], (dict, list)):
            bits.append(f"{k} {doc[k]}")
    dev = doc.get("device")
    if isinstance(dev, dict):
        bits.append("device " + " ".join(str(dev[k]) for k in ("kind", "fs") if k in dev))
    return ", ".join(bits)


def render(doc):
    workload = str(doc.get("workload", "bench"))
    tp, lat = [], []
    walk({k: v for k, v in doc.items() if k != "workload"}, "", False, tp, lat)
    parts = [text(20, 28, f"cephlock bench {workload}", 18, weight="bold"),
             text(20, 48, subtitle(doc), 12, fill="#555")]
    p1, h1 = throughput_panel(tp, 60)
    p2, h2 = latency_panel(lat, 60 + h1 + 10)
    height = int(60 + h1 + 10 + h2 + 10)
    body = "\n".join(parts + p1 + p2)
    return workload, (f'<?xml version="1.0" encoding="UTF-8"?>\n'
                      f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
                      f'viewBox="0 0 {WIDTH} {height}">\n'
                      f'<rect width="{WIDTH}" height="{height}" fill="white"/>\n{body}\n</svg>\n')


def main(argv):
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "plots")
    files = []
    args = iter(argv)
    for a in args:
        if a == "--out":
            out_dir = next(args, None)
            if out_dir is None:
                sys.exit("plot-bench: --out needs a directory")
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            files.append(a)
    if not files:
        sys.exit("usage: plot-bench.py [--out DIR] FILE.json...  (see --help)")
    os.makedirs(out_dir, exist_ok=True)
    for f in files:
        try:
            with open(f, encoding="utf-8") as fh:
                doc = json.load(fh)
        except (OSError, ValueError) as e:
            sys.exit(f"plot-bench: {f}: {e}")
        if not isinstance(doc, dict):
            sys.exit(f"plot-bench: {f}: not a JSON object")
        workload, svg = render(doc)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in workload)
        path = os.path.join(out_dir, safe + ".svg")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(svg)
        print(f"plot-bench: {f} -> {os.path.normpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Renders a spindle execution trace (Chrome Trace Event JSON, from spindle::trace::stop) as an
SVG timeline: one lane per worker, a box per fiber run coloured by fiber, flow arrows from each
wake to the run it caused, and ticks for timer firings. For the README and for a quick look
without a browser; ui.perfetto.dev or chrome://tracing open the same file interactively.

    scripts/trace_to_svg.py trace.json trace.svg [--from US] [--to US] [--width PX]

Only the standard library is used.
"""
import argparse
import colorsys
import html
import json
import sys


def fiber_colour(fiber_id):
    # Golden-ratio hue steps: neighbouring ids get well-separated colours.
    h = (fiber_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hls_to_rgb(h, 0.62, 0.55)
    return "#%02x%02x%02x" % (int(r * 255), int(g * 255), int(b * 255))


def nice_step(span, target_ticks=8):
    raw = span / target_ticks
    mag = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 1
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def fmt_us(us):
    if us >= 1000:
        return "%g ms" % round(us / 1000, 3)
    return "%g µs" % round(us, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("svg")
    ap.add_argument("--from", dest="t0", type=float, default=None, help="window start (µs)")
    ap.add_argument("--to", dest="t1", type=float, default=None, help="window end (µs)")
    ap.add_argument("--width", type=int, default=1200)
    args = ap.parse_args()

    with open(args.trace) as f:
        doc = json.load(f)
    events = doc["traceEvents"]
    lanes = {}  # tid -> name
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            lanes[e["tid"]] = e["args"]["name"]
    slices = [e for e in events if e.get("ph") == "X"]
    if not slices:
        sys.exit("trace_to_svg: no slices in %s" % args.trace)
    t0 = args.t0 if args.t0 is not None else min(e["ts"] for e in slices)
    t1 = args.t1 if args.t1 is not None else max(e["ts"] + e.get("dur", 0) for e in slices)
    if t1 <= t0:
        t1 = t0 + 1
    worker_tids = sorted(t for t, n in lanes.items() if n.startswith("worker"))
    other_tids = sorted(t for t in lanes if t not in worker_tids)
    order = worker_tids + [t for t in other_tids if any(e.get("tid") == t for e in events if e.get("ph") != "M")]

    left, right, top, lane_h, gap = 110, 20, 40, 34, 10
    plot_w = args.width - left - right
    lane_y = {tid: top + i * (lane_h + gap) for i, tid in enumerate(order)}
    legend_y = top + len(order) * (lane_h + gap) + 56

    def x(ts):
        return left + (ts - t0) / (t1 - t0) * plot_w

    def visible(ts, dur=0.0):
        return ts + dur >= t0 and ts <= t1

    names = {}
    for e in slices:
        if e.get("cat") == "fiber":
            names[e["args"]["fiber"]] = e["name"]
    fibers = sorted(names)
    legend_rows = (len(fibers) + 5) // 6
    height = legend_y + legend_rows * 20 + 20

    out = []
    out.append('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
               'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">' % (args.width, height))
    out.append('<defs><marker id="arrow" markerWidth="6" markerHeight="6" refX="5" refY="3" '
               'orient="auto"><path d="M0,0 L6,3 L0,6 z" fill="#444"/></marker></defs>')
    out.append('<rect width="100%" height="100%" fill="white"/>')
    out.append('<text x="%d" y="20" font-size="13" font-weight="bold">spindle execution trace: %s – %s</text>'
               % (left, fmt_us(t0), fmt_us(t1)))
    # Time axis.
    step = nice_step(t1 - t0)
    tick = (int(t0 / step) + 1) * step if t0 % step else t0
    axis_y = top + len(order) * (lane_h + gap)
    while tick <= t1:
        tx = x(tick)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>' % (tx, top - 4, tx, axis_y))
        out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>'
                   % (tx, axis_y + 14, fmt_us(tick - t0)))
        tick += step
    # Lanes.
    for tid in order:
        y = lane_y[tid]
        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="#f6f6f6"/>' % (left, y, plot_w, lane_h))
        out.append('<text x="%d" y="%d" text-anchor="end">%s</text>'
                   % (left - 8, y + lane_h / 2 + 4, html.escape(lanes[tid])))
    # Runs and timer firings.
    where = {}  # (tid, ts) of slice starts, for flow ends
    for e in slices:
        tid = e.get("tid")
        if tid not in lane_y or not visible(e["ts"], e.get("dur", 0)):
            continue
        y = lane_y[tid]
        xs = max(x(e["ts"]), left)
        xe = min(x(e["ts"] + e.get("dur", 0)), left + plot_w)
        w = max(xe - xs, 0.8)
        if e.get("cat") == "fiber":
            a = e["args"]
            tip = "%s: %s%s" % (e["name"], a.get("end", ""), (" (%s)" % a["reason"]) if "reason" in a else "")
            out.append('<rect x="%.2f" y="%d" width="%.2f" height="%d" fill="%s" stroke="#333" '
                       'stroke-width="0.3"><title>%s</title></rect>'
                       % (xs, y + 3, w, lane_h - 6, fiber_colour(a["fiber"]), html.escape(tip)))
            if w > 7 * len(e["name"]):
                out.append('<text x="%.1f" y="%d" fill="#111">%s</text>'
                           % (xs + 3, y + lane_h / 2 + 4, html.escape(e["name"])))
        else:  # the scheduler's own work: timers
            out.append('<rect x="%.2f" y="%d" width="%.2f" height="6" fill="#888"><title>%s</title></rect>'
                       % (xs, y + lane_h - 6, w, html.escape(e["name"])))
    # Wake/spawn flows: arrows from the waker's lane to the woken fiber's next run.
    starts = {e["id"]: e for e in events if e.get("ph") == "s"}
    for e in events:
        if e.get("ph") != "f" or e["id"] not in starts:
            continue
        s = starts[e["id"]]
        if s["tid"] not in lane_y or e["tid"] not in lane_y or not visible(s["ts"]) or not visible(e["ts"]):
            continue
        x1, y1 = x(s["ts"]), lane_y[s["tid"]] + lane_h / 2
        x2, y2 = x(e["ts"]), lane_y[e["tid"]] + lane_h / 2
        out.append('<path d="M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="none" stroke="#444" '
                   'stroke-width="0.7" stroke-opacity="0.7" marker-end="url(#arrow)"/>'
                   % (x1, y1, x1 + 6, y1, x2 - 6, y2, x2, y2))
    # Legend: fiber colours.
    for i, fid in enumerate(fibers):
        lx = left + (i % 6) * (plot_w / 6)
        ly = legend_y + (i // 6) * 20
        out.append('<rect x="%.1f" y="%d" width="12" height="12" fill="%s" stroke="#333" stroke-width="0.3"/>'
                   % (lx, ly - 10, fiber_colour(fid)))
        out.append('<text x="%.1f" y="%d">%s</text>' % (lx + 16, ly, html.escape(names[fid])))
    out.append('<text x="%d" y="%d" fill="#555">arrows: spawn/wake → the run it caused; grey bars: timers fired</text>'
               % (left, legend_y - 22))
    out.append("</svg>")
    with open(args.svg, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Helpers for bench/compare-etcd.sh (Python 3 standard library only).

    compare_report.py health URL [URL...] [--timeout SECS]
        waits until every etcd member answers GET URL/health with {"health":"true"};
        exits 1 if they do not within the timeout (default 60 s).

    compare_report.py fsyncs URL [URL...]
        prints, for each etcd member, how many WAL fsyncs it has done and their total
        time (etcd_disk_wal_fsync_duration_seconds from URL/metrics): evidence that
        fsync is on.

    compare_report.py check-json SYSTEM
        reads one tool's stdout on standard input, finds the one JSON object of the
        result schema in it, and prints it as one compact line; exits 1 if there is none
        (or if its "system" is not SYSTEM).

    compare_report.py report RESULTS_DIR --sizes "256 1024" --clients "1 16 256"
        reads RESULTS_DIR/raw.jsonl (one result object a line, as the tools printed them)
        and RESULTS_DIR/rows.tsv (system, clients, value_size, status), prints the side
        by side table with the ratios and the floors, and writes it to
        RESULTS_DIR/table.md and RESULTS_DIR/summary.json. Exits 0; with --strict, exits
        1 when any floor is NOT MET or could not be checked.

The result schema (both sides):

    {"system": "etcd"|"bboard", "clients": N, "value_size": B,
     "duration_s": float, "completed": int, "throughput_per_s": float,
     "latency_ms": {"p50": f, "p90": f, "p99": f, "p999": f, "max": f},
     "errors": {"<kind>": count}}
"""

import argparse
import json
import pathlib
import sys
import time
import urllib.request

REQUIRED = ("system", "clients", "value_size", "duration_s", "completed", "throughput_per_s", "latency_ms", "errors")
LATENCIES = ("p50", "p90", "p99", "p999", "max")

# The floors of issue #19, point 2, by client count. Each is (label, test(ratios) -> bool).
# ratios: thr = bboard appends/s / etcd puts/s; p50 and p99 = bboard latency / etcd latency.
FLOORS = {
    1: [("p50 <= 4x etcd", lambda r: r["p50"] is not None and r["p50"] <= 4.0)],
    16: [("throughput >= 0.5x etcd", lambda r: r["thr"] is not None and r["thr"] >= 0.5)],
    256: [
        ("throughput >= 0.8x etcd", lambda r: r["thr"] is not None and r["thr"] >= 0.8),
        ("p99 <= 2x etcd", lambda r: r["p99"] is not None and r["p99"] <= 2.0),
    ],
}


def health(urls, timeout):
    deadline = time.monotonic() + timeout
    pending = list(urls)
    last = {}
    while pending and time.monotonic() < deadline:
        for url in list(pending):
            try:
                with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=2) as resp:
                    body = json.loads(resp.read().decode())
                if str(body.get("health")).lower() == "true":
                    pending.remove(url)
                else:
                    last[url] = body
            except Exception as e:  # not up yet
                last[url] = repr(e)
        if pending:
            time.sleep(0.5)
    if pending:
        for url in pending:
            print(f"etcd member {url} not healthy after {timeout} s: {last.get(url)}", file=sys.stderr)
        return 1
    return 0


def fsyncs(urls):
    for url in urls:
        count = total = None
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=5) as resp:
                for line in resp.read().decode().splitlines():
                    if line.startswith("etcd_disk_wal_fsync_duration_seconds_count"):
                        count = int(float(line.split()[-1]))
                    elif line.startswith("etcd_disk_wal_fsync_duration_seconds_sum"):
                        total = float(line.split()[-1])
        except Exception as e:
            print(f"{url}: metrics not readable: {e!r}")
            continue
        if count is None:
            print(f"{url}: no etcd_disk_wal_fsync_duration_seconds in its metrics")
        else:
            mean = f", mean {1000 * total / count:.2f} ms" if count and total is not None else ""
            print(f"{url}: {count} WAL fsyncs{mean}")
    return 0


def valid(obj, system=None):
    if not isinstance(obj, dict) or any(k not in obj for k in REQUIRED):
        return False
    if system is not None and obj["system"] != system:
        return False
    return isinstance(obj["latency_ms"], dict) and isinstance(obj["errors"], dict)


def check_json(system):
    text = sys.stdin.read()
    found = None
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if valid(obj, system):
            found = obj
    if found is None:
        # Perhaps one pretty-printed object.
        try:
            obj = json.loads(text)
            if valid(obj, system):
                found = obj
        except ValueError:
            pass
    if found is None:
        print(f"no {system} result object in the output", file=sys.stderr)
        return 1
    print(json.dumps(found, separators=(",", ":")))
    return 0


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(x, digits=2):
    if x is None:
        return "-"
    if isinstance(x, float) and abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def errors_text(obj):
    errs = obj.get("errors") or {}
    return ", ".join(f"{k}: {v}" for k, v in sorted(errs.items())) if errs else ""


def report(results_dir, sizes, clients, strict):
    results_dir = pathlib.Path(results_dir)
    results = {}
    raw = results_dir / "raw.jsonl"
    if raw.exists():
        for line in raw.read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            obj = json.loads(line)
            if valid(obj):
                results[(obj["system"], int(obj["clients"]), int(obj["value_size"]))] = obj
    status = {}
    rows_tsv = results_dir / "rows.tsv"
    if rows_tsv.exists():
        for line in rows_tsv.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 4 and parts[0] != "system":
                status[(parts[0], int(parts[1]), int(parts[2]))] = parts[3]

    header = [
        "size B", "clients",
        "etcd puts/s", "etcd p50 ms", "etcd p99 ms",
        "bboard appends/s", "bboard p50 ms", "bboard p99 ms",
        "thr ratio", "p50 ratio", "p99 ratio",
        "floor", "verdict",
    ]
    rows = []
    notes = []
    summary = []
    all_met = True
    for size in sizes:
        for n in clients:
            e = results.get(("etcd", n, size))
            b = results.get(("bboard", n, size))
            # A side that completed nothing has no latencies (they read 0): no ratio from it.
            e_ok = e is not None and int(e.get("completed") or 0) > 0
            b_ok = b is not None and int(b.get("completed") or 0) > 0
            el = e["latency_ms"] if e_ok else {}
            bl = b["latency_ms"] if b_ok else {}
            r = {
                "thr": ratio((b or {}).get("throughput_per_s"), e["throughput_per_s"] if e_ok else None),
                "p50": ratio(bl.get("p50"), el.get("p50")),
                "p99": ratio(bl.get("p99"), el.get("p99")),
            }
            floors = FLOORS.get(n, [])
            if not floors:
                floor_text, verdict = "-", "-"
            elif e is None or b is None:
                floor_text = "; ".join(label for label, _ in floors)
                missing = []
                if e is None:
                    missing.append("etcd: " + status.get(("etcd", n, size), "no result"))
                if b is None:
                    missing.append("bboard: " + status.get(("bboard", n, size), "no result"))
                verdict = "NOT CHECKED (" + "; ".join(missing) + ")"
                all_met = False
            else:
                floor_text = "; ".join(label for label, _ in floors)
                met = all(test(r) for _, test in floors)
                verdict = "MET" if met else "NOT MET"
                all_met = all_met and met
            e_cells = (
                [fmt(e["throughput_per_s"], 1), fmt(el.get("p50")), fmt(el.get("p99"))]
                if e
                else [status.get(("etcd", n, size), "no result"), "", ""]
            )
            b_cells = (
                [fmt(b["throughput_per_s"], 1), fmt(bl.get("p50")), fmt(bl.get("p99"))]
                if b
                else [status.get(("bboard", n, size), "no result"), "", ""]
            )
            rows.append(
                [str(size), str(n)] + e_cells + b_cells
                + [fmt(r["thr"]), fmt(r["p50"]), fmt(r["p99"]), floor_text, verdict]
            )
            for side, obj in (("etcd", e), ("bboard", b)):
                if obj and obj.get("errors"):
                    notes.append(f"{side}, {n} clients, {size} B: errors {errors_text(obj)}")
            summary.append({
                "value_size": size, "clients": n, "etcd": e, "bboard": b,
                "ratios": {"throughput": r["thr"], "p50": r["p50"], "p99": r["p99"]},
                "floor": floor_text, "verdict": verdict,
            })

    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    table = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    table += [line(row) for row in rows]
    text = "\n".join(table) + "\n"
    text += (
        "\nthr ratio = bboard appends/s / etcd puts/s (higher is better for bboard); "
        "p50 and p99 ratio = bboard latency / etcd latency (lower is better for bboard).\n"
    )
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    print(text, end="")
    (results_dir / "table.md").write_text(text)
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if (all_met or not strict) else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("health")
    h.add_argument("urls", nargs="+")
    h.add_argument("--timeout", type=float, default=60.0)
    f = sub.add_parser("fsyncs")
    f.add_argument("urls", nargs="+")
    c = sub.add_parser("check-json")
    c.add_argument("system")
    r = sub.add_parser("report")
    r.add_argument("results_dir")
    r.add_argument("--sizes", required=True)
    r.add_argument("--clients", required=True)
    r.add_argument("--strict", action="store_true")
    args = parser.parse_args()
    if args.cmd == "health":
        return health(args.urls, args.timeout)
    if args.cmd == "fsyncs":
        return fsyncs(args.urls)
    if args.cmd == "check-json":
        return check_json(args.system)
    sizes = [int(s) for s in args.sizes.split()]
    clients = [int(s) for s in args.clients.split()]
    return report(args.results_dir, sizes, clients, args.strict)


if __name__ == "__main__":
    sys.exit(main())

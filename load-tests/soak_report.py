#!/usr/bin/env python3
"""The checks and the report of `make soak` (scripts/soak.sh).

  check   after the faults: waits until every consumer group's committed offsets reach the end of its topic
          (lag 0) and the query replicas answer the same totals for the tenant; writes --out, exits 1 if
          either does not happen within --timeout.
  report  reads the run folder (loadgen's results/soak.json, faults.tsv, rss.tsv, results/audit.json from
          `kiln blocks audit`, results/drain.json) and writes report/report.md with three plots (profiles
          acknowledged per second, consumer lag, RSS per process, each with the faults marked); exits 1 when
          the audit is not exact, the replicas differ, lag stayed, or a Kiln process's peak RSS (VmHWM) went
          above --rss-limit-mb (moto, Tansu and the Go demos are plotted, not bounded: moto holds every
          object in memory).
"""
import argparse
import collections
import concurrent.futures
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import verify_totals  # noqa: E402  (the same totals per profile type, from kiln-query)


def group_lag(brokers, group, topic):
    """Records behind the end, and the partitions whose committed offset is past the end (a broker that lost
    the tail of its log in a restart hands those offsets out again: records the group will skip)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
    try:
        meta = c.list_topics(topic, timeout=10).topics[topic]
        if meta.error or not meta.partitions:
            raise RuntimeError(f"{topic}: no partitions ({meta.error})")
        lag, beyond, parts = 0, [], {}
        for tp in c.committed([TopicPartition(topic, p) for p in meta.partitions], timeout=10):
            if tp.error:
                raise RuntimeError(f"{group} {topic}/{tp.partition}: {tp.error}")
            _, high = c.get_watermark_offsets(tp, timeout=10)
            if tp.offset > high:
                beyond.append(f"{topic}/{tp.partition}: committed {tp.offset}, end {high}")
            lag += max(0, high - max(tp.offset, 0))
            parts[f"{topic}/{tp.partition}"] = {"committed": tp.offset, "end": high}
        return lag, beyond, parts
    finally:
        c.close()


def timed_totals(query, start_ms, end_ms):
    started = time.time()
    totals = verify_totals.stored(query, start_ms, end_ms)[1]
    return totals, round(time.time() - started, 1)


def check(args):
    groups = [g.split("=", 1) for g in args.groups.split(",")]
    queries = args.queries.split(",")
    verify_totals.TENANT = args.tenant
    started, deadline = time.time(), time.time() + args.timeout
    lag, beyond, partitions, lag_zero_after, totals, answer_seconds, error = {}, [], {}, None, [], [], None
    while time.time() < deadline:
        try:
            measured = {g: group_lag(args.brokers, g, t) for g, t in groups}
            lag = {g: m[0] for g, m in measured.items()}
            beyond = [b for m in measured.values() for b in m[1]]
            partitions = {g: m[2] for g, m in measured.items()}
            if lag_zero_after is None and all(v == 0 for v in lag.values()):
                lag_zero_after = round(time.time() - started, 1)
            if lag_zero_after is not None:
                now_ms = int(time.time() * 1000)
                # Both replicas at once: each reads every block of the run cold (nothing is compacted yet).
                with concurrent.futures.ThreadPoolExecutor(len(queries)) as pool:
                    answers = list(pool.map(lambda q: timed_totals(q, now_ms - 86_400_000, now_ms + 3_600_000), queries))
                totals = [a[0] for a in answers]
                answer_seconds = [a[1] for a in answers]
                if all(t == totals[0] for t in totals) and totals[0]:
                    break
            error = None
        except Exception as e:  # a replica or the broker may still be settling; retry until the deadline
            error = str(e)
        time.sleep(2)
    equal = bool(totals) and all(t == totals[0] for t in totals) and bool(totals[0])
    out = {"lag": lag, "lag_zero_after_seconds": lag_zero_after, "committed_beyond_end": beyond, "partitions": partitions,
           "query_totals": dict(zip(queries, totals)), "query_seconds": dict(zip(queries, answer_seconds)),
           "queries_equal": equal, "error": error}
    pathlib.Path(args.out).write_text(json.dumps(out, indent=1, sort_keys=True))
    print(f"soak check: lag {lag} (0 after {lag_zero_after} s); query replicas {'agree' if equal else 'DIFFER'}"
          + (f" (answered in {', '.join(f'{t:g}' for t in answer_seconds)} s)" if answer_seconds else "")
          + (f"; committed past the end: {beyond}" if beyond else "")
          + (f" (last error: {error})" if error else ""))
    return 0 if lag_zero_after is not None and equal else 1


def read_tsv(path):
    p = pathlib.Path(path)
    return [line.split("\t") for line in p.read_text().splitlines() if line] if p.exists() else []


def mark_faults(ax, faults, t0):
    colors = {"kill": "tab:red", "pause": "tab:purple", "broker": "black", "s3-503": "tab:orange", "s3-slow": "tab:brown",
              "disk-full": "tab:green"}
    seen = set()
    for t, kind, target in faults:
        ax.axvline(float(t) - t0, color=colors.get(kind, "grey"), lw=0.7, alpha=0.6,
                   label=None if kind in seen else kind)
        seen.add(kind)


def finish(fig, ax, faults, t0, ylabel, title, path, legend="upper right"):
    """Marks the faults, labels the axes and writes the plot."""
    mark_faults(ax, faults, t0)
    ax.set_xlabel("seconds")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc=legend, fontsize=7, ncol=5)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = pathlib.Path(args.run)
    out = run / "report"
    out.mkdir(parents=True, exist_ok=True)
    load = json.loads((run / "results" / "soak.json").read_text())
    audit = json.loads((run / "results" / "audit.json").read_text()) if (run / "results" / "audit.json").exists() else None
    drain = json.loads((run / "results" / "drain.json").read_text()) if (run / "results" / "drain.json").exists() else {}
    faults = read_tsv(run / "faults.tsv")
    gaps_file = run / "results" / "offset-gaps.txt"
    gaps = int(gaps_file.read_text().strip() or 0) if gaps_file.exists() else 0
    rss = read_tsv(run / "rss.tsv")
    t0 = load["started_at_unix"]

    fig, ax = plt.subplots(figsize=(12, 4))
    ax.plot([r["t"] + 0.5 for r in load["seconds"]], [r["sent"] for r in load["seconds"]], lw=1, color="tab:blue", label="acknowledged")
    ax.plot([r["t"] + 0.5 for r in load["seconds"]], [sum(r["errors"].values()) for r in load["seconds"]], lw=1, color="tab:red",
            label="refused or failed")
    finish(fig, ax, faults, t0, "pushes / s", "Pushes per second, faults marked", out / "throughput.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(12, 4))
    for g in sorted({l["group"] for s in load["samples"] for l in s["lag"]}):
        pts = [(s["t"], l["records"]) for s in load["samples"] for l in s["lag"] if l["group"] == g]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.2, label=g)
    finish(fig, ax, faults, t0, "lag (records)", "Consumer lag, faults marked", out / "lag.png")
    plt.close(fig)

    by_process, peaks = collections.defaultdict(list), {}
    for t, name, kb, hwm_kb in rss:
        by_process[name].append((float(t) - t0, int(kb) / 1024))
        peaks[name] = max(peaks.get(name, 0), int(hwm_kb or kb) / 1024)
    fig, ax = plt.subplots(figsize=(12, 5))
    for name in sorted(by_process):
        ax.plot([p[0] for p in by_process[name]], [p[1] for p in by_process[name]], lw=1, label=name)
    ax.axhline(args.rss_limit_mb, color="red", ls="--", lw=0.8)
    finish(fig, ax, faults, t0, "RSS (MiB)", f"RSS per process (limit {args.rss_limit_mb} MiB dashed), faults marked", out / "rss.png",
           legend="upper left")
    plt.close(fig)

    kiln = ("scraper.", "normalizer.", "compactor.", "query.")
    over = {n: p for n, p in peaks.items() if n.startswith(kiln) and p > args.rss_limit_mb}
    kinds = collections.Counter(kind for _, kind, _ in faults)
    targets = collections.Counter(f"{kind} {target}" for _, kind, target in faults)
    exact = bool(audit) and audit["lost"] == 0 and audit["duplicated"] == 0 and audit["expected"] == audit["stored"]
    replicas_match_audit = bool(audit) and all(t == audit["stored"] for t in drain.get("query_totals", {}).values())
    lines = [
        "# Soak report",
        "",
        f"{load['send_seconds']:.0f} s of pushes at {load.get('offered_rate') or 0:g} profiles/s ({args.build} build, seed {args.seed}, blocks on {args.store}, "
        f"broker log {args.broker}), "
        f"{len(faults)} faults.",
        "",
        "| what | value |",
        "|---|---|",
        "| faults by kind | " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + " |",
        f"| pushes acknowledged (loadgen) | {load['totals']['accepted']} |",
        f"| pushes refused or failed (loadgen; clients retry these) | {sum(load['totals']['errors'].values())} |",
        f"| raw records of the tenant (with samples) | {audit['records'] if audit else '?'} |",
        f"| acknowledged pushes missing from the raw topic (at least; the broker lost them) | {max(0, load['totals']['accepted'] - audit['records']) if audit else '?'} |",
        f"| normalized records the broker acknowledged and lost (compactor offset gaps), replayed from the raw topic | {gaps} |",
        f"| stored exactly once | {audit['records'] - audit['lost'] if audit else '?'} |",
        f"| lost | {audit['lost'] if audit else '?'} |",
        f"| duplicated | {audit['duplicated'] if audit else '?'} |",
        f"| totals per profile type exact | {'yes' if exact else 'NO'} |",
        f"| consumer lag back to 0 after the faults | {drain.get('lag_zero_after_seconds')} s |",
        f"| both query replicas answer the audit's totals | {'yes' if drain.get('queries_equal') and replicas_match_audit else 'NO'}"
        + (f" (every type's total in {', '.join(f'{t:g}' for t in drain['query_seconds'].values())} s)" if drain.get("query_seconds") else "")
        + " |",
        f"| Kiln processes with a peak RSS above {args.rss_limit_mb:.0f} MiB | {', '.join(f'{n} {p:.0f} MiB' for n, p in over.items()) or 'none'} |",
        "",
        "Acknowledged pushes are a subset of the raw records: a push the scraper published but could not answer "
        "(killed, paused past the client's patience, or past its publish timeout) is in the raw topic and stored, "
        "as an SDK's retry would be.",
        "",
        "## Faults",
        "",
        "| fault | count |",
        "|---|---|",
    ] + [f"| {k} | {v} |" for k, v in sorted(targets.items())] + [
        "",
        "## Peak RSS",
        "",
        "| process (the highest of all its runs) | peak MiB |",
        "|---|---|",
    ] + [f"| {n} | {p:.0f} |" for n, p in sorted(peaks.items())] + [
        "",
        "![pushes](throughput.png)",
        "",
        "![lag](lag.png)",
        "",
        "![rss](rss.png)",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines[:18]))
    lag_drained = drain.get("lag_zero_after_seconds") is not None
    return 0 if exact and lag_drained and drain.get("queries_equal") and replicas_match_audit and not over else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check")
    c.add_argument("--brokers", required=True)
    c.add_argument("--groups", required=True, help="group=topic,...")
    c.add_argument("--queries", required=True, help="kiln-query base URLs, comma-separated")
    c.add_argument("--tenant", required=True)
    c.add_argument("--timeout", type=float, default=180)
    c.add_argument("--out", required=True)
    r = sub.add_parser("report")
    r.add_argument("--run", required=True)
    r.add_argument("--rss-limit-mb", type=float, required=True)
    r.add_argument("--build", default="?")
    r.add_argument("--seed", default="?")
    r.add_argument("--store", default="S3 (moto)", help="where the blocks were, for the report's first line")
    r.add_argument("--broker", default="in S3 (moto)", help="where the broker kept its log, for the report's first line")
    args = ap.parse_args()
    return check(args) if args.command == "check" else report(args)


if __name__ == "__main__":
    sys.exit(main())

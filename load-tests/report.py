#!/usr/bin/env python3
"""Turns `kiln loadgen` results into a Markdown report with PNG plots.

Reads every <phase>.json in --results (and verify.json from verify_totals.py when present), writes
--out/report.md and --out/*.png. Phases are shown in the order they ran.

Per phase: what loadgen sent (profiles/s, MB/s, errors by status), throughput per stage from the services'
own counters (profiles/s and MB/s through ingest, normaliser, compactor), consumer lag in records and seconds,
CPU (% of one core, and CPU-seconds per 1,000 profiles) and peak RSS per process, and the ingest-to-query
latency of the probe profiles (p50/p90/p99).
"""
import argparse
import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STAGES = [  # role, label, records counter, bytes counter
    ("scraper", "ingest (kiln-scraper)", "kiln_ingest_profiles_total", "kiln_ingest_bytes_total"),
    ("normalizer", "normaliser", "kiln_normalizer_records_total", "kiln_normalizer_bytes_total"),
    ("compactor", "compactor", "kiln_compactor_records_total", None),
]


def metric_sum(metrics, name):
    if not metrics:
        return None
    total, found = 0.0, False
    for key, value in metrics.items():
        if key == name or key.startswith(name + "{"):
            total += value
            found = True
    return total if found else None


def role(process):
    return process.split(".")[0]


def load(results_dir):
    phases = []
    for f in pathlib.Path(results_dir).glob("*.json"):
        if f.name == "verify.json":
            continue
        phases.append(json.loads(f.read_text()))
    phases.sort(key=lambda r: r["started_at_unix"])
    verify_file = pathlib.Path(results_dir) / "verify.json"
    verify = json.loads(verify_file.read_text()) if verify_file.exists() else None
    return phases, verify


def counter_series(phase, role_name, counter):
    """(t, Σ counter over the role's processes) per sample; a process missing a reading keeps its last value."""
    last, out = {}, []
    for s in phase["samples"]:
        for name, reading in s["processes"].items():
            if role(name) != role_name:
                continue
            v = metric_sum(reading.get("metrics"), counter)
            if v is not None:
                last[name] = v
        if last:
            out.append((s["t"], sum(last.values())))
    return out


def rate_series(series):
    return [((t0 + t1) / 2, (v1 - v0) / (t1 - t0)) for (t0, v0), (t1, v1) in zip(series, series[1:]) if t1 > t0]


def window_rate(series, t_from, t_to):
    pts = [(t, v) for t, v in series if t_from - 1e-6 <= t <= t_to + 1e-6]
    if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
        return None
    return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])


def cpu_table(phase):
    """process → (avg % of one core over the phase, CPU seconds used, peak RSS bytes)."""
    samples = phase["samples"]
    first, last = {}, {}
    peak = {}
    for s in samples:
        for name, reading in s["processes"].items():
            u = reading.get("usage")
            if not u:
                continue
            first.setdefault(name, (s["t"], u["cpu_seconds"]))
            last[name] = (s["t"], u["cpu_seconds"])
            peak[name] = max(peak.get(name, 0), u["peak_rss_bytes"])
    out = {}
    for name in sorted(last):
        (t0, c0), (t1, c1) = first[name], last[name]
        used = c1 - c0
        out[name] = (100 * used / (t1 - t0) if t1 > t0 else 0, used, peak.get(name, 0))
    return out


def fmt(x, digits=1, unit=""):
    if x is None:
        return "–"
    return f"{x:,.{digits}f}{unit}"


def stage_rates(phase):
    """Per stage: records/s and MB/s while sending, and over send + drain."""
    send_end = phase["samples"][0]["t"] + phase["send_seconds"]
    drained = phase.get("drained_after_seconds")
    end = phase["samples"][-1]["t"] if drained is None else phase["samples"][0]["t"] + drained
    rows = []
    for role_name, label, rec, byt in STAGES:
        rs = counter_series(phase, role_name, rec)
        if not rs:
            continue
        bs = counter_series(phase, role_name, byt) if byt else []
        rows.append({
            "stage": label,
            "records_per_s_sending": window_rate(rs, 0, send_end),
            "records_per_s_overall": window_rate(rs, 0, end),
            "mb_per_s_sending": (window_rate(bs, 0, send_end) or 0) / 1e6 if bs else None,
            "records": rs[-1][1] - rs[0][1],
        })
    return rows


def lag_max(phase):
    out = {}
    for s in phase["samples"]:
        for l in s["lag"]:
            k = l["group"]
            r, sec = out.get(k, (0, 0.0))
            out[k] = (max(r, l["records"]), max(sec, l["seconds"]))
    return out


def concat_timeline(phases):
    """Offsets so phases sit side by side on one time axis."""
    offsets, t = [], 0.0
    for p in phases:
        offsets.append(t)
        t += (p["samples"][-1]["t"] if p["samples"] else p["send_seconds"]) + 5
    return offsets


def mark_phases(ax, phases, offsets):
    for p, off in zip(phases, offsets):
        ax.axvline(off, color="grey", lw=0.8, ls=":")
        ax.text(off + 0.5, 1.0, p["phase"], transform=ax.get_xaxis_transform(), va="top", fontsize=7, color="dimgrey")


def plot_throughput(phases, offsets, path):
    fig, ax = plt.subplots(figsize=(12, 4.5))
    sent_x, sent_y = [], []
    for p, off in zip(phases, offsets):
        for row in p["seconds"]:
            sent_x.append(off + row["t"] + 0.5)
            sent_y.append(row["sent"])
    ax.plot(sent_x, sent_y, lw=1, label="loadgen accepted", color="black")
    colors = {"scraper": "tab:blue", "normalizer": "tab:orange", "compactor": "tab:green"}
    for role_name, label, rec, _ in STAGES:
        xs, ys = [], []
        for p, off in zip(phases, offsets):
            for t, v in rate_series(counter_series(p, role_name, rec)):
                xs.append(off + t)
                ys.append(v)
            xs.append(None)
            ys.append(None)
        if any(y is not None for y in ys):
            ax.plot(xs, ys, lw=1.2, label=label, color=colors[role_name])
    mark_phases(ax, phases, offsets)
    ax.set_xlabel("seconds (phases back to back)")
    ax.set_ylabel("profiles / s")
    ax.set_title("Throughput per stage")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_lag(phases, offsets, path):
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(12, 6), sharex=True)
    groups = sorted({l["group"] for p in phases for s in p["samples"] for l in s["lag"]})
    for g in groups:
        xs, rec, sec = [], [], []
        for p, off in zip(phases, offsets):
            for s in p["samples"]:
                for l in s["lag"]:
                    if l["group"] == g:
                        xs.append(off + s["t"])
                        rec.append(l["records"])
                        sec.append(l["seconds"])
            xs.append(None)
            rec.append(None)
            sec.append(None)
        a1.plot(xs, rec, lw=1.2, label=g)
        a2.plot(xs, sec, lw=1.2, label=g)
    for ax in (a1, a2):
        mark_phases(ax, phases, offsets)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    a1.set_ylabel("lag (records)")
    a2.set_ylabel("lag (seconds)")
    a2.set_xlabel("seconds (phases back to back)")
    a1.set_title("Consumer lag (committed offsets vs high watermark)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cpu_mem(phases, offsets, path):
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    names = sorted({n for p in phases for s in p["samples"] for n in s["processes"]})
    for name in names:
        xs, cpu, mx, rss = [], [], [], []
        for p, off in zip(phases, offsets):
            prev = None
            for s in p["samples"]:
                u = (s["processes"].get(name) or {}).get("usage")
                if not u:
                    continue
                if prev and s["t"] > prev[0]:
                    xs.append(off + (s["t"] + prev[0]) / 2)
                    cpu.append(100 * (u["cpu_seconds"] - prev[1]) / (s["t"] - prev[0]))
                prev = (s["t"], u["cpu_seconds"])
                mx.append(off + s["t"])
                rss.append(u["rss_bytes"] / 2**20)
            xs.append(None)
            cpu.append(None)
            mx.append(None)
            rss.append(None)
        a1.plot(xs, cpu, lw=1, label=name)
        a2.plot(mx, rss, lw=1, label=name)
    for ax in (a1, a2):
        mark_phases(ax, phases, offsets)
        ax.grid(alpha=0.3)
    a1.legend(loc="upper right", fontsize=7, ncol=3)
    a1.set_ylabel("CPU (% of one core)")
    a2.set_ylabel("RSS (MiB)")
    a2.set_xlabel("seconds (phases back to back)")
    a1.set_title("CPU and memory per process (2 cores = 200 %)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(phase, path):
    lat = sorted(phase["latency"]["latencies_s"])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    a1.hist(lat, bins=min(40, max(5, len(lat) // 2)), color="tab:purple")
    a1.set_xlabel("ingest → visible in a query (s)")
    a1.set_ylabel("probes")
    a1.set_title(f"{phase['phase']}: {len(lat)} probes at {fmt(phase.get('offered_rate'), 0)} profiles/s")
    a2.plot(lat, [(i + 1) / len(lat) for i in range(len(lat))], color="tab:purple")
    for q, ls in ((0.5, "--"), (0.99, ":")):
        v = lat[min(len(lat) - 1, max(0, int(q * len(lat) + 0.999999) - 1))]
        a2.axvline(v, ls=ls, color="grey")
        a2.text(v, q, f" p{int(q * 100)} {v:.2f} s", fontsize=8, va="bottom")
    a2.set_xlabel("seconds")
    a2.set_ylabel("fraction of probes")
    a2.set_title("CDF")
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scaleout(scale, path):
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2))
    names = [p["phase"] for p in scale]
    e2e = [p.get("end_to_end_rate") or 0 for p in scale]
    sending = [p["achieved_rate"] for p in scale]
    x = range(len(scale))
    a1.bar([i - 0.2 for i in x], sending, width=0.4, label="accepted while sending")
    a1.bar([i + 0.2 for i in x], e2e, width=0.4, label="end to end (until drained)")
    for i, v in enumerate(e2e):
        a1.text(i + 0.2, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    a1.set_xticks(list(x), names)
    a1.set_ylabel("profiles / s")
    a1.set_title("Sustained throughput")
    a1.legend(fontsize=8)
    roles = ["loadgen", "tansu", "scraper", "normalizer", "compactor", "query"]
    bottoms = [0.0] * len(scale)
    for r in roles:
        vals = []
        for p in scale:
            cpu = cpu_table(p)
            vals.append(sum(v[0] for n, v in cpu.items() if role(n) == r))
        a2.bar(list(x), vals, bottom=bottoms, label=r)
        bottoms = [b + v for b, v in zip(bottoms, vals)]
    a2.axhline(200, color="red", lw=0.8, ls="--")
    a2.text(len(scale) - 0.5, 202, "2 cores", color="red", fontsize=8, ha="right")
    a2.set_xticks(list(x), names)
    a2.set_ylabel("CPU (% of one core)")
    a2.set_title("Where the CPU goes")
    a2.legend(fontsize=7, ncol=2)
    for ax in (a1, a2):
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--build", default="?", help="release or debug, for the report's header")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    phases, verify = load(args.results)
    if not phases:
        print("report: no loadgen results in", args.results, file=sys.stderr)
        return 1
    offsets = concat_timeline(phases)
    plot_throughput(phases, offsets, out / "throughput.png")
    plot_lag(phases, offsets, out / "lag.png")
    plot_cpu_mem(phases, offsets, out / "cpu-memory.png")
    scale = [p for p in phases if p["phase"].startswith("scale-")]
    if scale:
        plot_scaleout(scale, out / "scaleout.png")
    lat_phases = [p for p in phases if p.get("latency") and p["latency"]["latencies_s"]]
    for p in lat_phases:
        plot_latency(p, out / f"latency-{p['phase']}.png")

    md = ["# Kiln load test", ""]
    first = phases[0]
    s = first["settings"]
    md += [f"Build: **{args.build}**. Fleet: {s.get('services')} services × {s.get('instances')} instances × "
           f"{s.get('kinds')} = {s.get('targets')} profile streams; payloads: {first['pool'].get('variants')} variants of real "
           f"pprof fixtures, mean {int(first['pool'].get('mean_payload_bytes', 0)):,} bytes gzipped. Everything on this machine "
           f"(loadgen included), loopback only.", ""]

    # Headline.
    best = max(scale or phases, key=lambda p: p.get("end_to_end_rate") or 0)
    md += ["## Headline", ""]
    md.append(f"- Sustained end to end: **{fmt(best.get('end_to_end_rate'), 0)} profiles/s** "
              f"({fmt(best['bytes_per_second'] / 1e6, 2)} MB/s of gzipped pprof accepted while sending) in phase `{best['phase']}` "
              f"— accepted profiles ÷ time from the first send until every stage had caught up.")
    for p in lat_phases:
        l = p["latency"]
        md.append(f"- Ingest → visible in a query at {fmt(p.get('offered_rate'), 0)} profiles/s: p50 **{fmt(l.get('p50_s'), 2)} s**, "
                  f"p99 **{fmt(l.get('p99_s'), 2)} s** (max {fmt(l.get('max_s'), 2)} s; {l['visible']}/{l['probes_sent']} probes visible).")
    if verify:
        md.append(f"- Totals: **{'exact' if verify['exact'] else 'NOT exact'}** — the store's per-type sums "
                  f"{'equal' if verify['exact'] else 'differ from'} what loadgen sent over {verify['profiles_accepted']:,} accepted profiles "
                  f"({', '.join(verify['phases'])}).")
    md.append("")

    md += ["## Phases", "",
           "| phase | offered | accepted | while sending | MB/s | end to end | drained after | errors | send p50 / p99 |",
           "|---|---|---|---|---|---|---|---|---|"]
    for p in phases:
        errs = ", ".join(f"{k}: {v}" for k, v in sorted(p["totals"]["errors"].items())) or "0"
        throttled = sum(1 for r in p["seconds"] if r.get("throttled"))
        md.append(f"| {p['phase']} | {fmt(p.get('offered_rate'), 0) + '/s' if p.get('offered_rate') else 'flat out'}"
                  f"{f' (paused {throttled} s for lag)' if throttled else ''} | {p['totals']['accepted']:,} in {fmt(p['send_seconds'])} s | "
                  f"{fmt(p['achieved_rate'], 0)}/s | {fmt(p['bytes_per_second'] / 1e6, 2)} | {fmt(p.get('end_to_end_rate'), 0)}/s | "
                  f"{fmt(p.get('drained_after_seconds'))} s | {errs} | {fmt(p.get('send_latency_p50_ms'))} / {fmt(p.get('send_latency_p99_ms'))} ms |")
    md += ["", "![throughput](throughput.png)", ""]

    md += ["## Throughput per stage", "",
           "From each service's own counters (`/metrics`), summed over its instances: while loadgen was sending, and over "
           "send + drain.", "",
           "| phase | stage | profiles/s while sending | profiles/s overall | MB/s while sending | profiles |", "|---|---|---|---|---|---|"]
    for p in phases:
        for r in stage_rates(p):
            md.append(f"| {p['phase']} | {r['stage']} | {fmt(r['records_per_s_sending'], 0)} | {fmt(r['records_per_s_overall'], 0)} | "
                      f"{fmt(r['mb_per_s_sending'], 2)} | {int(r['records']):,} |")
    md.append("")

    if scale:
        md += ["## Scale-out", "",
               "Same consumer groups, raw and normalized topics with 4 partitions each; a second normaliser joins before "
               "`scale-2n-1c`, a second compactor before `scale-2n-2c`. Sending is flat out but pauses while a group lags "
               f"by more than {s.get('max_lag_records', '?')} records, so the rate is what the pipeline sustains.", "",
               "![scale-out](scaleout.png)", ""]

    md += ["## CPU and memory per process", "",
           "CPU as % of one core averaged over the phase (this machine has 2 cores: 200 % is everything), CPU-seconds per "
           "1,000 accepted profiles, and peak RSS (VmHWM).", "",
           "| phase | process | CPU % | CPU-s per 1k profiles | peak RSS MiB |", "|---|---|---|---|---|"]
    for p in phases:
        accepted = max(1, p["totals"]["accepted"])
        for name, (pct, used, peak) in cpu_table(p).items():
            md.append(f"| {p['phase']} | {name} | {pct:.0f} | {1000 * used / accepted:.2f} | {peak / 2**20:.0f} |")
    md += ["", "![cpu and memory](cpu-memory.png)", ""]

    md += ["## Consumer lag", "",
           "Records: Σ over partitions of high watermark − committed offset. Seconds: for the oldest uncommitted record, "
           "now minus the moment the sampled log end first passed it (largest over partitions). The compactor commits "
           "only after a block is uploaded (and librdkafka commits stored offsets every 5 s), so its lag includes the block "
           "age and the commit interval. Tansu's watermarks can read short by a batch, so lag there is approximate.", "",
           "| phase | group | max lag records | max lag seconds |", "|---|---|---|---|"]
    for p in phases:
        for g, (r, sec) in sorted(lag_max(p).items()):
            md.append(f"| {p['phase']} | {g} | {r:,} | {sec:.1f} |")
    md += ["", "![lag](lag.png)", ""]

    if lat_phases:
        md += ["## Ingest-to-query latency", "",
               "A probe profile (service `loadgen-probe`, unique `probe` label value) goes out every second through the "
               "same path as the load; kiln-query's `LabelValues` is polled every 200 ms until the value is listed. "
               "One query runs before the first probe and is reported apart: a kiln-query that has not read the blocks "
               "the earlier phases left pays for that once, which is query start-up, not ingest latency.", ""]
        for p in lat_phases:
            l = p["latency"]
            md += [f"- `{p['phase']}` at {fmt(p.get('offered_rate'), 0)} profiles/s: p50 {fmt(l.get('p50_s'), 2)} s, "
                   f"p90 {fmt(l.get('p90_s'), 2)} s, p99 {fmt(l.get('p99_s'), 2)} s, max {fmt(l.get('max_s'), 2)} s; "
                   f"{l['visible']} of {l['probes_sent']} visible, {l['not_visible']} not, {l['query_errors']} query errors"
                   + (f"; the query before the first probe took {fmt(l.get('query_warm_up_s'), 2)} s." if l.get('query_warm_up_s') is not None else "."),
                   "", f"![latency](latency-{p['phase']}.png)", ""]

    if verify:
        md += ["## Totals", "",
               "Σ values per sample type in the store (kiln-query `SelectMergeStacktraces` over all time, every label) "
               "against Σ over the payloads loadgen had accepted (every variant keeps only samples with a stack, and "
               "nothing is cumulative, so nothing is dropped or turned into a baseline).", "",
               "| type/unit | sent | stored | |", "|---|---|---|---|"]
        for r in verify["rows"]:
            md.append(f"| {r['type_unit']} | {r['sent']:,} | {r['stored']:,} | {'=' if r['equal'] else '**≠**'} |")
        md.append("")

    (out / "report.md").write_text("\n".join(md))
    print(f"report: {out / 'report.md'} ({len(phases)} phases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

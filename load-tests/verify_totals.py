#!/usr/bin/env python3
"""Checks that the block store holds exactly what `kiln loadgen` sent.

Sums `totals.expected_totals` (Σ values per `type/unit` over every accepted profile, probes included) over the
phase results in --results, and asks kiln-query for the same sums: ProfileTypes, then per profile type
SelectMergeStacktraces over all time with every label (the flame graph's `total` is an exact int64). Profile
types are folded to `type/unit`, the key loadgen uses. Retries until the two agree or --timeout passes (the
last blocks may still be on their way), then writes --out (JSON) and exits 1 on a mismatch.

Exact only when nothing sent was cumulative (loadgen's /ingest and raw-topic sends are not) and no accepted
push was also retried (loadgen does not retry).
"""
import argparse
import json
import pathlib
import sys
import time
import urllib.request


TENANT = None


def post(base, method, body):
    headers = {"Content-Type": "application/json"}
    if TENANT:
        headers["X-Scope-OrgID"] = TENANT
    req = urllib.request.Request(f"{base}/querier.v1.QuerierService/{method}", data=json.dumps(body).encode(),
                                 headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read() or b"{}")


def expected(results_dir):
    sums, sent, phases, started = {}, 0, [], None
    for f in sorted(pathlib.Path(results_dir).glob("*.json")):
        if f.name == "verify.json":
            continue
        r = json.loads(f.read_text())
        phases.append(r["phase"])
        sent += r["totals"]["accepted"]
        started = r["started_at_unix"] if started is None else min(started, r["started_at_unix"])
        for key, value in r["totals"]["expected_totals"].items():
            sums[key] = sums.get(key, 0) + int(value)
    return sums, sent, phases, started


def stored(base, start_ms, end_ms):
    types = post(base, "ProfileTypes", {"start": str(start_ms), "end": str(end_ms)}).get("profileTypes", [])
    sums, per_type = {}, {}
    for t in types:
        pid = t["ID"]
        parts = pid.split(":")
        key = f"{parts[1]}/{parts[2]}"
        resp = post(base, "SelectMergeStacktraces", {"profileTypeID": pid, "labelSelector": "{}", "start": str(start_ms),
                                                      "end": str(end_ms), "maxNodes": "1"})
        total = int(resp.get("flamegraph", {}).get("total", 0))
        per_type[pid] = total
        sums[key] = sums.get(key, 0) + total
    return sums, per_type


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--query", required=True, help="kiln-query base URL")
    ap.add_argument("--results", required=True, help="folder of loadgen <phase>.json files")
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--tenant", help="X-Scope-OrgID (default: anonymous)")
    args = ap.parse_args()
    global TENANT
    TENANT = args.tenant

    want, sent, phases, started = expected(args.results)
    if started is None:
        print("verify_totals: no loadgen results in", args.results, file=sys.stderr)
        return 1
    start_ms = int((started - 3600) * 1000)
    deadline = time.time() + args.timeout
    attempts = 0
    while True:
        attempts += 1
        end_ms = int((time.time() + 3600) * 1000)
        try:
            got, per_type = stored(args.query, start_ms, end_ms)
            error = None
        except Exception as e:  # the query service may be busy; retry until the deadline
            got, per_type, error = {}, {}, str(e)
        keys = sorted(set(want) | set(got))
        rows = [{"type_unit": k, "sent": want.get(k, 0), "stored": got.get(k, 0), "equal": want.get(k, 0) == got.get(k, 0)}
                for k in keys]
        exact = bool(rows) and all(r["equal"] for r in rows) and error is None
        if exact or time.time() >= deadline:
            break
        time.sleep(2)
    report = {"exact": exact, "profiles_accepted": sent, "phases": phases, "attempts": attempts, "rows": rows,
              "per_profile_type": per_type, "error": error}
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1, sort_keys=True))
    for r in rows:
        print(f"verify_totals: {r['type_unit']:24} sent {r['sent']:>22} stored {r['stored']:>22} {'ok' if r['equal'] else 'MISMATCH'}")
    print(f"verify_totals: {'EXACT' if exact else 'NOT EXACT'} over {sent} accepted profiles in {len(phases)} phases"
          + (f" (last error: {error})" if error else ""))
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A slow client for the hostile-client tests: opens N connections to 127.0.0.1:PORT, sends each a push's
request head declaring a large body, then trickles the body a byte at a time. Reports, per connection,
what the server did (an HTTP status, or a close without one) and when. Bounded: stops after --seconds.
Standard library only; loopback only."""
import argparse
import json
import selectors
import socket
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--connections", type=int, default=200)
    ap.add_argument("--tenant", default="attacker")
    ap.add_argument("--path", default="/ingest?name=slow&format=pprof")
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between trickled bytes")
    ap.add_argument("--seconds", type=float, default=30, help="give up after this long")
    args = ap.parse_args()

    sel = selectors.DefaultSelector()
    start = time.monotonic()
    head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Scope-OrgID: %s\r\nContent-Type: application/octet-stream\r\n"
            "Content-Length: 1000000\r\n\r\n" % (args.path, args.tenant)).encode()
    conns = {}
    for i in range(args.connections):
        s = socket.create_connection(("127.0.0.1", args.port))
        s.sendall(head)
        s.setblocking(False)
        conns[s] = {"received": b"", "ended": None, "status": None}
        sel.register(s, selectors.EVENT_READ)
    next_byte = time.monotonic()
    while conns and time.monotonic() - start < args.seconds:
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            c = conns[s]
            try:
                data = s.recv(4096)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            c["received"] += data
            if c["status"] is None and b"\r\n" in c["received"]:
                line = c["received"].split(b"\r\n", 1)[0].split()
                c["status"] = int(line[1]) if len(line) > 1 and line[1].isdigit() else None
            if not data:
                c["ended"] = time.monotonic() - start
                sel.unregister(s)
                s.close()
                report.append(c)
                del conns[s]
        if time.monotonic() >= next_byte:
            next_byte += args.interval
            for s in list(conns):
                try:
                    s.send(b"x")
                except OSError:
                    pass
    still_open = len(conns)
    for s in conns:
        s.close()
    statuses = {}
    for c in report:
        key = str(c["status"]) if c["status"] is not None else "closed"
        statuses[key] = statuses.get(key, 0) + 1
    ended = sorted(c["ended"] for c in report)
    print(json.dumps({"statuses": statuses, "still_open": still_open,
                      "last_end_seconds": ended[-1] if ended else None}))


report = []
if __name__ == "__main__":
    main()

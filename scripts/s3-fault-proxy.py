#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for Kiln's object-store tests: real TCP on 127.0.0.1 in front of an S3 server.

Each request is read whole (headers + Content-Length body) and numbered from 1. A plan decides its fate:
  --first 503,reset,500   the first requests get these actions in order, the rest pass through
  --always 503            every request gets this action
  --every 2:500           every 2nd request (2, 4, ...) gets the action, the others pass (odd ones fail with 1:...)
  --plan-file PATH        read before every request; its one line (e.g. `--every 3:503`, `--always slow` or
                          `pass`) overrides the plan above while the file exists, so a test changes the fault
                          while a client keeps running
Actions: pass, 500, 503 (S3 SlowDown), 429, 403 (AccessDenied), reset (TCP RST, no response),
hang (read the request, never answer; the connection is closed after --hang-seconds),
slow (wait --slow-seconds, then pass the request on; a client with a shorter timeout has given up by then,
yet the upstream still performs the request).
With --require-bearer TOKEN the proxy is also an authenticating gateway (as one in front of a Prometheus or
Mimir): a request without `Authorization: Bearer TOKEN` is answered 401 (action `401`), and a passed one
goes upstream without its Authorization header.
Passed requests go to --upstream with `Connection: close`; the answer gets `Connection: close` too, so every
request is one connection and the numbering is exact. One line per request goes to --log:
`<n> <METHOD> <path> <action>`. The listening port is written to --port-file once the socket listens.
Runs until SIGTERM. Only binds 127.0.0.1.
"""
import argparse
import signal
import socket
import struct
import sys
import threading
import time

BODIES = {
    "500": (500, "Internal Server Error", "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "Service Unavailable", "SlowDown", "Please reduce your request rate."),
    "429": (429, "Too Many Requests", "SlowDown", "Please reduce your request rate."),
    "403": (403, "Forbidden", "AccessDenied", "Access Denied"),
}


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(min(1 << 20, length - len(body)))
        if not chunk:
            return None
        body += chunk
    return head, body


def with_connection_close(head):
    lines = [l for l in head.split(b"\r\n") if not l.lower().startswith(b"connection:")]
    return b"\r\n".join(lines + [b"Connection: close"])


class Proxy:
    def __init__(self, args):
        self.args = args
        self.count = 0
        self.lock = threading.Lock()
        self.log = open(args.log, "a", buffering=1) if args.log else None
        host, port = args.upstream.rsplit(":", 1)
        self.upstream = (host, int(port))

    def plan(self, n):
        a = self.args
        if a.plan_file:
            try:
                with open(a.plan_file) as f:
                    line = f.read().strip()
            except OSError:
                line = None
            if line is not None:
                if line == "pass" or not line:
                    return "pass"
                flag, _, value = line.partition(" ")
                a = argparse.Namespace(always=value if flag == "--always" else None,
                                       every=value if flag == "--every" else None,
                                       first=value if flag == "--first" else None)
        if a.always:
            return a.always
        if a.every:
            k, action = a.every.split(":", 1)
            return action if n % int(k) == 0 else "pass"
        if a.first:
            steps = a.first.split(",")
            return steps[n - 1] if n <= len(steps) else "pass"
        return "pass"

    def handle(self, conn):
        try:
            request = read_request(conn)
            if request is None:
                return
            head, body = request
            with self.lock:
                self.count += 1
                n = self.count
            action = self.plan(n)
            if self.args.require_bearer is not None:
                authorization = [l.partition(b":")[2].strip() for l in head.split(b"\r\n")[1:]
                                 if l.partition(b":")[0].strip().lower() == b"authorization"]
                if authorization != [b"Bearer " + self.args.require_bearer.encode()]:
                    action = "401"
                else:
                    head = b"\r\n".join(l for l in head.split(b"\r\n")
                                         if l.partition(b":")[0].strip().lower() != b"authorization")
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if self.log:
                self.log.write(f"{n} {request_line[0]} {request_line[1] if len(request_line) > 1 else '?'} {action}\n")
            if action == "slow":
                time.sleep(self.args.slow_seconds)
                action = "pass"
            if action == "pass":
                up = socket.create_connection(self.upstream, timeout=30)
                up.sendall(with_connection_close(head) + b"\r\n\r\n" + body)
                response = b""
                while True:
                    chunk = up.recv(1 << 20)
                    if not chunk:
                        break
                    response += chunk
                up.close()
                rhead, sep, rbody = response.partition(b"\r\n\r\n")
                conn.sendall(with_connection_close(rhead) + sep + rbody)
            elif action == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif action == "401":
                text = b"bearer token missing or wrong"
                conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nWWW-Authenticate: Bearer\r\n"
                             + f"Content-Length: {len(text)}\r\nConnection: close\r\n\r\n".encode() + text)
            elif action == "hang":
                conn.settimeout(self.args.hang_seconds)
                try:
                    while conn.recv(65536):
                        pass
                except OSError:
                    pass
            else:
                status, reason, code, message = BODIES[action]
                xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                       f"<Message>{message}</Message><RequestId>fault-proxy-{n}</RequestId></Error>").encode()
                conn.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
                             f"Content-Length: {len(xml)}\r\nConnection: close\r\n\r\n".encode() + xml)
        except OSError:
            pass
        finally:
            conn.close()

    def serve(self):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        with open(self.args.port_file + ".tmp", "w") as f:
            f.write(str(listener.getsockname()[1]))
        import os
        os.rename(self.args.port_file + ".tmp", self.args.port_file)
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--upstream", required=True, help="host:port of the real S3 server")
    p.add_argument("--port-file", required=True)
    p.add_argument("--log")
    p.add_argument("--first")
    p.add_argument("--always")
    p.add_argument("--every")
    p.add_argument("--plan-file")
    p.add_argument("--require-bearer", help="answer 401 unless Authorization is `Bearer` and this token")
    p.add_argument("--hang-seconds", type=float, default=30)
    p.add_argument("--slow-seconds", type=float, default=3)
    p.add_argument("--max-lifetime", type=float, default=300, help="exit after this many seconds regardless")
    args = p.parse_args()
    # A parent may have spawned us with SIGTERM blocked (threads of a test runner often block signals);
    # unblock it so `terminate()` works.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    lifetime = threading.Timer(args.max_lifetime, lambda: __import__("os")._exit(0))
    lifetime.daemon = True
    lifetime.start()
    Proxy(args).serve()


if __name__ == "__main__":
    main()

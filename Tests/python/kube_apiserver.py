#!/usr/bin/env python3
"""Kubernetes API server stand-in for the service-discovery integration tests.

No real cluster can run on this machine, so this small server speaks the real
list/watch protocol (paged LISTs with continue tokens, chunked WATCH streams with
ADDED/MODIFIED/DELETED/BOOKMARK/ERROR events, 410 "Expired" on compacted resource
versions) and serves objects shaped like the Kubernetes API reference. Tests drive
it through a small admin API under /_admin (no auth). Standard library only.

Usage: kube_apiserver.py [--port 0] [--token TOKEN] [--tls-cert PEM --tls-key PEM]
Prints "listening on 127.0.0.1:PORT" once listening.
"""
import argparse
import base64
import bisect
import json
import re
import select
import signal
import socket
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

# resource -> (apiVersion, kind, namespaced)
RESOURCES = {
    "pods": ("v1", "Pod", True),
    "endpoints": ("v1", "Endpoints", True),
    "services": ("v1", "Service", True),
    "nodes": ("v1", "Node", False),
    "namespaces": ("v1", "Namespace", False),
    "endpointslices": ("discovery.k8s.io/v1", "EndpointSlice", True),
}
POD_FIELDS = ("spec.nodeName", "status.phase")
REASONS = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 405: "MethodNotAllowed", 410: "Expired"}
WAIT_S = 0.5  # condition wait slice: lets watches notice timeouts, shutdown and hang-ups


class BadRequest(Exception):
    pass


def status(code, message, reason=None):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason or REASONS.get(code, "InternalError"), "code": code}


def with_kind(res, obj):
    api, kind, _ = RESOURCES[res]
    return {"kind": kind, "apiVersion": api, **obj}


# ---- selectors ---------------------------------------------------------------------
KEY = r"[A-Za-z0-9][\w./-]*"
VAL = r"[\w.-]*"
SET_RE = re.compile(rf"^({KEY})\s+(in|notin)\s*\(([^()]*)\)$")
NOT_RE = re.compile(rf"^!\s*({KEY})$")
OP_RE = re.compile(rf"^({KEY})\s*(!=|==|=)\s*({VAL})$")
EXISTS_RE = re.compile(rf"^({KEY})$")


def split_terms(s):
    """Split on commas that are not inside parentheses."""
    terms, depth, cur = [], 0, ""
    for ch in s:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0 or depth > 1:
            raise BadRequest(f"invalid label selector: {s!r}")
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise BadRequest(f"invalid label selector: {s!r}")
    return terms + [cur]


def label_predicate(s):
    preds = []
    for term in (split_terms(s) if s.strip() else []):
        t = term.strip()
        if m := SET_RE.match(t):
            vals = {v.strip() for v in m.group(3).split(",")}
            if not all(re.fullmatch(VAL, v) for v in vals):
                raise BadRequest(f"invalid label selector: {s!r}")
            k, neg = m.group(1), m.group(2) == "notin"
            preds.append(lambda l, k=k, vals=vals, neg=neg: (l.get(k) in vals) != neg)
        elif m := NOT_RE.match(t):
            preds.append(lambda l, k=m.group(1): k not in l)
        elif m := OP_RE.match(t):
            k, op, v = m.groups()
            preds.append(lambda l, k=k, v=v, neg=op == "!=": (l.get(k) == v) != neg)
        elif m := EXISTS_RE.match(t):
            preds.append(lambda l, k=m.group(1): k in l)
        else:
            raise BadRequest(f"invalid label selector: {s!r}")
    return lambda labels: all(p(labels) for p in preds)


def dig(obj, path):
    for part in path:
        obj = obj.get(part) if isinstance(obj, dict) else None
    return "" if obj is None else str(obj)


def field_predicate(s, res):
    preds = []
    for term in (t.strip() for t in s.split(",")):
        if not term:
            continue
        m = re.match(r"^([\w.]+)\s*(!=|==|=)\s*(.*)$", term)
        if not m:
            raise BadRequest(f"invalid field selector: {s!r}")
        field, op, val = m.groups()
        if field not in ("metadata.name", "metadata.namespace") and not (res == "pods" and field in POD_FIELDS):
            raise BadRequest(f"field label not supported: {field}")
        preds.append(lambda o, p=field.split("."), v=val, neg=op == "!=": (dig(o, p) == v) != neg)
    return lambda obj: all(p(obj) for p in preds)


def make_matcher(res, ns, query):
    """Predicate for objects visible to a request: namespace from the path plus both selectors."""
    labels = label_predicate(query.get("labelSelector", ""))
    fields = field_predicate(query.get("fieldSelector", ""), res)
    return lambda o: ((ns is None or o["metadata"].get("namespace") == ns)
                      and labels(o["metadata"].get("labels") or {}) and fields(o))


# ---- cluster state -----------------------------------------------------------------
class State:
    def __init__(self, token):
        self.token = token
        self.cond = threading.Condition()  # guards everything below; notified on every change
        self.rv = 0                         # global resourceVersion counter
        self.objects = {res: {} for res in RESOURCES}  # res -> {(ns, name): obj without kind}
        self.history = []                   # (rv, res, type, obj, old obj or None), rv ascending
        self.history_start = 0              # watches from an rv below this get 410
        self.epoch = 0                      # bumped by compact: ends every open watch
        self.paused = False                 # set by /_admin/pause: open watches fall behind until compact
        self.bookmark_seq = 0               # bumped by /_admin/bookmark
        self.snapshots = {}                 # continue token -> (items, rv, offset)
        self.snap_seq = 0
        self.requests = []
        self.open_watches = 0
        self.stopping = False

    @staticmethod
    def check(res, obj):
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict) or not obj["metadata"].get("name"):
            raise BadRequest(f"{res}: object with metadata.name required")

    def put(self, res, obj, now):
        """Create or replace one object (caller holds the lock and notifies)."""
        obj.pop("kind", None)
        obj.pop("apiVersion", None)
        meta = obj["metadata"]
        if RESOURCES[res][2]:
            meta["namespace"] = meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        key = (meta.get("namespace", ""), meta["name"])
        old = self.objects[res].get(key)
        if old:  # a replace keeps identity, as an update would
            meta.setdefault("uid", old["metadata"]["uid"])
            meta.setdefault("creationTimestamp", old["metadata"]["creationTimestamp"])
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now)
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        self.objects[res][key] = obj
        self.history.append((self.rv, res, "MODIFIED" if old else "ADDED", obj, old))
        return obj

    def delete(self, res, ns, name):
        old = self.objects[res].pop((ns, name), None)
        if old is None:
            return None
        self.rv += 1
        gone = {**old, "metadata": {**old["metadata"], "resourceVersion": str(self.rv)}}
        self.history.append((self.rv, res, "DELETED", gone, None))
        return gone


def parse_api_path(path):
    """Map a list/watch path to (resource, namespace or None), or None if unknown."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "v1"]:
        group, rest = "v1", parts[2:]
    elif parts[:3] == ["apis", "discovery.k8s.io", "v1"]:
        group, rest = "discovery.k8s.io/v1", parts[3:]
    else:
        return None
    if len(rest) == 1:
        res, ns = rest[0], None
    elif len(rest) == 3 and rest[0] == "namespaces" and rest[1]:
        res, ns = rest[2], rest[1]
    else:
        return None
    if res not in RESOURCES or RESOURCES[res][0] != group or (ns is not None and not RESOURCES[res][2]):
        return None
    return res, ns


# ---- HTTP --------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-standin"

    def log_message(self, *args):
        pass

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()  # in this thread, not in the accept loop
        super().setup()

    @property
    def state(self):
        return self.server.state

    def send_json(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_status(self, code, message, reason=None):
        self.send_json(code, status(code, message, reason))

    def read_json(self):
        try:
            return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
        except ValueError as e:
            raise BadRequest(f"invalid JSON body: {e}")

    def dispatch(self):
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        try:
            if url.path.startswith("/_admin/"):
                return self.admin(url.path[len("/_admin/"):].strip("/").split("/"))
            self.state.requests.append({"method": self.command, "path": url.path, "query": query,
                                        "authorization": self.headers.get("Authorization")})
            if self.state.token and self.headers.get("Authorization") != f"Bearer {self.state.token}":
                return self.send_status(401, "Unauthorized")
            target = parse_api_path(url.path)
            if target is None:
                return self.send_status(404, f"the server could not find the requested resource ({url.path})")
            if self.command != "GET":
                return self.send_status(405, f"{self.command} is not supported here")
            if query.get("watch") in ("1", "true"):
                return self.watch(*target, query)
            return self.list(*target, query)
        except BadRequest as e:
            self.send_status(400, str(e))

    do_GET = do_PUT = do_POST = do_DELETE = dispatch

    def list(self, res, ns, query):
        st = self.state
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            raise BadRequest(f"invalid limit: {query['limit']!r}")
        token = query.get("continue")
        match = None if token else make_matcher(res, ns, query)
        with st.cond:
            if token:  # later page: cut from the snapshot taken at the first page
                if token not in st.snapshots:
                    return self.send_status(410, "The provided continue parameter is too old to display "
                                                 "a consistent list result. You can start a new list without "
                                                 "the continue parameter.")
                items, rv, offset = st.snapshots[token]
            else:
                items = [o for _, o in sorted(st.objects[res].items()) if match(o)]
                rv, offset = st.rv, 0
            end = offset + limit if limit > 0 else len(items)
            meta = {"resourceVersion": str(rv)}
            if end < len(items):
                st.snap_seq += 1
                nxt = json.dumps({"offset": end, "rv": rv, "snap": st.snap_seq}).encode()
                meta["continue"] = base64.urlsafe_b64encode(nxt).decode()
                meta["remainingItemCount"] = len(items) - end
                st.snapshots[meta["continue"]] = (items, rv, end)
        api, kind, _ = RESOURCES[res]
        self.send_json(200, {"kind": kind + "List", "apiVersion": api, "metadata": meta, "items": items[offset:end]})

    def write_event(self, etype, obj):
        data = json.dumps({"type": etype, "object": obj}).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def peer_gone(self):
        """True if the client hung up (socket readable while we only write)."""
        sock = self.connection
        if not select.select([sock], [], [], 0)[0]:
            return False
        if isinstance(sock, ssl.SSLSocket):
            return True  # a watch client sends nothing but close_notify
        try:
            return sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def watch(self, res, ns, query):
        st = self.state
        match = make_matcher(res, ns, query)
        bookmarks = query.get("allowWatchBookmarks") in ("1", "true")
        try:
            deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
            since = query.get("resourceVersion") or "0"
            since = int(since)
        except ValueError as e:
            raise BadRequest(f"invalid watch parameter: {e}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with st.cond:
            epoch, seen_bm = st.epoch, st.bookmark_seq
            if since == 0:  # list-then-watch: current matching objects first
                initial = [o for _, o in sorted(st.objects[res].items()) if match(o)]
                cursor = len(st.history)
            elif since < st.history_start:
                initial, cursor = None, None
                oldest = st.history_start
            else:
                initial = []
                cursor = bisect.bisect_right(st.history, since, key=lambda e: e[0])
            st.open_watches += 1
        try:
            if initial is None:
                self.write_event("ERROR", status(410, f"too old resource version: {since} ({oldest})"))
            else:
                for obj in initial:
                    self.write_event("ADDED", with_kind(res, obj))
                self.stream(res, match, bookmarks, deadline, epoch, seen_bm, cursor)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (OSError, ssl.SSLError):
            self.close_connection = True  # client went away: end quietly
        finally:
            with st.cond:
                st.open_watches -= 1

    def stream(self, res, match, bookmarks, deadline, epoch, seen_bm, cursor):
        st = self.state
        while True:
            with st.cond:
                if (st.paused or cursor == len(st.history)) and seen_bm == st.bookmark_seq and epoch == st.epoch:
                    st.cond.wait(max(0.0, min(WAIT_S, deadline - time.monotonic())))
                if st.stopping or epoch != st.epoch:
                    return  # compacted (or shutting down): client must reconnect
                if st.paused:
                    batch = []  # a client that fell behind: its events wait (and compaction drops them)
                else:
                    batch, cursor = st.history[cursor:], len(st.history)
                bookmark_rv = st.rv if bookmarks and seen_bm != st.bookmark_seq else None
                seen_bm = st.bookmark_seq
            for _, ev_res, etype, obj, old in batch:
                if ev_res != res:
                    continue
                now, before = match(obj), old is not None and match(old)
                if etype == "MODIFIED" and now != before:
                    etype = "ADDED" if now else "DELETED"  # selector transition
                elif not now:
                    continue
                self.write_event(etype, with_kind(res, obj))
            if bookmark_rv is not None:
                api, kind, _ = RESOURCES[res]
                self.write_event("BOOKMARK", {"kind": kind, "apiVersion": api,
                                              "metadata": {"resourceVersion": str(bookmark_rv)}})
            if time.monotonic() >= deadline:
                return
            if not batch and bookmark_rv is None and self.peer_gone():
                raise ConnectionResetError

    def admin(self, parts):
        st, cmd = self.state, self.command
        if cmd == "GET" and parts == ["requests"]:
            return self.send_json(200, list(st.requests))
        if cmd == "GET" and parts == ["watches"]:
            return self.send_json(200, {"open": st.open_watches})
        if cmd == "POST" and parts == ["compact"]:
            with st.cond:
                st.history.clear()
                st.history_start = st.rv
                st.snapshots.clear()  # continue tokens expire with compaction, as in etcd
                st.epoch += 1
                st.paused = False
                st.cond.notify_all()
                return self.send_json(200, {"resourceVersion": str(st.rv)})
        if cmd == "POST" and parts == ["pause"]:
            with st.cond:
                st.paused = True
            return self.send_json(200, {"resourceVersion": str(st.rv)})
        if cmd == "POST" and parts == ["bookmark"]:
            with st.cond:
                st.bookmark_seq += 1
                st.cond.notify_all()
            return self.send_json(200, {"resourceVersion": str(st.rv)})
        res = parts[0]
        if res in RESOURCES:
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            if cmd == "PUT" and len(parts) == 1:
                obj = self.read_json()
                State.check(res, obj)
                with st.cond:
                    stored = st.put(res, obj, now)
                    st.cond.notify_all()
                return self.send_json(200, with_kind(res, stored))
            if cmd == "POST" and parts[1:] == ["bulk"]:
                objs = self.read_json()
                if not isinstance(objs, list):
                    raise BadRequest("bulk body must be a JSON list")
                for obj in objs:
                    State.check(res, obj)
                with st.cond:
                    for obj in objs:
                        st.put(res, obj, now)
                    st.cond.notify_all()
                return self.send_json(200, {"count": len(objs)})
            if cmd == "DELETE" and len(parts) == 3:
                ns = "" if parts[1] == "-" else parts[1]
                with st.cond:
                    gone = st.delete(res, ns, parts[2])
                    st.cond.notify_all()
                if gone is None:
                    return self.send_status(404, f'{res} "{parts[2]}" not found')
                return self.send_json(200, with_kind(res, gone))
        self.send_status(404, f"no admin route {cmd} /_admin/{'/'.join(parts)}")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # quiet: failed handshakes, resets


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    server = Server(("127.0.0.1", args.port), Handler)
    server.state = State(args.token)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        with server.state.cond:
            server.state.stopping = True
            server.state.cond.notify_all()
        server.server_close()


if __name__ == "__main__":
    main()

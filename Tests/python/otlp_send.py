#!/usr/bin/env python3
"""Convert a pprof file into one OTLP profiles export request (opentelemetry-proto 1.10,
v1development) and send it over HTTP (protobuf or JSON) or gRPC. Prints one JSON object.
Exit status: 0 = HTTP 200 / gRPC OK / --dry-run, 1 = call failed, 2 = undecodable pprof."""
import argparse
import ssl
import base64
import gzip
import json
import os
import sys
import time
import urllib.error
import urllib.request
import zlib

from google.protobuf import json_format
from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2 as svc
from opentelemetry.proto.common.v1 import common_pb2 as common
from opentelemetry.proto.profiles.v1development import profiles_pb2 as otlp

BUILD_ID_KEY = "process.executable.build_id.gnu"
TIMEOUT_S = 60


class PprofError(Exception):
    pass


def check(ok, msg, *args):
    if not ok:
        raise PprofError(msg % args)


# ---- protobuf wire-format reader -------------------------------------------------------
def read_varint(buf, pos):
    result = shift = 0
    while pos < len(buf) and shift < 70:
        b = buf[pos]
        result, pos, shift = result | (b & 0x7F) << shift, pos + 1, shift + 7
        if b < 0x80:
            return result, pos
    raise PprofError("truncated or overlong varint")


def fields(buf):
    """Yield (field_number, wire_type, value); value is an int or a memoryview slice."""
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        num, wt = key >> 3, key & 7
        check(num > 0 and wt in (0, 1, 2, 5), "bad field key %d", key)
        if wt == 0:
            val, pos = read_varint(buf, pos)
        else:
            size, pos = read_varint(buf, pos) if wt == 2 else ({1: 8, 5: 4}[wt], pos)
            check(pos + size <= len(buf), "truncated field %d", num)
            val, pos = buf[pos:pos + size], pos + size
        yield num, wt, val


def need(wt, want, val, what):
    check(wt == want, "%s: wire type %d, expected %d", what, wt, want)
    return val


def varints(wt, val, what):
    """Repeated varints, packed (wire type 2) or one per field (wire type 0)."""
    if wt == 0:
        return [val]
    out, pos, val = [], 0, need(wt, 2, val, what)
    while pos < len(val):
        v, pos = read_varint(val, pos)
        out.append(v)
    return out


def int64(v):
    return v - (1 << 64) if v >= 1 << 63 else v  # negative int64 varints are two's complement


# ---- pprof (perftools.profiles.Profile) decoding ---------------------------------------
# field number -> (name, kind); kind: "i64"/"u64" singular varint, "i64s"/"u64s" repeated varint
# (packed or not), "strs" repeated string, dict = repeated message, (dict,) = singular message.
VALUE_TYPE = {1: ("type", "i64"), 2: ("unit", "i64")}
LABEL = {1: ("key", "i64"), 2: ("str", "i64"), 3: ("num", "i64"), 4: ("num_unit", "i64")}
SAMPLE = {1: ("locs", "u64s"), 2: ("values", "i64s"), 3: ("labels", LABEL)}
MAPPING = {1: ("id", "u64"), 2: ("start", "u64"), 3: ("limit", "u64"), 4: ("offset", "u64"),
           5: ("filename", "i64"), 6: ("build_id", "i64")}
LINE = {1: ("function_id", "u64"), 2: ("line", "i64"), 3: ("column", "i64")}
LOCATION = {1: ("id", "u64"), 2: ("mapping_id", "u64"), 3: ("address", "u64"), 4: ("lines", LINE)}
FUNCTION = {1: ("id", "u64"), 2: ("name", "i64"), 3: ("system_name", "i64"),
            4: ("filename", "i64"), 5: ("start_line", "i64")}
PROFILE = {1: ("sample_types", VALUE_TYPE), 2: ("samples", SAMPLE), 3: ("mappings", MAPPING),
           4: ("locations", LOCATION), 5: ("functions", FUNCTION), 6: ("strings", "strs"),
           9: ("time_nanos", "i64"), 10: ("duration_nanos", "i64"),
           11: ("period_type", (VALUE_TYPE,)), 12: ("period", "i64")}
STRING_FIELDS = {"type", "unit", "filename", "build_id", "name", "system_name", "key", "str", "num_unit"}


def decode(buf, schema):
    out = {}
    for name, kind in schema.values():
        repeated = isinstance(kind, dict) or kind in ("i64s", "u64s", "strs")
        out[name] = [] if repeated else None if isinstance(kind, tuple) else 0
    for num, wt, v in fields(buf):
        if num not in schema:
            continue
        name, kind = schema[num]
        if isinstance(kind, dict):
            out[name].append(decode(need(wt, 2, v, name), kind))
        elif isinstance(kind, tuple):
            out[name] = decode(need(wt, 2, v, name), kind[0])
        elif kind == "strs":
            out[name].append(bytes(need(wt, 2, v, name)).decode("utf-8", "replace"))
        else:
            conv = int64 if kind.startswith("i64") else int
            if kind.endswith("s"):
                out[name] += [conv(x) for x in varints(wt, v, name)]
            else:
                out[name] = conv(need(wt, 0, v, name))
    return out


def decode_pprof(data):
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    check(data, "empty input")
    p = decode(memoryview(data), PROFILE)
    # The go tool pprof validity checks that matter for the conversion.
    st, ntypes = p["strings"], len(p["sample_types"])
    check(st and st[0] == "", "string_table[0] must be ''")
    for s in p["samples"]:
        check(len(s["values"]) == ntypes, "sample has %d values vs. %d types", len(s["values"]), ntypes)
    ids = {kind: {e["id"] for e in p[kind]} for kind in ("mappings", "locations", "functions")}
    for kind in ids:
        check(0 not in ids[kind], "found %s with reserved ID=0", kind[:-1])
    refs = [("mappings", l["mapping_id"]) for l in p["locations"] if l["mapping_id"]]
    refs += [("functions", n["function_id"]) for l in p["locations"] for n in l["lines"] if n["function_id"]]
    refs += [("locations", i) for s in p["samples"] for i in s["locs"]]
    for kind, i in refs:
        check(i in ids[kind], "%s ID %d not found", kind[:-1], i)
    objs = p["sample_types"] + [p["period_type"] or {}] + p["mappings"] + p["functions"]
    for obj in objs + [lb for s in p["samples"] for lb in s["labels"]]:
        for k in STRING_FIELDS & obj.keys():
            check(0 <= obj[k] < len(st), "string index %d out of range", obj[k])
    return p


# ---- OTLP request building ---------------------------------------------------------------
class Dictionary:
    """Fills the shared ProfilesDictionary; entry 0 of every table is the zero value."""

    def __init__(self, d):
        self.d = d
        for table in (d.mapping_table, d.location_table, d.function_table,
                      d.link_table, d.attribute_table, d.stack_table):
            table.add()
        d.string_table.append("")
        self.strings, self.attrs, self.stacks = {"": 0}, {}, {(): 0}

    def s(self, text):
        if text not in self.strings:
            self.strings[text] = len(self.d.string_table)
            self.d.string_table.append(text)
        return self.strings[text]

    def attr(self, key, value, unit=""):
        k = (key, isinstance(value, str), value, unit)
        if k not in self.attrs:
            self.attrs[k] = len(self.d.attribute_table)
            kind = "string_value" if isinstance(value, str) else "int_value"
            self.d.attribute_table.add(key_strindex=self.s(key), unit_strindex=self.s(unit),
                                       value=common.AnyValue(**{kind: value}))
        return self.attrs[k]

    def stack(self, location_indices):  # leaf first, as in pprof
        k = tuple(location_indices)
        if k not in self.stacks:
            self.stacks[k] = len(self.d.stack_table)
            self.d.stack_table.add(location_indices=k)
        return self.stacks[k]


def build_request(p, args):
    req = svc.ExportProfilesServiceRequest()
    dic, tables, st = Dictionary(req.dictionary), req.dictionary, p["strings"]

    def s(i):  # pprof string index -> OTLP string index
        return dic.s(st[i])

    def value_type(v):
        return otlp.ValueType(type_strindex=s(v["type"]), unit_strindex=s(v["unit"]))

    # Mappings, functions, locations: one OTLP entry per pprof entry, indexed by pprof ID.
    mapping_ix, function_ix, location_ix = {}, {}, {}
    for m in p["mappings"]:
        mapping_ix[m["id"]] = len(tables.mapping_table)
        attrs = [dic.attr(BUILD_ID_KEY, st[m["build_id"]])] if st[m["build_id"]] else []
        tables.mapping_table.add(memory_start=m["start"], memory_limit=m["limit"], file_offset=m["offset"],
                                 filename_strindex=s(m["filename"]), attribute_indices=attrs)
    for f in p["functions"]:
        function_ix[f["id"]] = len(tables.function_table)
        tables.function_table.add(name_strindex=s(f["name"]), system_name_strindex=s(f["system_name"]),
                                  filename_strindex=s(f["filename"]), start_line=f["start_line"])
    for loc in p["locations"]:
        location_ix[loc["id"]] = len(tables.location_table)
        out = tables.location_table.add(mapping_index=mapping_ix.get(loc["mapping_id"], 0),
                                        address=loc["address"])
        for ln in loc["lines"]:  # both formats list inlined callees first, caller last
            out.lines.add(function_index=function_ix.get(ln["function_id"], 0),
                          line=ln["line"], column=ln["column"])

    # Per pprof sample: stack, label attributes and link, shared by every profile.
    links = [tables.link_table.add(trace_id=os.urandom(16), span_id=os.urandom(8))
             for _ in range(args.link_spans)]
    rows = []
    for i, sample in enumerate(p["samples"]):
        attrs = []
        for lb in [] if args.strip_labels else sample["labels"]:
            if lb["str"]:  # as in pprof: numeric only when no string value is set
                attrs.append(dic.attr(st[lb["key"]], st[lb["str"]]))
            elif lb["num"] or lb["num_unit"]:
                attrs.append(dic.attr(st[lb["key"]], lb["num"], st[lb["num_unit"]]))
        link = 1 + i % len(links) if links else 0
        rows.append((dic.stack(location_ix[x] for x in sample["locs"]), attrs, link, sample["values"]))

    rp = req.resource_profiles.add()
    for k, v in dict([("service.name", args.service)] + args.resource).items():
        rp.resource.attributes.add(key=k, value=common.AnyValue(string_value=v))
    sp = rp.scope_profiles.add()
    sp.scope.name = "kiln-otlp-test"

    stamp = time.time_ns() if args.now or p["time_nanos"] <= 0 else p["time_nanos"]
    summary = {"profiles_sent": 0, "sample_types": [], "totals": {}, "span_totals": {}}
    for t, stype in enumerate(p["sample_types"]):  # one OTLP profile per pprof sample type
        name = "%s/%s" % (st[stype["type"]], st[stype["unit"]])
        summary["sample_types"].append(name)
        prof = sp.profiles.add(
            sample_type=value_type(stype), time_unix_nano=stamp, duration_nano=max(p["duration_nanos"], 0),
            period_type=value_type(p["period_type"]) if p["period_type"] else None, period=p["period"],
            profile_id=os.urandom(16))
        total = 0
        for stack, attrs, link, values in rows:
            if values[t] == 0:
                continue
            prof.samples.add(stack_index=stack, attribute_indices=attrs, link_index=link, values=[values[t]])
            total += values[t]
            if link:
                per_span = summary["span_totals"].setdefault(links[link - 1].span_id.hex(), {})
                per_span[name] = per_span.get(name, 0) + values[t]
        summary["totals"][name] = summary["totals"].get(name, 0) + total
    summary["profiles_sent"] = len(sp.profiles)
    return req, summary


def to_otlp_json(req):
    """OTLP/JSON: lowerCamelCase names; trace/span/profile IDs as lowercase hex, not base64."""
    d = json_format.MessageToDict(req)
    objs = [(link, ("traceId", "spanId")) for link in d.get("dictionary", {}).get("linkTable", [])]
    objs += [(pr, ("profileId",)) for rp in d.get("resourceProfiles", [])
             for sp in rp.get("scopeProfiles", []) for pr in sp.get("profiles", [])]
    for obj, keys in objs:
        for k in keys:
            if k in obj:
                obj[k] = base64.b64decode(obj[k]).hex()
    return json.dumps(d, separators=(",", ":")).encode()


# ---- transports --------------------------------------------------------------------------
def send_http(args, req, result):
    as_json = args.transport == "http-json"
    ctype = "application/json" if as_json else "application/x-protobuf"
    body = to_otlp_json(req) if as_json else req.SerializeToString()
    headers = {"Content-Type": ctype, "Accept": ctype}
    if args.tenant:
        headers["X-Scope-OrgID"] = args.tenant
    if args.gzip:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    url = args.url.rstrip("/") + "/v1development/profiles"
    handlers = [urllib.request.ProxyHandler({})]  # ignore *_proxy env
    if args.ca:
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=args.ca)))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(urllib.request.Request(url, body, headers), timeout=TIMEOUT_S) as r:
            status, data, enc = r.status, r.read(), r.headers.get("Content-Encoding", "")
    except urllib.error.HTTPError as e:
        status, data, enc = e.code, e.read(), e.headers.get("Content-Encoding", "")
    except (urllib.error.URLError, OSError) as e:
        result["body"] = "request failed: %s" % e
        return False
    result["status"] = status
    try:
        data = gzip.decompress(data) if enc.lower() == "gzip" else data
        check(status == 200, "HTTP %d", status)
        resp = svc.ExportProfilesServiceResponse()
        if as_json:
            json_format.Parse(data or b"{}", resp, ignore_unknown_fields=True)
        else:
            resp.ParseFromString(data)
        result.update(partial(resp))
    except Exception:  # error status or undecodable body: report the raw text
        result["body"] = data.decode("utf-8", "replace")
    return status == 200


def send_grpc(args, req, result):
    import grpc
    from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2_grpc as rpc
    options = [("grpc.enable_http_proxy", 0), ("grpc.max_receive_message_length", 64 << 20)]
    if args.ca:
        with open(args.ca, "rb") as f:
            channel = grpc.secure_channel(args.grpc, grpc.ssl_channel_credentials(root_certificates=f.read()), options=options)
    else:
        channel = grpc.insecure_channel(args.grpc, options=options)
    with channel:
        try:
            resp = rpc.ProfilesServiceStub(channel).Export(
                req, timeout=TIMEOUT_S,
                metadata=[("x-scope-orgid", args.tenant)] if args.tenant else None,
                compression=grpc.Compression.Gzip if args.gzip else None)
        except grpc.RpcError as e:
            result["grpc_code"], result["body"] = e.code().name, e.details() or ""
            return False
    result.update(partial(resp), grpc_code="OK")
    return True


def partial(resp):
    ps = resp.partial_success
    return {"rejected_profiles": ps.rejected_profiles, "error_message": ps.error_message}


# ---- main --------------------------------------------------------------------------------
def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("pprof", help="pprof file, gzip-compressed or raw protobuf")
    ap.add_argument("--service", default="kiln-otlp-test", help="resource service.name")
    ap.add_argument("--resource", action="append", default=[], metavar="K=V", help="repeatable")
    ap.add_argument("--transport", choices=("http-proto", "http-json", "grpc"), default="http-proto")
    ap.add_argument("--url", default="http://127.0.0.1:4040", help="HTTP base URL")
    ap.add_argument("--grpc", default="127.0.0.1:4317", metavar="HOST:PORT", help="gRPC target")
    ap.add_argument("--tenant", help="X-Scope-OrgID header / x-scope-orgid metadata")
    ap.add_argument("--ca", metavar="FILE", help="PEM CA to trust: TLS for gRPC (and HTTPS URLs)")
    ap.add_argument("--gzip", action="store_true", help="gzip the request")
    ap.add_argument("--link-spans", type=int, default=0, metavar="N", help="link sample i to span i%%N")
    ap.add_argument("--strip-labels", action="store_true", help="drop pprof sample labels")
    ap.add_argument("--now", action="store_true", help="timestamp with now, not time_nanos")
    ap.add_argument("--out", metavar="FILE", help="also write the serialized protobuf request")
    ap.add_argument("--dry-run", action="store_true", help="build the request but do not send")
    args = ap.parse_args(argv)
    pairs = [item.partition("=") for item in args.resource]
    if args.link_spans < 0 or any(not key or not sep for key, sep, _ in pairs):
        ap.error("--link-spans must be >= 0 and --resource must be key=value")
    args.resource = [(key, value) for key, _, value in pairs]
    return args


def main(argv=None):
    args = parse_args(argv)
    result = {"status": None, "grpc_code": None, "rejected_profiles": 0, "error_message": "",
              "profiles_sent": 0, "sample_types": [], "totals": {}, "span_totals": {}, "body": ""}
    try:
        with open(args.pprof, "rb") as fh:
            pprof = decode_pprof(fh.read())
    except (OSError, EOFError, zlib.error, PprofError) as e:  # the first three: bad gzip/file
        result["body"] = "cannot decode pprof: %s" % e
        print(json.dumps(result))
        return 2
    req, summary = build_request(pprof, args)
    serialized = req.SerializeToString()
    result.update(summary, request_bytes=len(serialized))
    if args.out:
        with open(args.out, "wb") as fh:
            fh.write(serialized)
    ok = args.dry_run or (send_grpc if args.transport == "grpc" else send_http)(args, req, result)
    print(json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

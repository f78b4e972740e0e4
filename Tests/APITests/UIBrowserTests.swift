import APICommon
import Foundation
import Hummingbird
import IngestAPI
import KilnProtos
import NIOCore
import QueryAPI
import Synchronization
import TestSupport
import Testing

// The web UI in a real browser: headless Chromium loads the page from a Hummingbird server with UIRoutes
// and a fake of the querier's JSON routes that answers flame graphs encoded here from known stacks. The
// rendered DOM must show those stacks' functions with their self and total values, computed here
// directly from the stacks (not from the encoding the UI decodes).

/// One sampled call stack, root first, and its value.
struct Stack: Sendable {
    var frames: [String]
    var value: Int64
}

/// Self and total per function, straight from the stacks: self where it is the leaf; total once per stack
/// that holds it (recursion counted once).
func expectedSelfAndTotal(_ stacks: [Stack]) -> [String: SelfAndTotal] {
    var out: [String: SelfAndTotal] = [:]
    for s in stacks {
        for name in Set(s.frames) { out[name, default: SelfAndTotal()].total += s.value }
        if let leaf = s.frames.last { out[leaf, default: SelfAndTotal()].selfValue += s.value }
    }
    return out
}

struct SelfAndTotal {
    var selfValue: Int64 = 0
    var total: Int64 = 0
}

/// A call tree, laid out and encoded the way Pyroscope's API sends flame graphs.
final class CallTree {
    let name: String
    var selfValue: Int64 = 0
    var children: [String: CallTree] = [:]

    init(_ name: String) { self.name = name }

    convenience init(_ stacks: [Stack]) {
        self.init("total")
        for s in stacks {
            var node = self
            for f in s.frames {
                if let c = node.children[f] {
                    node = c
                } else {
                    let c = CallTree(f)
                    node.children[f] = c
                    node = c
                }
            }
            node.selfValue += s.value
        }
    }

    var total: Int64 { selfValue + children.values.reduce(0) { $0 + $1.total } }
    var sortedChildren: [CallTree] { children.values.sorted { $0.name < $1.name } }
    var maxSelf: Int64 { children.values.reduce(selfValue) { max($0, $1.maxSelf) } }

    /// `{names, levels:[{values}], total, maxSelf}`: 4 numbers per node (x offset from the previous node's
    /// end on the level, total, self, name index); a node's children start after its self.
    static func flameGraph(_ root: CallTree) -> [String: Any] {
        var names: [String] = []
        var index: [String: Int] = [:]
        func nameIndex(_ n: String) -> Int {
            if let i = index[n] { return i }
            index[n] = names.count
            names.append(n)
            return names.count - 1
        }
        var levels: [[String: Any]] = []
        var level: [(CallTree, Int64)] = [(root, 0)]
        while !level.isEmpty {
            var values: [String] = []
            var next: [(CallTree, Int64)] = []
            var end: Int64 = 0
            for (node, x) in level {
                values += [x - end, node.total, node.selfValue, Int64(nameIndex(node.name))].map(String.init)
                end = x + node.total
                var cx = x + node.selfValue
                for c in node.sortedChildren {
                    next.append((c, cx))
                    cx += c.total
                }
            }
            levels.append(["values": values])
            level = next
        }
        return ["names": names, "levels": levels, "total": String(root.total), "maxSelf": String(root.maxSelf)]
    }

    /// The diff encoding: 7 numbers per node over the union of both trees, each side laid out on its own.
    static func diffFlameGraph(_ left: CallTree, _ right: CallTree) -> [String: Any] {
        var names: [String] = []
        var index: [String: Int] = [:]
        func nameIndex(_ n: String) -> Int {
            if let i = index[n] { return i }
            index[n] = names.count
            names.append(n)
            return names.count - 1
        }
        var levels: [[String: Any]] = []
        var level: [(CallTree, CallTree, Int64, Int64)] = [(left, right, 0, 0)]
        while !level.isEmpty {
            var values: [String] = []
            var next: [(CallTree, CallTree, Int64, Int64)] = []
            var endL: Int64 = 0
            var endR: Int64 = 0
            for (l, r, xl, xr) in level {
                values += [xl - endL, l.total, l.selfValue, xr - endR, r.total, r.selfValue, Int64(nameIndex(l.name))]
                    .map(String.init)
                endL = xl + l.total
                endR = xr + r.total
                var cl = xl + l.selfValue
                var cr = xr + r.selfValue
                for name in Set(l.children.keys).union(r.children.keys).sorted() {
                    let a = l.children[name] ?? CallTree(name)
                    let b = r.children[name] ?? CallTree(name)
                    next.append((a, b, cl, cr))
                    cl += a.total
                    cr += b.total
                }
            }
            levels.append(["values": values])
            level = next
        }
        return [
            "names": names, "levels": levels, "total": String(left.total + right.total),
            "maxSelf": String(max(left.maxSelf, right.maxSelf)),
            "leftTicks": String(left.total), "rightTicks": String(right.total),
        ]
    }
}

/// The querier's JSON routes with canned answers; remembers each request body by method.
final class FakeQuerier: Sendable {
    static let profileType = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
    static let service = "shop"
    private let merge: Data
    private let diff: Data
    private let requests = Mutex<[String: [Data]]>([:])

    init(single: [Stack], left: [Stack], right: [Stack]) throws {
        merge = try JSONSerialization.data(withJSONObject: ["flamegraph": CallTree.flameGraph(CallTree(single))])
        diff = try JSONSerialization.data(withJSONObject: ["flamegraph": CallTree.diffFlameGraph(CallTree(left), CallTree(right))])
    }

    func register(on router: Router<BasicRequestContext>) {
        router.post("/querier.v1.QuerierService/{method}") { request, context in
            let method = context.parameters.get("method") ?? ""
            let body = Data((try await request.body.collect(upTo: 1 << 20)).readableBytesView)
            self.requests.withLock { $0[method, default: []].append(body) }
            return try self.answer(method, body)
        }
    }

    func bodies(_ method: String) -> [[String: Any]] {
        requests.withLock { $0[method] ?? [] }.compactMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
    }

    private func answer(_ method: String, _ body: Data) throws -> Response {
        let json: Data
        switch method {
        case "ProfileTypes":
            json = try JSONSerialization.data(withJSONObject: [
                "profileTypes": [
                    [
                        "ID": Self.profileType, "name": "process_cpu", "sampleType": "cpu", "sampleUnit": "nanoseconds",
                        "periodType": "cpu", "periodUnit": "nanoseconds",
                    ]
                ]
            ])
        case "LabelValues":
            json = Data(#"{"names":["\#(Self.service)"]}"#.utf8)
        case "LabelNames":
            json = Data(#"{"names":["service_name"]}"#.utf8)
        case "SelectMergeStacktraces":
            json = merge
        case "Diff":
            json = diff
        case "SelectSeries":
            let request = try JSONSerialization.jsonObject(with: body) as? [String: Any] ?? [:]
            let start = Int64(request["start"] as? String ?? "") ?? 0
            let end = Int64(request["end"] as? String ?? "") ?? 0
            let step = max(Int64(((request["step"] as? Double) ?? 60) * 1000), 1000)
            let points = stride(from: start, through: end, by: Int(step)).enumerated().map { i, t in
                ["value": Double(1_000_000_000 + (i % 7) * 150_000_000), "timestamp": String(t)] as [String: Any]
            }
            json = try JSONSerialization.data(withJSONObject: [
                "series": [
                    [
                        "labels": [["name": "service_name", "value": Self.service]], "points": points,
                    ]
                ]
            ])
        default:
            json = Data(#"{"code":"unimplemented","message":"not in the fake"}"#.utf8)
            return Response(
                status: .notFound, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: json)))
        }
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: json)))
    }
}

/// Debian's headless Chromium, or `KILN_CHROMIUM`; tests that use it are marked `.requires(.chromium)`.
enum Chromium {
    static var path: String? { TestEnvironment.chromiumPath }

    /// Where screenshots and DOM dumps go: `.build/ui-screenshots/`.
    static var outputDir: URL {
        TestEnvironment.repoRoot.appendingPathComponent(".build/ui-screenshots", isDirectory: true)
    }

    /// Loads `url` at 1400x900, lets its scripts and requests finish, and returns the DOM; also writes
    /// `<name>.png` and `<name>.html` into `outputDir`.
    static func render(_ url: String, name: String) async throws -> String {
        guard let chromium = path else { throw TestFailure("no chromium binary") }
        try FileManager.default.createDirectory(at: outputDir, withIntermediateDirectories: true)
        let png = outputDir.appendingPathComponent("\(name).png")
        let html = outputDir.appendingPathComponent("\(name).html")
        try? FileManager.default.removeItem(at: png)
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-chromium-\(UInt32.random(in: 0 ... .max))")
        defer { try? FileManager.default.removeItem(at: profile) }
        // Virtual time stands still while requests are in flight, so the budget is spent only once the
        // page is idle: the dump shows the page after every answer arrived.
        let args = [
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile.path)",
            "--window-size=1400,900", "--virtual-time-budget=5000", "--screenshot=\(png.path)", "--dump-dom", url,
        ]
        // The DOM goes to stdout; a shell sends it to a file so Chromium's own chatter on stderr stays out.
        let child = try ChildProcess(
            URL(fileURLWithPath: "/bin/sh"),
            ["-c", #"exec "$0" "$@" > "$KILN_DOM_OUT" 2>/dev/null"#, chromium] + args,
            environment: ["KILN_DOM_OUT": html.path])
        let status = try await child.waitForExit(timeout: .seconds(90))
        guard status == 0, let dom = FileManager.default.contents(atPath: html.path) else {
            throw TestFailure("chromium exited with \(status) for \(url)")
        }
        return String(decoding: dom, as: UTF8.self)
    }
}

/// The function table's rows as the DOM shows them: each `<tr data-function=…>`'s data attributes.
func tableRows(_ dom: String) -> [[String: String]] {
    let row = try! NSRegularExpression(pattern: #"<tr ([^>]*data-function="[^>]*)>"#)
    let attribute = try! NSRegularExpression(pattern: #"([a-z-]+)="([^"]*)""#)
    return row.matches(in: dom, range: NSRange(dom.startIndex..., in: dom)).map { m in
        let tag = String(dom[Range(m.range(at: 1), in: dom)!])
        var attrs: [String: String] = [:]
        for a in attribute.matches(in: tag, range: NSRange(tag.startIndex..., in: tag)) {
            attrs[String(tag[Range(a.range(at: 1), in: tag)!])] = unescapeHTML(String(tag[Range(a.range(at: 2), in: tag)!]))
        }
        return attrs
    }
}

func unescapeHTML(_ s: String) -> String {
    s.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
        .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
        .replacingOccurrences(of: "&amp;", with: "&")
}

func attribute(_ name: String, ofElementWithID id: String, in dom: String) -> String? {
    let regex = try! NSRegularExpression(pattern: #"<[a-z]+ [^>]*id="\#(id)"[^>]*>"#)
    guard let m = regex.firstMatch(in: dom, range: NSRange(dom.startIndex..., in: dom)) else { return nil }
    let tag = String(dom[Range(m.range, in: dom)!])
    let value = try! NSRegularExpression(pattern: #" \#(name)="([^"]*)""#)
    guard let v = value.firstMatch(in: tag, range: NSRange(tag.startIndex..., in: tag)) else { return nil }
    return unescapeHTML(String(tag[Range(v.range(at: 1), in: tag)!]))
}

func bodyState(_ dom: String) -> String? {
    let regex = try! NSRegularExpression(pattern: #"<body [^>]*data-state="([a-z]+)""#)
    guard let m = regex.firstMatch(in: dom, range: NSRange(dom.startIndex..., in: dom)) else { return nil }
    return String(dom[Range(m.range(at: 1), in: dom)!])
}

let ms: Int64 = 1_000_000  // nanoseconds per millisecond: values are CPU time

/// A small service: request handling with a recursive parser, JSON encoding, compression, GC.
let baselineStacks: [Stack] = [
    Stack(frames: ["runtime.main", "main.main", "main.handle", "main.parse"], value: 700 * ms),
    Stack(frames: ["runtime.main", "main.main", "main.handle", "main.parse", "main.parse"], value: 150 * ms),
    Stack(frames: ["runtime.main", "main.main", "main.handle", "encoding/json.Marshal", "encoding/json.encode"], value: 400 * ms),
    Stack(frames: ["runtime.main", "main.main", "main.handle"], value: 60 * ms),
    Stack(frames: ["runtime.main", "main.main", "compress/flate.deflate"], value: 300 * ms),
    Stack(frames: ["runtime.gcBgMarkWorker", "runtime.scanobject"], value: 250 * ms),
]

/// The same service after a change: parsing got cheaper, compression much dearer, and a cache appeared.
let comparisonStacks: [Stack] = [
    Stack(frames: ["runtime.main", "main.main", "main.handle", "main.parse"], value: 200 * ms),
    Stack(frames: ["runtime.main", "main.main", "main.handle", "main.parse", "main.parse"], value: 50 * ms),
    Stack(frames: ["runtime.main", "main.main", "main.handle", "encoding/json.Marshal", "encoding/json.encode"], value: 420 * ms),
    Stack(frames: ["runtime.main", "main.main", "main.handle"], value: 60 * ms),
    Stack(frames: ["runtime.main", "main.main", "main.handle", "main.cacheLookup"], value: 100 * ms),
    Stack(frames: ["runtime.main", "main.main", "compress/flate.deflate"], value: 900 * ms),
    Stack(frames: ["runtime.gcBgMarkWorker", "runtime.scanobject"], value: 260 * ms),
]

@Suite(.requires(.chromium))
struct UIBrowserTests {
    @Test func singleViewTableShowsEachFunctionsSelfAndTotal() async throws {
        let fake = try FakeQuerier(single: baselineStacks, left: baselineStacks, right: comparisonStacks)
        let dom = try await withServer({
            UIRoutes.register(on: $0, assets: .bundled)
            fake.register(on: $0)
        }) { base in
            try await Chromium.render(base + "/", name: "single")
        }
        #expect(bodyState(dom) == "ready", "page state; error box: \(attribute("hidden", ofElementWithID: "error", in: dom) ?? "shown")")

        let expected = expectedSelfAndTotal(baselineStacks)
        let rows = tableRows(dom)
        #expect(Set(rows.compactMap { $0["data-function"] }) == Set(expected.keys))
        for row in rows {
            let name = row["data-function"] ?? ""
            #expect(Int64(row["data-self"] ?? "") == expected[name]?.selfValue, "self of \(name)")
            #expect(Int64(row["data-total"] ?? "") == expected[name]?.total, "total of \(name) (recursion counted once)")
        }
        // Sorted by self, largest first, as the table opens.
        let bySelf = expected.sorted {
            $0.value.selfValue != $1.value.selfValue ? $0.value.selfValue > $1.value.selfValue : $0.key < $1.key
        }
        #expect(rows.prefix(3).compactMap { $0["data-function"] } == bySelf.prefix(3).map(\.key))

        // The canvas's text alternative names the top function.
        let summary = attribute("aria-label", ofElementWithID: "flame-canvas", in: dom) ?? ""
        #expect(summary.contains(bySelf[0].key), "canvas summary: \(summary)")

        // The UI asked for the service's CPU profile over the last hour.
        let merge = fake.bodies("SelectMergeStacktraces")
        #expect(merge.count == 1)
        #expect(merge.first?["profileTypeID"] as? String == FakeQuerier.profileType)
        #expect(merge.first?["labelSelector"] as? String == #"{service_name="\#(FakeQuerier.service)"}"#)
        let span = (Int64(merge.first?["end"] as? String ?? "") ?? 0) - (Int64(merge.first?["start"] as? String ?? "") ?? 0)
        #expect(span == 3_600_000)
    }

    @Test func diffViewTableShowsBothSidesAndPutsTheLargestGrowthFirst() async throws {
        let fake = try FakeQuerier(single: baselineStacks, left: baselineStacks, right: comparisonStacks)
        let dom = try await withServer({
            UIRoutes.register(on: $0, assets: .bundled)
            fake.register(on: $0)
        }) { base in
            try await Chromium.render(base + "/?view=diff&from=now-2h&until=now", name: "diff")
        }
        #expect(bodyState(dom) == "ready")

        let left = expectedSelfAndTotal(baselineStacks)
        let right = expectedSelfAndTotal(comparisonStacks)
        let rows = tableRows(dom)
        #expect(Set(rows.compactMap { $0["data-function"] }) == Set(left.keys).union(right.keys))
        for row in rows {
            let name = row["data-function"] ?? ""
            #expect(Int64(row["data-left-self"] ?? "") == left[name]?.selfValue ?? 0, "baseline self of \(name)")
            #expect(Int64(row["data-right-self"] ?? "") == right[name]?.selfValue ?? 0, "comparison self of \(name)")
        }
        // The default sort is the change in each function's share of its side's self time.
        let leftTicks = Double(baselineStacks.reduce(0) { $0 + $1.value })
        let rightTicks = Double(comparisonStacks.reduce(0) { $0 + $1.value })
        let byGrowth: [(name: String, change: Double)] = Set(left.keys).union(right.keys).map { name in
            let before = Double(left[name]?.selfValue ?? 0) / leftTicks
            let after = Double(right[name]?.selfValue ?? 0) / rightTicks
            return (name, after - before)
        }.sorted { $0.change > $1.change }
        #expect(rows.first?["data-function"] == byGrowth.first?.name)
        #expect(rows.last?["data-function"] == byGrowth.last?.name)
        let summary = attribute("aria-label", ofElementWithID: "flame-canvas", in: dom) ?? ""
        #expect(summary.contains("Grew most: \(byGrowth[0].name)"), "canvas summary: \(summary)")

        // Baseline is the first half of the two hours, comparison the second, both for the service.
        let diff = fake.bodies("Diff")
        #expect(diff.count == 1)
        let l = diff.first?["left"] as? [String: Any] ?? [:]
        let r = diff.first?["right"] as? [String: Any] ?? [:]
        let n = { (d: [String: Any], k: String) in Int64(d[k] as? String ?? "") ?? -1 }
        #expect(n(l, "end") == n(r, "start") && n(l, "end") - n(l, "start") == 3_600_000 && n(r, "end") - n(r, "start") == 3_600_000)
        #expect(l["labelSelector"] as? String == #"{service_name="\#(FakeQuerier.service)"}"#)
        #expect(r["profileTypeID"] as? String == FakeQuerier.profileType)
    }
}

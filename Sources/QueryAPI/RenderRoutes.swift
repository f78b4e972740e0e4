import APICommon
import Foundation
import Hummingbird
import KilnFoundation
import KilnProtos
import ProfileModel
import Query

/// Pyroscope's legacy read API: `GET /pyroscope/render` (a flame graph and its timeline as flamebearer
/// JSON) and `GET /pyroscope/render-diff` (two selections as one "double" flamebearer).
enum RenderRoutes {
    static func register<Context: RequestContext>(on router: Router<Context>, api: QueryHandlers) {
        router.get("/pyroscope/render") { request, _ -> Response in
            await respond(request, api: api) { tenant in try await render(request, api: api, tenant: tenant) }
        }
        router.get("/pyroscope/render-diff") { request, _ -> Response in
            await respond(request, api: api) { tenant in try await renderDiff(request, api: api, tenant: tenant) }
        }
    }

    /// What a render answers: flamebearer JSON, or a Graphviz graph for `format=dot`.
    enum Answer {
        case json([String: Any])
        /// JSON already encoded (a `Codable` answer).
        case encoded(Data)
        case dot(String)
    }

    static func respond(_ request: Request, api: QueryHandlers, _ body: (String) async throws -> Answer) async -> Response {
        var tenant = TenantID.defaultTenant
        do {
            tenant = try api.options.access.tenant(request, endpoint: "render").get()
            switch try await body(tenant) {
            case .json(let object):
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
            case .encoded(let data):
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
            case .dot(let graph):
                return Response(
                    status: .ok, headers: [.contentType: "text/vnd.graphviz; charset=utf-8"],
                    body: .init(byteBuffer: ByteBuffer(string: graph)))
            }
        } catch let error as QueryError {
            if let limit = error.limit { LimitMetrics.queryRefused(limit, tenant: tenant) }
            return Connect.errorResponse(error.apiError)
        } catch let error as APIError {
            return Connect.errorResponse(error)
        } catch {
            return Connect.errorResponse(APIError(.unavailable, "render: \(error)"))
        }
    }

    struct Side {
        var query: ProfileQuery
        var range: ClosedRange<Int64>
        var selection: Selection
    }

    static func side(
        _ params: [String: String], query queryKey: String, from fromKey: String, until untilKey: String,
        tenant: String, api: QueryHandlers, now: Date = Date()
    ) throws -> Side {
        guard let text = params[queryKey], !text.isEmpty else {
            throw QueryError(
                .invalidArgument, "\(queryKey) is required, e.g. process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name=\"app\"}")
        }
        let query = try ProfileQuery(parsing: text)
        let until = try AtTime.parse(params[untilKey] ?? "now", now: now, name: untilKey)
        let from = try AtTime.parse(params[fromKey] ?? "now-1h", now: now, name: fromKey)
        let range = try api.checkedRange(fromMillis: from, untilMillis: until, tenant: tenant, names: (fromKey, untilKey))
        return Side(
            query: query, range: range,
            selection: Selection(tenant: tenant, profileType: query.profileType.id, selector: query.selector, time: range))
    }

    static func render(_ request: Request, api: QueryHandlers, tenant: String) async throws -> Answer {
        let params = FormQuery.parse(request.uri.query)
        let side = try side(params, query: "query", from: "from", until: "until", tenant: tenant, api: api)
        let format = params["format"] ?? "json"
        guard format == "json" || format == "dot" else {
            throw QueryError(.invalidArgument, "format \(format) is not supported (use json or dot)")
        }
        let maxNodes = api.maxNodes(Int64(params["max-nodes"] ?? params["maxNodes"] ?? ""), tenant: tenant)
        let (tree, names) = try await api.engine.mergeStacks(side.selection)
        if format == "dot" {
            return .dot(DotGraph.encode(tree, names: names, profileType: side.query.profileType, maxNodes: maxNodes))
        }
        let graph = FlameGraphLevels(tree: tree, nameTable: names, maxNodes: maxNodes)

        // The timeline: one value per step from `from`, 10 s at least, about a thousand points at most.
        let fromMillis = side.range.lowerBound / 1_000_000
        let untilMillis = side.range.upperBound / 1_000_000
        let stepSeconds = max(10, (untilMillis - fromMillis) / 1000 / 1000)
        let aggregation: QueryEngine.Aggregation = params["aggregation"] == "avg" ? .average : .sum
        let series = try await api.engine.timeSeries(
            side.selection, stepMillis: stepSeconds * 1000, groupBy: [],
            aggregation: aggregation, limit: nil, alignment: .stepStart)
        let buckets = Int((untilMillis - fromMillis) / (stepSeconds * 1000)) + 1
        var samples = [Double](repeating: 0, count: buckets)
        for s in series { for (t, v) in s.points { samples[max(0, min(buckets - 1, Int((t - fromMillis) / (stepSeconds * 1000))))] += v } }

        return .json([
            "version": 1,
            "flamebearer": ["names": graph.names, "levels": graph.levels, "numTicks": graph.total, "maxSelf": graph.maxSelf],
            "metadata": metadata(side.query.profileType, format: "single"),
            "timeline": ["startTime": fromMillis / 1000, "samples": samples.map { Int64($0) }, "durationDelta": stepSeconds],
        ])
    }

    static func renderDiff(_ request: Request, api: QueryHandlers, tenant: String) async throws -> Answer {
        let params = FormQuery.parse(request.uri.query)
        let left = try side(params, query: "leftQuery", from: "leftFrom", until: "leftUntil", tenant: tenant, api: api)
        let right = try side(params, query: "rightQuery", from: "rightFrom", until: "rightUntil", tenant: tenant, api: api)
        guard left.query.profileType == right.query.profileType else {
            throw QueryError(.invalidArgument, "leftQuery and rightQuery have different profile types")
        }
        let maxNodes = api.maxNodes(Int64(params["max-nodes"] ?? params["maxNodes"] ?? ""), tenant: tenant)
        let (tree, names) = try await api.engine.diff(left: left.selection, right: right.selection)
        let graph = FlameGraphLevels(tree: tree, nameTable: names, maxNodes: maxNodes)
        return .json([
            "version": 1,
            "flamebearer": ["names": graph.names, "levels": graph.levels, "numTicks": graph.total, "maxSelf": graph.maxSelf],
            "metadata": metadata(left.query.profileType, format: "double"),
            "leftTicks": graph.leftTicks,
            "rightTicks": graph.rightTicks,
        ])
    }

    /// Flamebearer metadata: units as Pyroscope names them; CPU time is in nanoseconds (sample rate 1e9).
    static func metadata(_ type: ProfileTypeID, format: String) -> [String: Any] {
        let units: String
        switch (type.sampleType, type.sampleUnit) {
        case (_, "nanoseconds") where type.name.contains("mutex") || type.name.contains("block"): units = "lock_nanoseconds"
        case ("contentions", _),
            (_, "count") where type.name.contains("mutex") || type.name.contains("block"):
            units = "lock_samples"
        case (_, "nanoseconds"): units = "samples"
        case (_, "bytes"): units = "bytes"
        case ("goroutine", _), ("goroutines", _): units = "goroutines"
        case (_, "count"): units = "objects"
        default: units = type.sampleUnit
        }
        return [
            "format": format, "spyName": "", "sampleRate": type.sampleUnit == "nanoseconds" ? 1_000_000_000 : 100,
            "units": units, "name": type.id,
        ]
    }
}

/// Pyroscope's `attime` forms: `now`, `now-1h` (any `DurationText`), Unix seconds, milliseconds or nanoseconds
/// (by magnitude), or RFC 3339. Returns Unix milliseconds.
enum AtTime {
    static func parse(_ text: String, now: Date, name: String) throws(QueryError) -> Int64 {
        let t = text.trimmingCharacters(in: .whitespaces)
        let nowMillis = Int64(now.timeIntervalSince1970 * 1000)
        if t == "now" { return nowMillis }
        if t.hasPrefix("now-"), let ago = DurationText.parse(String(t.dropFirst(4))), ago.components.seconds < Int64.max / 1000 {
            return nowMillis - ago.wholeMilliseconds
        }
        if let n = Int64(t), n >= 0 {
            switch n {
            case ..<100_000_000_000: return n * 1000  // seconds
            case ..<100_000_000_000_000: return n  // milliseconds
            default: return n / 1_000_000  // nanoseconds
            }
        }
        if let date = ISO8601DateFormatter().date(from: t) { return Int64(date.timeIntervalSince1970 * 1000) }
        throw QueryError(.invalidArgument, "\(name)=\"\(text)\" is not a time (now, now-1h, Unix seconds or ms, RFC 3339)")
    }
}

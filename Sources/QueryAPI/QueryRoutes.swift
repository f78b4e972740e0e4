import APICommon
import Blocks
import Foundation
import Hummingbird
import KilnFoundation
import KilnProtos
import Logging
import Metrics
import ProfileModel
import Query
import SwiftProtobuf

/// Pyroscope's query API over Connect unary (`POST /querier.v1.QuerierService/<Method>`, `application/proto`
/// or `application/json`, optionally gzip-compressed), as Grafana's Pyroscope data source calls it. Times
/// are Unix milliseconds; the tenant comes from `X-Scope-OrgID`. Errors use Connect's JSON error body.
public enum QueryRoutes {
    public static let servicePath = "/querier.v1.QuerierService/"
    /// The largest query request body read.
    static let maxRequestBytes = 4 << 20
    /// When a request has no start: how far back it looks (Pyroscope's default max lookback).
    static let defaultLookbackMillis: Int64 = 7 * 24 * 3600 * 1000

    public static func register<Context: RequestContext>(
        on router: Router<Context>, engine: QueryEngine, logger: Logger,
        options: QueryOptions = QueryOptions()
    ) {
        let api = QueryHandlers(engine: engine, logger: logger, options: options)
        unary(router, "ProfileTypes", api, .profileTypes, api.profileTypes)
        unary(router, "LabelNames", api, .labelNames, api.labelNames)
        unary(router, "LabelValues", api, .labelValues, api.labelValues)
        unary(router, "Series", api, .series, api.series)
        unary(router, "SelectMergeStacktraces", api, .selectMergeStacktraces, api.selectMergeStacktraces)
        unary(router, "SelectMergeProfile", api, .selectMergeProfile, api.selectMergeProfile)
        unary(router, "SelectMergeSpanProfile", api, .selectMergeSpanProfile, api.selectMergeSpanProfile)
        unary(router, "SelectSeries", api, .selectSeries, api.selectSeries)
        unary(router, "Diff", api, .diff, api.diff)
        unary(router, "GetProfileStats", api, .profileStats, api.profileStats)
        unary(router, "AnalyzeQuery", api, .analyzeQuery, api.analyzeQuery)
        unary(router, "SelectHeatmap", api, .selectHeatmap, api.selectHeatmap)
        RenderRoutes.register(on: router, api: api)
        RegressionRoutes.register(on: router, api: api)
        // Any other Connect method (vcs.v1, a newer RPC): `unimplemented`, which connect clients read as
        // "not offered", rather than a bare 404.
        router.add(middleware: UnservedMethods<Context>())
    }

    static func unary<Context: RequestContext, Req: SwiftProtobuf.Message, Resp: SwiftProtobuf.Message>(
        _ router: Router<Context>, _ method: String,
        _ api: QueryHandlers, _ fields: RequestFields, _ handler: @escaping @Sendable (Req, String) async throws -> Resp
    ) {
        unary(router, path: servicePath + method, access: api.options.access, fields: fields, handler)
    }

    /// A Connect unary method of the query side at `path`: the tenant authenticated, the request decoded
    /// with unknown and unhonoured fields refused, the handler's answer or error encoded.
    static func unary<Context: RequestContext, Req: SwiftProtobuf.Message, Resp: SwiftProtobuf.Message>(
        _ router: Router<Context>, path: String, access: TenantAccess, fields: RequestFields, maxRequestBytes: Int = maxRequestBytes,
        _ handler: @escaping @Sendable (Req, String) async throws -> Resp
    ) {
        let method = String(path.split(separator: "/").last ?? Substring(path))
        router.post(RouterPath(path)) { request, _ -> Response in
            let started = ContinuousClock.now
            var tenant = TenantID.defaultTenant
            let response: Response
            do {
                tenant = try access.tenant(request, endpoint: "query").get()
                let (message, codec) = try await Connect.message(request, limit: maxRequestBytes, as: Req.self, unknownFields: .refuse)
                try fields.check(message)
                response = try Connect.response(try await handler(message, tenant), codec: codec)
            } catch let error as APIError {
                response = Connect.errorResponse(error)
            } catch let error as QueryError {
                if let limit = error.limit { LimitMetrics.queryRefused(limit, tenant: tenant) }
                response = Connect.errorResponse(error.apiError)
            } catch {
                response = Connect.errorResponse(APIError(.unavailable, "\(path): \(error)"))
            }
            QueryMetrics.answered(method, status: response.status, after: .now - started)
            return response
        }
    }
}

/// How long the query API takes to answer: `kiln_query_request_seconds{method, outcome}`, outcome `ok` or
/// `error` (any answer but 200), so the pipeline dashboard shows query latency and errors per RPC.
enum QueryMetrics {
    static func answered(_ method: String, status: HTTPResponse.Status, after elapsed: Duration) {
        let outcome = status == .ok ? "ok" : "error"
        Metrics.Timer(label: "kiln_query_request_seconds", dimensions: [("method", method), ("outcome", outcome)]).record(duration: elapsed)
    }
}

/// Answers a POST to a path no route serves as Connect `unimplemented` naming the method.
struct UnservedMethods<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound && request.method == .post {
            return Connect.errorResponse(APIError(.unimplemented, "\(request.uri.path) is not served by Kiln"))
        }
    }
}

/// Who may query, and the per-tenant query limits.
public struct QueryOptions: Sendable {
    /// Open (tenant from `X-Scope-OrgID`) or the credentials of `--auth-file`.
    public var access: TenantAccess = .open
    /// Longest time range of one query (Kiln's default: 31 days; 0 = unlimited). Longer: 400.
    public var maxQueryLength: Duration = .seconds(31 * 24 * 3600)
    /// Largest flame graph a request may ask for (Pyroscope's `max-flamegraph-nodes-max`); larger requests
    /// are clamped to it, not refused.
    public var maxFlameGraphNodes: Int = FlameGraphLevels.maxMaxNodes
    public var overrides: LimitOverrides = .none

    public init() {}

    func maxQueryLengthMillis(tenant: String) -> Int64 {
        if let hours = overrides.value(.maxQueryLengthHours, tenant: tenant) { return Int64(min(hours, 1e9) * 3_600_000) }
        return maxQueryLength.components.seconds * 1000
    }

    /// The nodes a flame graph may have: what the request asks (Kiln's default when nothing), within the
    /// tenant's bound.
    func maxNodes(_ requested: Int64?, tenant: String) -> Int {
        min(FlameGraphLevels.resolveMaxNodes(requested), maxFlameGraphNodes(tenant: tenant))
    }

    func maxFlameGraphNodes(tenant: String) -> Int {
        let n = overrides.value(.maxFlameGraphNodes, tenant: tenant).map { Int(clamping: Int64(min($0, 1e12))) } ?? maxFlameGraphNodes
        return max(1, n)
    }
}

extension QueryError {
    static func exceeding(_ name: String, _ value: Double, _ message: String) -> QueryError {
        let shown = value == value.rounded() ? String(Int64(value)) : String(value)
        var e = QueryError(.invalidArgument, "\(message) (limit \(name) = \(shown))")
        e.limit = name
        return e
    }

    var apiError: APIError {
        switch kind {
        case .invalidArgument: APIError(.invalidArgument, message, limit: limit)
        case .tooLarge: APIError(.rateLimited, message, limit: limit)
        case .unavailable: APIError(.unavailable, message, limit: limit)
        }
    }
}

/// The RPCs, in terms of the query engine.
struct QueryHandlers: Sendable {
    let engine: QueryEngine
    let logger: Logger
    var options = QueryOptions()

    /// The request's time range in nanoseconds, within the tenant's `max_query_length_hours`.
    func range(startMillis: Int64, endMillis: Int64, tenant: String) throws(QueryError) -> ClosedRange<Int64> {
        let end = endMillis > 0 ? endMillis : Int64(Date().timeIntervalSince1970 * 1000)
        // Without a start: look back 7 days, or as far as the tenant may query.
        let maxMillis = options.maxQueryLengthMillis(tenant: tenant)
        let lookback = maxMillis > 0 ? min(QueryRoutes.defaultLookbackMillis, maxMillis) : QueryRoutes.defaultLookbackMillis
        let start = startMillis > 0 ? startMillis : end - lookback
        return try checkedRange(fromMillis: start, untilMillis: end, tenant: tenant, names: ("start", "end"))
    }

    func checkedRange(fromMillis start: Int64, untilMillis end: Int64, tenant: String, names: (String, String)) throws(QueryError)
        -> ClosedRange<Int64>
    {
        guard start <= end else { throw QueryError(.invalidArgument, "\(names.0) (\(start)) is after \(names.1) (\(end))") }
        guard end < Int64.max / 1_000_000, start > Int64.min / 1_000_000 else {
            throw QueryError(.invalidArgument, "\(names.0)/\(names.1) (\(start), \(end)) is out of range")
        }
        let maxMillis = options.maxQueryLengthMillis(tenant: tenant)
        if maxMillis > 0, end - start > maxMillis {
            throw QueryError.exceeding(
                "max_query_length_hours", Double(maxMillis) / 3_600_000,
                "the query time range of \(Self.hours(end - start)) is longer than allowed")
        }
        return start * 1_000_000...end * 1_000_000 + 999_999
    }

    static func hours(_ millis: Int64) -> String { String(format: "%.1fh", Double(millis) / 3_600_000) }

    /// The flame graph's node budget: the request's (default 8192), at most the tenant's `max_flamegraph_nodes`.
    func maxNodes(_ requested: Int64?, tenant: String) -> Int { options.maxNodes(requested, tenant: tenant) }

    static func selectors(_ texts: [String]) throws(QueryError) -> [LabelSelector] {
        var out: [LabelSelector] = []
        for t in texts where !t.isEmpty { out.append(try LabelSelector(parsing: t)) }
        return out
    }

    func selection(_ r: Querier_V1_SelectMergeStacktracesRequest, tenant: String) throws(QueryError) -> Selection {
        var s = try selection(type: r.profileTypeID, selector: r.labelSelector, start: r.start, end: r.end, tenant: tenant)
        s.spans = try Selection.spanIDs(r.spanSelector)
        s.profiles = try ProfileSelection.parse(r.profileIDSelector)
        return s
    }

    func selection(type: String, selector: String, start: Int64, end: Int64, tenant: String) throws(QueryError) -> Selection {
        guard ProfileTypeID(parsing: type) != nil else {
            throw QueryError(.invalidArgument, "profile_typeID \"\(type)\" is not name:sample_type:sample_unit:period_type:period_unit")
        }
        return Selection(
            tenant: tenant, profileType: type, selector: try LabelSelector(parsing: selector),
            time: try range(startMillis: start, endMillis: end, tenant: tenant))
    }

    func profileTypes(_ r: Querier_V1_ProfileTypesRequest, tenant: String) async throws -> Querier_V1_ProfileTypesResponse {
        var out = Querier_V1_ProfileTypesResponse()
        out.profileTypes = try await engine.profileTypes(
            tenant: tenant, time: try range(startMillis: r.start, endMillis: r.end, tenant: tenant)
        ).map { t in
            var p = Types_V1_ProfileType()
            p.id = t.id
            p.name = t.name
            p.sampleType = t.sampleType
            p.sampleUnit = t.sampleUnit
            p.periodType = t.periodType
            p.periodUnit = t.periodUnit
            return p
        }
        return out
    }

    func labelNames(_ r: Types_V1_LabelNamesRequest, tenant: String) async throws -> Types_V1_LabelNamesResponse {
        var out = Types_V1_LabelNamesResponse()
        out.names = try await engine.labelNames(
            tenant: tenant, selectors: try Self.selectors(r.matchers),
            time: try range(startMillis: r.start, endMillis: r.end, tenant: tenant))
        return out
    }

    func labelValues(_ r: Types_V1_LabelValuesRequest, tenant: String) async throws -> Types_V1_LabelValuesResponse {
        guard !r.name.isEmpty else { throw QueryError(.invalidArgument, "LabelValues needs a label name") }
        var out = Types_V1_LabelValuesResponse()
        out.names = try await engine.labelValues(
            tenant: tenant, name: r.name, selectors: try Self.selectors(r.matchers),
            time: try range(startMillis: r.start, endMillis: r.end, tenant: tenant))
        return out
    }

    func series(_ r: Querier_V1_SeriesRequest, tenant: String) async throws -> Querier_V1_SeriesResponse {
        let all = try await engine.seriesLabels(
            tenant: tenant, selectors: try Self.selectors(r.matchers),
            time: try range(startMillis: r.start, endMillis: r.end, tenant: tenant))
        var seen = Set<LabelSet>()
        var out = Querier_V1_SeriesResponse()
        for labels in all {
            let kept = r.labelNames.isEmpty ? labels : LabelSet(labels.labels.filter { r.labelNames.contains($0.name) })
            guard seen.insert(kept).inserted else { continue }
            var l = Types_V1_Labels()
            l.labels = Self.pairs(kept)
            out.labelsSet.append(l)
        }
        return out
    }

    static func pairs(_ labels: LabelSet) -> [Types_V1_LabelPair] {
        labels.labels.map { l in
            var p = Types_V1_LabelPair()
            p.name = l.name
            p.value = l.value
            return p
        }
    }

    /// The merged tree of a request, narrowed to a call site when the request carries one.
    func tree(_ r: Querier_V1_SelectMergeStacktracesRequest, tenant: String) async throws -> (StackTree, NameTable) {
        let (tree, names) = try await engine.mergeStacks(try selection(r, tenant: tenant))
        return (Self.narrowed(tree, names: names, selector: r.hasStackTraceSelector ? r.stackTraceSelector : nil), names)
    }

    static func narrowed(_ tree: StackTree, names: NameTable, selector: Types_V1_StackTraceSelector?) -> StackTree {
        guard let callSite = selector?.callSite, !callSite.isEmpty else { return tree }
        var table = names
        return tree.keeping(prefix: callSite.map { table.intern($0.name) })
    }

    /// The same for a frame-labelled tree: a call-site entry matches every line of its function.
    static func narrowed(_ tree: StackTree, frames: FrameTable, selector: Types_V1_StackTraceSelector?) -> StackTree {
        guard let callSite = selector?.callSite, !callSite.isEmpty else { return tree }
        return tree.keeping(prefixLength: callSite.count) { depth, label in frames[label].function.name == callSite[depth].name }
    }

    /// The selection merged frame by frame as a pprof profile: locations with file names and lines.
    func pprof(
        _ selection: Selection, profileType: String, selector: Types_V1_StackTraceSelector?, start: Int64, end: Int64, maxStacks: Int?
    ) async throws -> Google_V1_Profile {
        let (tree, frames) = try await engine.mergeFrames(selection)
        var profile = PprofExport.profile(
            Self.narrowed(tree, frames: frames, selector: selector), frames: frames, profileType: ProfileTypeID(parsing: profileType)!,
            start: start, end: end, maxStacks: maxStacks)
        profile.period = try await engine.period(selection)
        return profile
    }

    func selectMergeStacktraces(_ r: Querier_V1_SelectMergeStacktracesRequest, tenant: String) async throws
        -> Querier_V1_SelectMergeStacktracesResponse
    {
        var out = Querier_V1_SelectMergeStacktracesResponse()
        if r.format == .pprof {
            var p = Querier_V1_PprofProfile()
            p.profile = try await pprof(
                try selection(r, tenant: tenant), profileType: r.profileTypeID,
                selector: r.hasStackTraceSelector ? r.stackTraceSelector : nil,
                start: r.start, end: r.end, maxStacks: nil)
            out.pprof = p
            return out
        }
        let (tree, names) = try await tree(r, tenant: tenant)
        let maxNodes = maxNodes(r.hasMaxNodes ? r.maxNodes : nil, tenant: tenant)
        switch r.format {
        case .unspecified, .flamegraph:
            out.flamegraph = Self.flameGraph(FlameGraphLevels(tree: tree, nameTable: names, maxNodes: maxNodes))
        case .tree:
            out.tree = TreeEncoding.encode(tree, names: names, maxNodes: maxNodes)
        case .pprof:
            break  // answered above, frame by frame
        case .dot:
            out.dot = DotGraph.encode(tree, names: names, profileType: ProfileTypeID(parsing: r.profileTypeID)!, maxNodes: maxNodes)
        case .UNRECOGNIZED:
            throw APIError(
                .unsupportedField, "SelectMergeStacktraces format \(r.format) is not supported (use FLAMEGRAPH, TREE, DOT or PPROF)")
        }
        return out
    }

    static func flameGraph(_ g: FlameGraphLevels) -> Querier_V1_FlameGraph {
        var f = Querier_V1_FlameGraph()
        f.names = g.names
        f.levels = g.levels.map { values in
            var l = Querier_V1_Level()
            l.values = values
            return l
        }
        f.total = g.total
        f.maxSelf = g.maxSelf
        return f
    }

    /// The span profile of `span_selector`: only the samples those spans carried, merged as a flame graph
    /// (or tree).
    func selectMergeSpanProfile(_ r: Querier_V1_SelectMergeSpanProfileRequest, tenant: String) async throws
        -> Querier_V1_SelectMergeSpanProfileResponse
    {
        guard !r.spanSelector.isEmpty else { throw QueryError(.invalidArgument, "SelectMergeSpanProfile needs a span_selector") }
        guard [.unspecified, .flamegraph, .tree].contains(r.format) else {
            throw APIError(.unsupportedField, "SelectMergeSpanProfile format \(r.format) is not supported (use FLAMEGRAPH or TREE)")
        }
        // The same question as SelectMergeStacktraces with a span selector (what newer Grafana sends instead).
        var stacks = Querier_V1_SelectMergeStacktracesRequest()
        (stacks.profileTypeID, stacks.labelSelector, stacks.start, stacks.end) = (r.profileTypeID, r.labelSelector, r.start, r.end)
        (stacks.spanSelector, stacks.format) = (r.spanSelector, r.format)
        if r.hasMaxNodes { stacks.maxNodes = r.maxNodes }
        let merged = try await selectMergeStacktraces(stacks, tenant: tenant)
        var out = Querier_V1_SelectMergeSpanProfileResponse()
        if merged.hasFlamegraph { out.flamegraph = merged.flamegraph }
        out.tree = merged.tree
        return out
    }

    func selectMergeProfile(_ r: Querier_V1_SelectMergeProfileRequest, tenant: String) async throws -> Google_V1_Profile {
        var selection = try selection(type: r.profileTypeID, selector: r.labelSelector, start: r.start, end: r.end, tenant: tenant)
        selection.profiles = try ProfileSelection.parse(r.profileIDSelector)
        return try await pprof(
            selection, profileType: r.profileTypeID, selector: r.hasStackTraceSelector ? r.stackTraceSelector : nil,
            start: r.start, end: r.end, maxStacks: r.hasMaxNodes ? maxNodes(r.maxNodes, tenant: tenant) : nil)
    }

    /// What a query would read (Drilldown's query-cost hint), from block metadata and series tables. `query`
    /// is `<profile type>{selector}` or a bare selector (every profile type).
    func analyzeQuery(_ r: Querier_V1_AnalyzeQueryRequest, tenant: String) async throws -> Querier_V1_AnalyzeQueryResponse {
        let text = r.query.trimmingCharacters(in: .whitespaces)
        let (type, selector): (String?, LabelSelector) =
            if text.isEmpty || text.hasPrefix("{") {
                (nil, try LabelSelector(parsing: text))
            } else {
                try {
                    let q = try ProfileQuery(parsing: text)
                    return (q.profileType.id, q.selector)
                }()
            }
        let cost = try await engine.cost(
            tenant: tenant, profileType: type, selector: selector, time: try range(startMillis: r.start, endMillis: r.end, tenant: tenant))
        var scope = Querier_V1_QueryScope()
        scope.componentType = "Object storage blocks"
        // One kiln-query reads every block itself; there are no ingesters to ask.
        scope.componentCount = 1
        scope.blockCount = UInt64(cost.blocks)
        scope.seriesCount = UInt64(cost.series)
        scope.sampleCount = UInt64(cost.samples)
        scope.profileCount = UInt64(cost.profiles)
        scope.indexBytes = UInt64(cost.indexBytes)
        scope.profileBytes = UInt64(cost.profileBytes)
        scope.symbolBytes = UInt64(cost.symbolBytes)
        var out = Querier_V1_AnalyzeQueryResponse()
        out.queryScopes = [scope]
        out.queryImpact.totalBytesInTimeRange = UInt64(cost.bytesInRange)
        out.queryImpact.totalQueriedSeries = UInt64(cost.series)
        // Compaction removed duplicates when it wrote the blocks; a query never merges copies.
        out.queryImpact.deduplicationNeeded = false
        return out
    }

    func diff(_ r: Querier_V1_DiffRequest, tenant: String) async throws -> Querier_V1_DiffResponse {
        guard r.hasLeft, r.hasRight else { throw QueryError(.invalidArgument, "Diff needs a left and a right selection") }
        guard r.left.profileTypeID == r.right.profileTypeID else {
            throw QueryError(
                .invalidArgument, "Diff: the two sides have different profile types (\(r.left.profileTypeID), \(r.right.profileTypeID))")
        }
        let (tree, names) = try await engine.diff(
            left: try selection(r.left, tenant: tenant), right: try selection(r.right, tenant: tenant))
        for side in [r.left, r.right] where ![.unspecified, .flamegraph].contains(side.format) {
            throw APIError(.unsupportedField, "Diff answers a flame graph; format \(side.format) is not supported")
        }
        if r.left.hasMaxNodes, r.right.hasMaxNodes, r.left.maxNodes != r.right.maxNodes {
            throw QueryError(.invalidArgument, "Diff: the two sides ask for different max_nodes (\(r.left.maxNodes), \(r.right.maxNodes))")
        }
        let requested = r.left.hasMaxNodes ? r.left.maxNodes : (r.right.hasMaxNodes ? r.right.maxNodes : nil)
        let g = FlameGraphLevels(tree: tree, nameTable: names, maxNodes: maxNodes(requested, tenant: tenant))
        var f = Querier_V1_FlameGraphDiff()
        let merged = Self.flameGraph(g)
        (f.names, f.levels, f.total, f.maxSelf) = (merged.names, merged.levels, merged.total, merged.maxSelf)
        f.leftTicks = g.leftTicks
        f.rightTicks = g.rightTicks
        var out = Querier_V1_DiffResponse()
        out.flamegraph = f
        return out
    }

    func selectSeries(_ r: Querier_V1_SelectSeriesRequest, tenant: String) async throws -> Querier_V1_SelectSeriesResponse {
        let selection = try selection(type: r.profileTypeID, selector: r.labelSelector, start: r.start, end: r.end, tenant: tenant)
        guard r.step.isFinite, r.step > 0 else {
            throw QueryError(.invalidArgument, "SelectSeries needs a positive step in seconds, got \(r.step)")
        }
        let exemplars: Bool
        switch r.exemplarType {
        case .unspecified, .none: exemplars = false
        case .individual: exemplars = true
        default:
            // As Pyroscope: span exemplars are not offered.
            throw APIError(.unsupportedField, "SelectSeries exemplar_type \(r.exemplarType) is not supported (INDIVIDUAL is)")
        }
        let aggregation: QueryEngine.Aggregation = r.hasAggregation && r.aggregation == .average ? .average : .sum
        let series = try await engine.timeSeries(
            selection, stepMillis: max(1, Int64((r.step * 1000).rounded())), groupBy: r.groupBy,
            aggregation: aggregation, limit: r.hasLimit ? Int(clamping: r.limit) : nil, exemplars: exemplars)
        var out = Querier_V1_SelectSeriesResponse()
        out.series = series.map { s in
            var t = Types_V1_Series()
            t.labels = Self.pairs(s.labels)
            t.points = s.points.map { p in
                var point = Types_V1_Point()
                point.timestamp = p.0
                point.value = p.1
                if let e = s.exemplars[p.0] { point.exemplars = [Self.exemplar(e)] }
                return point
            }
            return t
        }
        return out
    }

    static func exemplar(_ e: QueryEngine.Exemplar) -> Types_V1_Exemplar {
        var out = Types_V1_Exemplar()
        out.profileID = e.id.description
        out.timestamp = e.timestampMillis
        out.value = e.value
        out.labels = pairs(e.labels)
        if let span = e.spanID {
            // 16 lowercase hex digits, as span_selector takes them.
            out.spanID = Hex.string(span)
        }
        return out
    }

    /// Individual profiles' or spans' totals over time and value (Grafana's heatmap), with each cell's largest
    /// as an exemplar when asked.
    func selectHeatmap(_ r: Querier_V1_SelectHeatmapRequest, tenant: String) async throws -> Querier_V1_SelectHeatmapResponse {
        let selection = try selection(type: r.profileTypeID, selector: r.labelSelector, start: r.start, end: r.end, tenant: tenant)
        guard r.step.isFinite, r.step > 0 else {
            throw QueryError(.invalidArgument, "SelectHeatmap needs a positive step in seconds, got \(r.step)")
        }
        guard [.unspecified, .individual, .span].contains(r.queryType) else {
            throw APIError(.unsupportedField, "SelectHeatmap query_type \(r.queryType) is not supported (INDIVIDUAL and SPAN are)")
        }
        let spans = r.queryType == .span
        // Exemplars name what the heatmap counts: profiles, or spans (then also the profile each begins in).
        let exemplars: Bool
        switch (r.exemplarType, spans) {
        case (.unspecified, _), (.none, _): exemplars = false
        case (.individual, false), (.span, true): exemplars = true
        default:
            throw QueryError(
                .invalidArgument,
                "SelectHeatmap exemplar_type \(r.exemplarType) does not go with query_type \(r.queryType) (INDIVIDUAL with INDIVIDUAL, SPAN with SPAN)"
            )
        }
        let heatmap = try await engine.heatmap(
            selection, stepMillis: max(1, Int64((r.step * 1000).rounded())), groupBy: r.groupBy,
            limit: r.hasLimit ? Int(clamping: r.limit) : nil, spans: spans, exemplars: exemplars)
        var out = Querier_V1_SelectHeatmapResponse()
        out.series = heatmap.series.map { s in
            var series = Types_V1_HeatmapSeries()
            series.labels = Self.pairs(s.labels)
            series.slots = s.slots.map { slot in
                var out = Types_V1_HeatmapSlot()
                out.timestamp = slot.timestamp
                out.yMin = heatmap.bucketStarts
                out.counts = slot.counts
                out.exemplars = slot.exemplars.map(Self.exemplar)
                return out
            }
            return series
        }
        return out
    }

    func profileStats(_ r: Types_V1_GetProfileStatsRequest, tenant: String) async throws -> Types_V1_GetProfileStatsResponse {
        let stats = try await engine.stats(tenant: tenant)
        var out = Types_V1_GetProfileStatsResponse()
        out.dataIngested = stats.dataIngested
        out.oldestProfileTime = stats.oldestMillis
        out.newestProfileTime = stats.newestMillis
        return out
    }
}

/// Pyroscope's `PROFILE_FORMAT_TREE` bytes: depth first from a virtual root; per node
/// `uvarint(len(name)) name uvarint(self) uvarint(children)`, with the same "other" folding as flame graphs.
enum TreeEncoding {
    static func encode(_ tree: StackTree, names: NameTable, maxNodes: Int) -> Data {
        let graph = FlameGraphLevels(tree: tree, nameTable: names, maxNodes: maxNodes)
        let nodes = graph.decodedNodes()
        // Children per node from the decoded levels (a child lies inside its parent's span).
        var children = [[Int]](repeating: [], count: nodes.count)
        var byLevel: [[Int]] = []
        for (i, n) in nodes.enumerated() {
            if byLevel.count == n.level { byLevel.append([]) }
            if n.level > 0, let p = byLevel[n.level - 1].last(where: { nodes[$0].x <= n.x && n.x < nodes[$0].x + nodes[$0].total }) {
                children[p].append(i)
            }
            byLevel[n.level].append(i)
        }
        var out: [UInt8] = []
        func uvarint(_ v: UInt64) { Varint.append(v, to: &out) }
        var stack: [Int] = nodes.isEmpty ? [] : [0]
        while let i = stack.popLast() {
            let name = i == 0 ? "" : nodes[i].name
            uvarint(UInt64(name.utf8.count))
            out.append(contentsOf: name.utf8)
            uvarint(UInt64(max(nodes[i].selfValue, 0)))
            uvarint(UInt64(children[i].count))
            stack.append(contentsOf: children[i].reversed())
        }
        return Data(out)
    }
}

/// A merged tree as a pprof profile (functions by name, one location per function), for
/// `SelectMergeProfile` and the `PPROF` format.
enum PprofExport {
    /// A frame-labelled tree as a pprof profile: one function per distinct function (name, system name, file,
    /// start line), one location per frame with its line, a sample per stack. With `maxStacks`, only that
    /// many of the largest stacks are kept; the others are summed into one sample whose only frame is
    /// `other`, so the totals stay the same. A location stored without lines comes back as its address in a
    /// mapping of its file; build IDs and the addresses of symbolized locations are not stored. The caller
    /// sets `period` (the series' own, from the blocks).
    static func profile(
        _ tree: StackTree, frames: FrameTable, profileType t: ProfileTypeID, start: Int64, end: Int64, maxStacks: Int? = nil
    ) -> Google_V1_Profile {
        var p = Google_V1_Profile()
        var strings = [""]
        var stringIndex: [String: Int64] = ["": 0]
        func intern(_ s: String) -> Int64 {
            if let i = stringIndex[s] { return i }
            strings.append(s)
            stringIndex[s] = Int64(strings.count - 1)
            return Int64(strings.count - 1)
        }
        var sampleType = Google_V1_ValueType()
        sampleType.type = intern(t.sampleType)
        sampleType.unit = intern(t.sampleUnit)
        p.sampleType = [sampleType]
        var period = Google_V1_ValueType()
        period.type = intern(t.periodType)
        period.unit = intern(t.periodUnit)
        p.periodType = period
        p.timeNanos = start * 1_000_000
        p.durationNanos = max(0, end - start) * 1_000_000
        var stacks = tree.stacks()
        var frames = frames
        if let maxStacks, stacks.count > maxStacks {
            stacks.sort { $0.value > $1.value }
            let other = stacks[max(0, maxStacks - 1)...].reduce(Int64(0)) { $0 + $1.value }
            stacks.removeLast(stacks.count - max(0, maxStacks - 1))
            let otherFrame = StackFrame(function: FunctionKey(name: "other", systemName: "other", filename: "", startLine: 0), line: 0)
            stacks.append((names: [frames.intern(otherFrame)], value: other))
        }
        var functionID: [FunctionKey: UInt64] = [:]
        var locationID: [Int32: UInt64] = [:]
        var mappingID: [String: UInt64] = [:]
        for (path, value) in stacks {
            var sample = Google_V1_Sample()
            for frameID in path.reversed() {
                if locationID[frameID] == nil, let (file, address) = unsymbolized(frames[frameID]) {
                    // Kiln stored the location as `file+0xaddress`: write it back as an address in its
                    // mapping, without lines, so pprof shows it as the original did.
                    var l = Google_V1_Location()
                    l.id = UInt64(p.location.count + 1)
                    l.address = address
                    if !file.isEmpty {
                        if mappingID[file] == nil {
                            var m = Google_V1_Mapping()
                            m.id = UInt64(p.mapping.count + 1)
                            m.filename = intern(file)
                            p.mapping.append(m)
                            mappingID[file] = m.id
                        }
                        l.mappingID = mappingID[file]!
                        let m = Int(l.mappingID) - 1
                        p.mapping[m].memoryLimit = max(p.mapping[m].memoryLimit, address + 1)
                    }
                    p.location.append(l)
                    locationID[frameID] = l.id
                }
                if locationID[frameID] == nil {
                    let frame = frames[frameID]
                    if functionID[frame.function] == nil {
                        var f = Google_V1_Function()
                        f.id = UInt64(p.function.count + 1)
                        f.name = intern(frame.function.name)
                        f.systemName = intern(frame.function.systemName)
                        f.filename = intern(frame.function.filename)
                        f.startLine = frame.function.startLine
                        p.function.append(f)
                        functionID[frame.function] = f.id
                    }
                    var l = Google_V1_Location()
                    l.id = UInt64(p.location.count + 1)
                    var line = Google_V1_Line()
                    line.functionID = functionID[frame.function]!
                    line.line = frame.line
                    l.line = [line]
                    p.location.append(l)
                    locationID[frameID] = l.id
                }
                sample.locationID.append(locationID[frameID]!)
            }
            sample.value = [value]
            p.sample.append(sample)
        }
        p.stringTable = strings
        return p
    }

    /// The mapping file and address of a frame the normaliser made from a location without lines: named
    /// `<file's last path component, or "unknown">+0x<hex address>`, filename the mapping's path, no line.
    static func unsymbolized(_ frame: StackFrame) -> (file: String, address: UInt64)? {
        let f = frame.function
        guard frame.line == 0, f.startLine == 0, f.name == f.systemName, let plus = f.name.range(of: "+0x", options: .backwards),
            let address = UInt64(f.name[plus.upperBound...], radix: 16)
        else { return nil }
        let base = f.name[..<plus.lowerBound]
        let lastComponent = f.filename.split(separator: "/").last.map(String.init) ?? f.filename
        guard f.filename.isEmpty ? base == "unknown" : base == lastComponent else { return nil }
        return (f.filename, address)
    }
}

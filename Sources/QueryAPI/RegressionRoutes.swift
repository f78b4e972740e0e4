import APICommon
import Foundation
import Hummingbird
import Query

/// `GET /kiln/v1/regressions`: which functions got more (or less) expensive between a baseline and a
/// comparison selection, with a significance test across their profiles (`QueryEngine.regressions`).
/// Parameters: `baselineQuery`, `baselineFrom`, `baselineUntil`, `comparisonQuery` (default: the
/// baseline's), `comparisonFrom`, `comparisonUntil` (times as `/pyroscope/render` takes them), and
/// optionally `alpha`, `minShareChange`, `limit`. The answer is `RegressionReport` as JSON.
enum RegressionRoutes {
    static let path = "/kiln/v1/regressions"
    static let parameters: Set<String> = [
        "baselineQuery", "baselineFrom", "baselineUntil", "comparisonQuery", "comparisonFrom", "comparisonUntil",
        "alpha", "minShareChange", "limit",
    ]

    static func register<Context: RequestContext>(on router: Router<Context>, api: QueryHandlers) {
        router.get(RouterPath(path)) { request, _ -> Response in
            await RenderRoutes.respond(request, api: api) { tenant in try await report(request, api: api, tenant: tenant) }
        }
    }

    static func report(_ request: Request, api: QueryHandlers, tenant: String) async throws -> RenderRoutes.Answer {
        var params = FormQuery.parse(request.uri.query)
        if let unknown = params.keys.filter({ !parameters.contains($0) }).sorted().first {
            throw QueryError(
                .invalidArgument, "\(path) does not take the parameter \(unknown) (it takes \(parameters.sorted().joined(separator: ", ")))"
            )
        }
        if params["comparisonQuery"] == nil { params["comparisonQuery"] = params["baselineQuery"] }
        let baseline = try RenderRoutes.side(
            params, query: "baselineQuery", from: "baselineFrom", until: "baselineUntil", tenant: tenant, api: api)
        let comparison = try RenderRoutes.side(
            params, query: "comparisonQuery", from: "comparisonFrom", until: "comparisonUntil", tenant: tenant, api: api)
        guard baseline.query.profileType == comparison.query.profileType else {
            throw QueryError(.invalidArgument, "baselineQuery and comparisonQuery have different profile types")
        }
        var options = RegressionOptions()
        options.alpha = try number(params, "alpha", default: options.alpha, in: 0...1)
        options.minShareChange = try number(params, "minShareChange", default: options.minShareChange, in: 0...1)
        options.limit = Int(try number(params, "limit", default: Double(options.limit), in: 1...1000))
        let report = try await api.engine.regressions(
            baseline: baseline.selection, comparison: comparison.selection,
            queries: (params["baselineQuery"]!, params["comparisonQuery"]!), unit: baseline.query.profileType.sampleUnit,
            options: options)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return .encoded(try encoder.encode(report))
    }

    static func number(_ params: [String: String], _ name: String, default value: Double, in range: ClosedRange<Double>) throws(QueryError)
        -> Double
    {
        guard let text = params[name] else { return value }
        guard let n = Double(text), range.contains(n) else {
            throw QueryError(.invalidArgument, "\(name)=\"\(text.prefix(64))\" is not a number in \(range.lowerBound)…\(range.upperBound)")
        }
        return n
    }
}

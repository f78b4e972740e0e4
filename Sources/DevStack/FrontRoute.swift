/// Where the front address (`kiln dev --listen`, default 127.0.0.1:4040) sends a request. Like Pyroscope's
/// single binary, one address takes pushes, queries and the UI, so an SDK's server address and Grafana's
/// data-source URL are the same.
public enum FrontRoute: Sendable, Equatable {
    /// Push ingest and scrape health: kiln-scraper.
    case scraper
    /// The query APIs, the legacy render endpoints and the web UI: kiln-query.
    case query
    /// `/ready` of the whole stack: 200 once every process is up.
    case readiness
    /// `/metrics` of the supervisor itself (children up, restarts).
    case supervisorMetrics

    /// Paths that kiln-scraper serves; every prefix ends with `/`, so `/ingestx` is not ingest.
    static let scraperPaths: Set<String> = ["/ingest", "/pyroscope/ingest", "/targets", "/v1development/profiles"]
    static let scraperPrefixes = ["/push.v1.PusherService/"]

    /// The route for a request path (without the query string). Everything that is not ingest, scrape
    /// health, `/ready` or `/metrics` belongs to kiln-query, which answers 404 for what it does not know.
    public static func route(path: String) -> FrontRoute {
        let path = normalized(path)
        switch path {
        case "/ready": return .readiness
        case "/metrics": return .supervisorMetrics
        default: break
        }
        if scraperPaths.contains(path) || scraperPrefixes.contains(where: { path.hasPrefix($0) }) { return .scraper }
        return .query
    }

    /// Drops the query string and a trailing slash (but keeps `/`), so `/ingest/?x` routes like `/ingest`.
    static func normalized(_ path: String) -> String {
        var p = Substring(path)
        if let q = p.firstIndex(where: { $0 == "?" || $0 == "#" }) { p = p[..<q] }
        if p.isEmpty { return "/" }
        while p.count > 1, p.hasSuffix("/") { p = p.dropLast() }
        return String(p)
    }
}

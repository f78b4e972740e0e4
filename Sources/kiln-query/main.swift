import ArgumentParser
import HTTPAPI
import KilnService
import ObjectStore
import Query

@main
struct Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-query",
        abstract: "Serves the Pyroscope-compatible query API and the web UI from the blocks in the object store.",
        discussion: """
        One HTTP server (--listen) serves the web UI at /, POST /querier.v1.QuerierService/<Method> (Connect, \
        application/proto or application/json), GET /pyroscope/render and /pyroscope/render-diff, /metrics and \
        /ready. Point Grafana's Pyroscope data source at http://<listen>/.
        """
    )

    @OptionGroup var service: ServiceOptions

    @Option(help: "Object store URL: file:///path or s3://bucket/prefix?endpoint=...&region=... [env: KILN_STORE] (default: \(StoreURLOption.defaultURL))")
    var store: String?

    @Option(help: "host:port serving the query API, the UI, /metrics and /ready. [env: KILN_LISTEN] (default: 127.0.0.1:4103)")
    var listen: String?

    @Option(help: "Seconds a tenant's block listing is reused before the store is listed again. [env: KILN_QUERY_LISTING_TTL] (default: 2)")
    var listingTtl: Double?

    @Option(help: "Blocks kept open in memory (least recently used evicted). [env: KILN_QUERY_OPEN_BLOCKS] (default: 512)")
    var openBlocks: Int?

    func run() async throws {
        let logger = try KilnLogging.bootstrap(service: "kiln-query", options: service)
        let registry = KilnMetrics.bootstrap()
        let readiness = Readiness(components: [:])
        let admin = AdminServer(registry: registry, readiness: readiness)
        let listenText = EnvironmentFallback.resolve(listen, env: "KILN_LISTEN")
            ?? EnvironmentFallback.resolve(service.adminListen, env: "KILN_ADMIN_LISTEN", default: "127.0.0.1:4103")
        let address = try ListenAddress(parsing: listenText)

        var options = QueryEngineOptions()
        if let text = EnvironmentFallback.resolve(listingTtl.map { String($0) }, env: "KILN_QUERY_LISTING_TTL") {
            guard let seconds = Double(text), seconds >= 0 else { throw ServiceConfigurationError("--listing-ttl: \"\(text)\" is not a number of seconds") }
            options.listingTTL = .milliseconds(Int64(seconds * 1000))
        }
        if let text = EnvironmentFallback.resolve(openBlocks.map(String.init), env: "KILN_QUERY_OPEN_BLOCKS") {
            guard let n = Int(text), n > 0 else { throw ServiceConfigurationError("--open-blocks: \"\(text)\" is not a positive integer") }
            options.openBlocks = n
        }
        let storeURL = StoreURLOption.resolve(store)
        let engine = QueryEngine(store: try makeObjectStore(url: storeURL, logger: logger), options: options, logger: logger)
        QueryRoutes.register(on: admin.router, engine: engine, logger: logger)
        UIRoutes.register(on: admin.router)
        logger.info("serving queries", metadata: ["store": "\(storeURL)", "listen": "\(listenText)"])
        try await ServiceRunner.run([admin.application(listen: address, logger: logger)], logger: logger)
    }
}

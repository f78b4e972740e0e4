import APICommon
import ArgumentParser
import Foundation
import KilnService
import ObjectStore
import Query
import QueryAPI
import Recording

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
    @OptionGroup var access: AccessOptions

    @Option(
        help:
            "Object store URL: file:///path or s3://bucket/prefix?endpoint=...&region=... [env: KILN_STORE] (default: \(StoreURLOption.defaultURL))"
    )
    var store: String?

    @Option(help: "host:port serving the query API, the UI, /metrics and /ready. [env: KILN_LISTEN] (default: 127.0.0.1:4103)")
    var listen: String?

    @Option(help: "Seconds a tenant's block listing is reused before the store is listed again. [env: KILN_QUERY_LISTING_TTL] (default: 2)")
    var listingTtl: Double?

    @Option(help: "Blocks kept open in memory (least recently used evicted). [env: KILN_QUERY_OPEN_BLOCKS] (default: 512)")
    var openBlocks: Int?

    @Option(help: "Longest time range of one query, in hours; 0 = unlimited. [env: KILN_QUERY_MAX_LENGTH_HOURS] (default: 744)")
    var maxQueryLengthHours: Double?

    @Option(
        help:
            "Largest flame graph (nodes) a request may ask for; larger requests are clamped. [env: KILN_QUERY_MAX_NODES] (default: 1048576)"
    )
    var maxNodes: Int?

    @Option(
        help:
            "JSON file of provisioned recording rules: tenant → list of rules in the API's JSON form; listed as provisioned, not editable through the API. [env: KILN_RECORDING_RULES_FILE] (default: none)"
    )
    var recordingRulesFile: String?

    @Flag(
        name: .customLong("ruler-running"),
        help:
            "A kiln-ruler evaluates this store's recording rules: Grafana's Profiles Drilldown is told it may offer metrics from profiles. [env: KILN_RULER_RUNNING=1]"
    )
    var rulerRunningFlag = false

    var rulerRunning: Bool { rulerRunningFlag || ProcessInfo.processInfo.environment["KILN_RULER_RUNNING"] == "1" }

    func run() async throws {
        let process = try ServiceBootstrap.start(
            name: "kiln-query", options: service, role: .servesRequests, listenFlag: listen,
            defaultListen: "127.0.0.1:4103")
        let logger = process.logger

        var options = QueryEngineOptions()
        if let seconds = try EnvironmentFallback.nonNegative(listingTtl, env: "KILN_QUERY_LISTING_TTL", setting: "--listing-ttl") {
            options.listingTTL = .milliseconds(Int64(seconds * 1000))
        }
        options.openBlocks = try EnvironmentFallback.integer(
            openBlocks, env: "KILN_QUERY_OPEN_BLOCKS", default: options.openBlocks, setting: "--open-blocks")
        let storeURL = StoreURLOption.resolve(store)
        let objectStore = try makeObjectStore(url: storeURL, logger: logger)
        let engine = QueryEngine(store: objectStore, options: options, logger: logger)

        var queryOptions = QueryOptions()
        if let hours = try EnvironmentFallback.nonNegative(
            maxQueryLengthHours, env: "KILN_QUERY_MAX_LENGTH_HOURS", setting: "--max-query-length-hours")
        {
            guard hours < 1e9 else { throw ServiceConfigurationError("--max-query-length-hours: \(hours) is not a number of hours") }
            queryOptions.maxQueryLength = .seconds(Int64(hours * 3600))
        }
        queryOptions.maxFlameGraphNodes = try EnvironmentFallback.integer(
            maxNodes, env: "KILN_QUERY_MAX_NODES", default: queryOptions.maxFlameGraphNodes,
            setting: "--max-nodes")
        if let path = access.resolvedAuthFile {
            queryOptions.access = TenantAccess(credentials: try Credentials.load(contentsOf: URL(fileURLWithPath: path)))
        }
        if let path = access.resolvedLimitsFile { queryOptions.overrides = try LimitOverrides.load(contentsOf: URL(fileURLWithPath: path)) }
        let concurrency = try access.resolvedConcurrency()
        process.admin.router.add(
            middleware: RequestAdmission(
                limits: .init(total: concurrency.total, perTenant: concurrency.perTenant, bodyBytes: concurrency.bodyBytes)))
        QueryRoutes.register(on: process.admin.router, engine: engine, logger: logger, options: queryOptions)
        SettingsRoutes.register(on: process.admin.router, settings: TenantSettings(store: objectStore), access: queryOptions.access)
        let provisionedRules = try EnvironmentFallback.resolve(recordingRulesFile, env: "KILN_RECORDING_RULES_FILE").map {
            try RecordingRules.provisioned(file: $0)
        }
        // A rule's group_by is measured on the tenant's last 24 hours of series when it is written.
        RecordingRuleRoutes.register(
            on: process.admin.router,
            rules: RecordingRules(
                store: objectStore, provisioned: provisionedRules ?? [:], groupCount: RecordingRules.groupCount(engine: engine)),
            access: queryOptions.access)
        AdHocRoutes.register(
            on: process.admin.router, profiles: AdHocProfiles(store: objectStore), access: queryOptions.access, options: queryOptions)
        FeatureFlagRoutes.register(on: process.admin.router, access: queryOptions.access, rulerRunning: rulerRunning)
        UIRoutes.register(on: process.admin.router, access: queryOptions.access)
        logger.info(
            "query access",
            metadata: [
                "authentication": "\(queryOptions.access.credentials.map { "\($0.entries.count) credentials" } ?? "off")",
                "tenant_overrides": "\(queryOptions.overrides.tenants.count)",
            ])
        logger.info("serving queries", metadata: ["store": "\(storeURL)", "listen": "\(process.listen)"])
        try await objectStore.shutDown { try await process.run([]) }
    }
}

import ArgumentParser
import Blocks
import CompactorService
import KafkaService
import KilnService
import ObjectStore
import ServiceLifecycle

@main
struct Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-compactor",
        abstract: "Cuts per-tenant Parquet blocks from normalized batches, uploads them, compacts and applies retention."
    )

    @OptionGroup var service: ServiceOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var topics: TopicOptions

    @Option(
        help:
            "Object store URL: file:///path or s3://bucket/prefix?endpoint=...&region=... [env: KILN_STORE] (default: file://./data/blocks)"
    )
    var store: String?

    @Option(help: "Consumer group of the compactors. [env: KILN_COMPACTOR_GROUP] (default: kiln-compactor)")
    var group: String?

    @Option(
        help:
            "Cut a head once its first batch is this old (e.g. 90s, 5m; Go durations plus d, w, y). [env: KILN_MAX_BLOCK_AGE] (default: 5m)"
    )
    var maxBlockAge: String?

    @Option(help: "Cut a head once it holds about this many bytes in memory. [env: KILN_MAX_BLOCK_BYTES] (default: 268435456)")
    var maxBlockBytes: Int?

    @Option(help: "Cut a head once it holds this many samples. [env: KILN_MAX_BLOCK_SAMPLES] (default: 8000000)")
    var maxBlockSamples: Int?

    @Option(help: "Blocks created this recently are checked for duplicates on start and rebalance. [env: KILN_DEDUP_HORIZON] (default: 6h)")
    var dedupHorizon: String?

    @Option(help: "Run level compaction, cleanup and retention in the background: on or off. [env: KILN_COMPACTION] (default: on)")
    var compaction: String?

    @Option(help: "Time between maintenance passes. [env: KILN_COMPACTION_INTERVAL] (default: 1m)")
    var compactionInterval: String?

    @Option(
        help: "Delete blocks whose newest sample is older than this (e.g. 30d); off keeps everything. [env: KILN_RETENTION] (default: off)")
    var retention: String?

    @Option(
        help:
            "Rewrite blocks whose newest sample is older than this per minute; off keeps full resolution (whatever --per-hour-after says). [env: KILN_DOWNSAMPLE_AFTER] (default: 7d)"
    )
    var downsampleAfter: String?

    @Option(
        help:
            "Rewrite blocks whose newest sample is older than this per hour; off stops at per minute. [env: KILN_PER_HOUR_AFTER] (default: 30d)"
    )
    var perHourAfter: String?

    @Option(
        help: ArgumentHelp(
            "One tenant's ages instead of the three above, as TENANT=PER_MINUTE_AFTER/PER_HOUR_AFTER/RETENTION, each a duration or off (repeatable; e.g. acme=3d/14d/90d).",
            valueName: "tenant-ages"))
    var tenantRetention: [String] = []

    @Option(help: "Keep superseded blocks this long after marking them. [env: KILN_DELETION_DELAY] (default: 2h)")
    var deletionDelay: String?

    @Option(
        help:
            "How long a compactor's lease on a tenant's maintenance lasts unless renewed; a crashed replica's tenants move to another after this. [env: KILN_COMPACTION_LEASE] (default: 5m)"
    )
    var compactionLease: String?

    func run() async throws {
        let process = try ServiceBootstrap.start(
            name: "kiln-compactor", options: service,
            pending: ["kafka": "connecting to Kafka", "store": "checking the block store"],
            defaultListen: "127.0.0.1:4102")
        let logger = process.logger
        let readiness = process.readiness
        let kafkaConfig = try kafka.kafkaConfig(clientID: "kiln-compactor")
        try await topics.ensure([topics.normalized], config: kafkaConfig, logger: logger)
        let objectStore = try makeObjectStore(url: StoreURLOption.resolve(store), logger: logger)

        var cut = CutPolicy()
        cut.maxAge = try EnvironmentFallback.duration(maxBlockAge, env: "KILN_MAX_BLOCK_AGE", default: "5m", setting: "--max-block-age")
        cut.maxBytes = try EnvironmentFallback.integer(
            maxBlockBytes, env: "KILN_MAX_BLOCK_BYTES", default: cut.maxBytes, setting: "--max-block-bytes")
        cut.maxSamples = try EnvironmentFallback.integer(
            maxBlockSamples, env: "KILN_MAX_BLOCK_SAMPLES", default: cut.maxSamples,
            setting: "--max-block-samples")
        let horizon = try EnvironmentFallback.duration(dedupHorizon, env: "KILN_DEDUP_HORIZON", default: "6h", setting: "--dedup-horizon")

        let stage = try CompactorStage(
            configuration: .init(
                normalizedTopic: topics.normalized,
                groupID: EnvironmentFallback.resolve(group, env: "KILN_COMPACTOR_GROUP", default: "kiln-compactor"),
                cut: cut, dedupHorizon: horizon),
            kafka: kafkaConfig, store: objectStore, logger: logger,
            onReady: {
                readiness.markReady("kafka")
                readiness.markReady("store")
            },
            onStoreProblem: { problem in
                if let problem { readiness.markNotReady("store", reason: problem) } else { readiness.markReady("store") }
            })
        let probe = KafkaHealthProbe(
            config: kafkaConfig, topics: [topics.normalized], topicOptions: topics, readiness: readiness, logger: logger)
        var services: [any Service] = [probe, stage]

        let compactionSwitch = EnvironmentFallback.resolve(compaction, env: "KILN_COMPACTION", default: "on")
        guard ["on", "off"].contains(compactionSwitch) else {
            throw ServiceConfigurationError("--compaction must be on or off, not \(compactionSwitch)")
        }
        if compactionSwitch == "on" {
            var config = CompactionConfig()
            // A merge holds at most what an ingest head may hold.
            config.maxHeadBytes = cut.maxBytes
            func age(_ flag: String?, env: String, default fallback: String, setting: String) throws -> Duration? {
                let text = EnvironmentFallback.resolve(flag, env: env, default: fallback)
                return text == "off" ? nil : try EnvironmentFallback.duration(text, env: env, default: fallback, setting: setting)
            }
            config.retention = try age(retention, env: "KILN_RETENTION", default: "off", setting: "--retention")
            config.perMinuteAfter = try age(downsampleAfter, env: "KILN_DOWNSAMPLE_AFTER", default: "7d", setting: "--downsample-after")
            config.perHourAfter = try age(perHourAfter, env: "KILN_PER_HOUR_AFTER", default: "30d", setting: "--per-hour-after")
            for text in tenantRetention {
                let (tenant, ages) = try ResolutionAges.parseTenantAges(text)
                config.tenantAges[tenant] = ages
            }
            config.deletionDelay = try EnvironmentFallback.duration(
                deletionDelay, env: "KILN_DELETION_DELAY", default: "2h", setting: "--deletion-delay")
            config.leaseDuration = try EnvironmentFallback.duration(
                compactionLease, env: "KILN_COMPACTION_LEASE", default: "5m",
                setting: "--compaction-lease")
            let interval = try EnvironmentFallback.duration(
                compactionInterval, env: "KILN_COMPACTION_INTERVAL", default: "1m",
                setting: "--compaction-interval")
            services.append(CompactionService(compactor: Compactor(store: objectStore, config: config, logger: logger), interval: interval))
        }
        logger.info("block store", metadata: ["store": "\(objectStore.location)", "compaction": "\(compactionSwitch)"])
        try await objectStore.shutDown { try await process.run(services) }
    }
}

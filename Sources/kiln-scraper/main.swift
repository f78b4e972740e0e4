import ArgumentParser
import Foundation
import HTTPAPI
import Hummingbird
import KafkaClient
import KilnService
import Logging
import ProfileModel
import Records
import Scrape
import ServiceLifecycle
import Stages

@main
struct Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-scraper",
        abstract: "Scrapes pprof endpoints, serves the push ingest APIs and publishes raw profiles to Kafka.",
        discussion: """
        One HTTP server (--listen) serves POST /ingest, /pyroscope/ingest, /push.v1.PusherService/Push, \
        GET /targets, /metrics and /ready. Without --config only push ingest runs.
        """
    )

    @OptionGroup var service: ServiceOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var topics: TopicOptions
    @OptionGroup var access: AccessOptions

    @Option(help: "Alloy configuration file with pyroscope.scrape components. [env: KILN_SCRAPE_CONFIG] (default: none, push ingest only)")
    var config: String?

    @Option(help: "host:port serving push ingest, /targets, /metrics and /ready. [env: KILN_LISTEN] (default: 127.0.0.1:4100)")
    var listen: String?

    @Option(help: "Scrape only the targets of shard i of n (i/n, 0-based). [env: KILN_SCRAPE_SHARD] (default: 0/1)")
    var shard: String?

    @Option(help: "Largest request body in bytes. [env: KILN_INGEST_MAX_BODY_BYTES] (default: 67108864)")
    var ingestMaxBodyBytes: Int?

    @Option(help: "Largest profile after decompression, in bytes. [env: KILN_INGEST_MAX_PROFILE_BYTES] (default: 16777216)")
    var ingestMaxProfileBytes: Int?

    @Option(help: "Per-tenant ingest rate in MiB/s of decompressed profile; 0 = unlimited. [env: KILN_INGEST_RATE_MB] (default: 32)")
    var ingestRateMb: Double?

    @Option(help: "Per-tenant ingest burst in MiB. [env: KILN_INGEST_BURST_MB] (default: 64)")
    var ingestBurstMb: Double?

    @Option(help: "Seconds a push waits for Kafka's acknowledgement before 503. [env: KILN_INGEST_PUBLISH_TIMEOUT] (default: 15)")
    var ingestPublishTimeout: Double?

    @Option(help: "Active series per tenant (label sets pushed within the last hour); 0 = unlimited. [env: KILN_INGEST_MAX_SERIES] (default: 5000)")
    var ingestMaxSeries: Int?

    @Option(help: "Label names per pushed series. [env: KILN_INGEST_MAX_LABEL_NAMES] (default: 30)")
    var ingestMaxLabelNames: Int?

    func run() async throws {
        let logger = try KilnLogging.bootstrap(service: "kiln-scraper", options: service)
        let registry = KilnMetrics.bootstrap()
        let readiness = Readiness(components: ["kafka": "connecting to Kafka"])
        let admin = AdminServer(registry: registry, readiness: readiness)
        let listenText = EnvironmentFallback.resolve(listen, env: "KILN_LISTEN")
            ?? EnvironmentFallback.resolve(service.adminListen, env: "KILN_ADMIN_LISTEN", default: "127.0.0.1:4100")
        let address = try ListenAddress(parsing: listenText)
        let kafkaConfig = try kafka.kafkaConfig(clientID: "kiln-scraper")
        let rawTopic = topics.raw

        // Pushes and scrapes without a Kafka writer of their own share one producer to the raw topic.
        let producer = try KafkaProducer(config: ProducerConfig(kafka: kafkaConfig), logger: logger)
        let publisher = KafkaRawPublisher(producer: producer, topic: rawTopic, logger: logger)
        let options = try ingestOptions()
        let ingester = PushIngester(publisher: publisher, options: options, logger: logger)
        logger.info("push ingest", metadata: ["authentication": "\(options.access.credentials.map { "\($0.entries.count) credentials" } ?? "off")",
                                              "tenant_overrides": "\(options.overrides.tenants.count)"])
        IngestRoutes.register(on: admin.router, ingester: ingester)

        var scraper: ScrapeService?
        if let path = EnvironmentFallback.resolve(config, env: "KILN_SCRAPE_CONFIG") {
            let configuration = try ScrapeConfiguration.load(contentsOf: URL(fileURLWithPath: path))
            let shardText = EnvironmentFallback.resolve(shard, env: "KILN_SCRAPE_SHARD", default: "0/1")
            let selector = try ShardSelector(parsing: shardText)
            let sink = try WriterRouter(configuration: configuration, defaultPublisher: publisher, base: kafkaConfig, logger: logger)
            let fetcher = HTTPProfileFetcher()
            let manager = ScrapeManager(configuration: configuration, sink: sink, fetcher: fetcher,
                                        options: ScrapeManagerOptions(shard: selector), logger: logger)
            scraper = ScrapeService(manager: manager, fetcher: fetcher, sink: sink, logger: logger)
            logger.info("scraping", metadata: ["config": "\(path)", "jobs": "\(configuration.scrapeJobs.count)", "shard": "\(selector)"])
        }
        let manager = scraper?.manager
        admin.router.get("targets") { _, _ -> Response in
            // Without a configuration nothing is scraped: an empty list in the same shape.
            let data = (try? manager?.status.jsonData()) ?? Data(#"{"discoveryErrors":{},"shard":"-","stats":{},"targets":[]}"#.utf8)
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }

        let kafkaService = KafkaLifecycle(producer: producer, topics: topics, rawTopic: rawTopic, config: kafkaConfig,
                                          readiness: readiness, logger: logger)
        // Graceful shutdown runs in reverse: the HTTP server stops taking pushes, the scraper drains its
        // buffer into the producer, then the producer flushes and closes.
        // A cluster that lost the raw topic lost the producer's idempotence state too: start a new producer
        // session, or every push would wait on UNKNOWN_PRODUCER_ID for ever.
        let probe = KafkaHealthProbe(config: kafkaConfig, topics: [rawTopic], topicOptions: topics, readiness: readiness, logger: logger,
                                     onTopicsRecreated: { missing in
            do { try producer.reset(reason: "topics re-created on the cluster: \(missing.joined(separator: ", "))") } catch {
                logger.error("could not re-create the Kafka producer", metadata: ["error": "\(error)"])
            }
        })
        var services: [any Service] = [kafkaService, probe]
        if let scraper { services.append(scraper) }
        services.append(admin.application(listen: address, logger: logger))
        try await ServiceRunner.run(services, logger: logger)
    }

    func ingestOptions() throws -> IngestOptions {
        var o = IngestOptions()
        func number(_ flag: String?, _ env: String) throws -> Double? {
            guard let text = EnvironmentFallback.resolve(flag, env: env) else { return nil }
            guard let v = Double(text), v >= 0 else { throw ServiceConfigurationError("\(env): \"\(text)\" is not a non-negative number") }
            return v
        }
        if let v = try number(ingestMaxBodyBytes.map(String.init), "KILN_INGEST_MAX_BODY_BYTES") { o.maxBodyBytes = Int(v) }
        if let v = try number(ingestMaxProfileBytes.map(String.init), "KILN_INGEST_MAX_PROFILE_BYTES") { o.maxProfileBytes = Int(v) }
        if let v = try number(ingestRateMb.map { String($0) }, "KILN_INGEST_RATE_MB") { o.rateBytesPerSecond = v * 1_048_576 }
        if let v = try number(ingestBurstMb.map { String($0) }, "KILN_INGEST_BURST_MB") { o.burstBytes = v * 1_048_576 }
        if let v = try number(ingestPublishTimeout.map { String($0) }, "KILN_INGEST_PUBLISH_TIMEOUT") { o.publishTimeout = .milliseconds(Int64(v * 1000)) }
        if let v = try number(ingestMaxSeries.map(String.init), "KILN_INGEST_MAX_SERIES") { o.maxSeriesPerTenant = Int(v) }
        if let v = try number(ingestMaxLabelNames.map(String.init), "KILN_INGEST_MAX_LABEL_NAMES") { o.maxLabelNames = Int(v) }
        if let path = access.resolvedAuthFile {
            o.access = TenantAccess(credentials: try Credentials.load(contentsOf: URL(fileURLWithPath: path)))
        }
        if let path = access.resolvedLimitsFile { o.overrides = try LimitOverrides.load(contentsOf: URL(fileURLWithPath: path)) }
        return o
    }
}

/// Makes sure the raw topic exists and Kafka answers (then the process is ready), and on shutdown
/// flushes and closes the producer after everything upstream has stopped.
struct KafkaLifecycle: Service {
    let producer: KafkaProducer
    let topics: TopicOptions
    let rawTopic: String
    let config: KafkaConfig
    let readiness: Readiness
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await topics.ensure([rawTopic], config: config, logger: logger)
                    _ = try await KafkaAdmin(config: config, logger: logger).describeTopic(rawTopic)
                    readiness.markReady("kafka")
                    logger.info("kafka reachable", metadata: ["topic": "\(rawTopic)"])
                    return
                } catch {
                    readiness.markNotReady("kafka", reason: "Kafka not reachable: \(error)")
                    logger.warning("kafka not reachable yet", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
        try? await gracefulShutdown()
        try await producer.close(flushTimeout: .seconds(30))
        logger.info("producer flushed and closed")
    }
}

/// Runs the scrape manager until shutdown; its buffer is handed to the sink before `run` returns.
struct ScrapeService: Service {
    let manager: ScrapeManager
    let fetcher: HTTPProfileFetcher
    let sink: WriterRouter
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown { await manager.run() }
        try? await fetcher.shutdown()
        try await sink.close()
        logger.info("scraping stopped", metadata: ["published": "\(manager.stats.profilesPublishedTotal)"])
    }
}

/// Sends each scraped profile to the `pyroscope.write` components it is forwarded to, with their
/// `external_labels` (labels the target already has win). A writer with a `kafka` block gets its own
/// producer and topic; a writer with `endpoint`s forwards over HTTP (Connect Push) like Alloy; a writer
/// with neither goes to the process's raw topic.
final class WriterRouter: ProfileSink {
    struct Writer {
        var sinks: [any ProfileSink]
        var producer: KafkaProducer?
        var externalLabels: [String: String]
    }

    private let writers: [String: Writer]
    private let defaultPublisher: KafkaRawPublisher

    init(configuration: ScrapeConfiguration, defaultPublisher: KafkaRawPublisher, base: KafkaConfig, logger: Logger) throws {
        self.defaultPublisher = defaultPublisher
        var writers: [String: Writer] = [:]
        for (label, writer) in configuration.writers {
            var w = Writer(sinks: [], producer: nil, externalLabels: writer.externalLabels)
            if let k = writer.kafka {
                let options = base.options + k.options.sorted { $0.key < $1.key }.map { KafkaOption($0.key, $0.value) }
                let config = KafkaConfig(bootstrapServers: k.brokers.joined(separator: ","), clientID: "kiln-scraper", options: options)
                let producer = try KafkaProducer(config: ProducerConfig(kafka: config), logger: logger)
                w.producer = producer
                w.sinks.append(KafkaRawPublisher(producer: producer, topic: k.topic, logger: logger))
            }
            if !writer.endpoints.isEmpty {
                w.sinks.append(PushForwarder(endpoints: writer.endpoints, logger: logger))
                logger.info("pyroscope.write forwards over HTTP", metadata: ["writer": "\(label)", "endpoints": "\(writer.endpoints.map(\.url))"])
            }
            if w.sinks.isEmpty {
                logger.info("pyroscope.write has neither kafka nor endpoint; its profiles go to the raw topic of --kafka-brokers",
                            metadata: ["writer": "\(label)", "topic": "\(defaultPublisher.topic)"])
                w.sinks.append(defaultPublisher)
            }
            writers[label] = w
        }
        self.writers = writers
    }

    func publish(_ scraped: ScrapedProfile) async throws {
        for label in scraped.forwardTo {
            guard let writer = writers[label] else {
                try await defaultPublisher.publish(scraped)
                continue
            }
            var profile = scraped
            for (k, v) in writer.externalLabels where profile.labels[k] == nil { profile.labels[k] = v }
            for sink in writer.sinks { try await sink.publish(profile) }
        }
    }

    /// Flushes and closes the writers' own producers (the shared producer closes with the Kafka service;
    /// forwarders use the process-wide HTTP client).
    func close() async throws {
        for w in writers.values {
            try await w.producer?.close(flushTimeout: .seconds(30))
        }
    }
}

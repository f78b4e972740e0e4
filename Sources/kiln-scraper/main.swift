import APICommon
import ArgumentParser
import Foundation
import IngestAPI
import KafkaClient
import KafkaService
import KilnService
import OTLPIngest
import Scrape
import ScraperStage
import ServiceLifecycle

@main
struct Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-scraper",
        abstract: "Scrapes pprof endpoints, serves the push ingest APIs and publishes raw profiles to Kafka.",
        discussion: """
            One HTTP server (--listen) serves POST /ingest, /pyroscope/ingest, /push.v1.PusherService/Push, \
            /v1development/profiles (OTLP/HTTP), GET /targets, /metrics and /ready. With --otlp-grpc-listen, a gRPC \
            server takes OTLP profiles too. Without --config only push ingest runs.
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

    @Option(
        help:
            "host:port of the OTLP profiles gRPC listener (OTLP clients expect port 4317). [env: KILN_OTLP_GRPC_LISTEN] (default: none, OTLP over HTTP only)"
    )
    var otlpGrpcListen: String?

    @Option(help: "Largest OTLP profiles request in bytes, compressed or not. [env: KILN_OTLP_MAX_REQUEST_BYTES] (default: 33554432)")
    var otlpMaxRequestBytes: Int?

    @Option(help: "Profiles in one OTLP request. [env: KILN_OTLP_MAX_PROFILES_PER_REQUEST] (default: 10000)")
    var otlpMaxProfilesPerRequest: Int?

    @Option(help: "Samples in one OTLP profile; a larger profile is rejected. [env: KILN_OTLP_MAX_SAMPLES_PER_PROFILE] (default: 1000000)")
    var otlpMaxSamplesPerProfile: Int?

    @Option(help: "Scrape only the targets of shard i of n (i/n, 0-based). [env: KILN_SCRAPE_SHARD] (default: 0/1)")
    var shard: String?

    @Option(help: "Seconds a client may take to send a whole request body (408 after). [env: KILN_INGEST_BODY_TIMEOUT] (default: 30)")
    var ingestBodyTimeout: Double?

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

    @Option(
        help:
            "Active series per tenant (label sets pushed within the last hour); 0 = unlimited. [env: KILN_INGEST_MAX_SERIES] (default: 5000)"
    )
    var ingestMaxSeries: Int?

    @Option(help: "Label names per pushed series. [env: KILN_INGEST_MAX_LABEL_NAMES] (default: 30)")
    var ingestMaxLabelNames: Int?

    @Option(help: "PEM certificate chain of the OTLP gRPC listener. [env: KILN_OTLP_GRPC_TLS_CERT_FILE] (default: --tls-cert-file)")
    var otlpGrpcTlsCertFile: String?

    @Option(help: "PEM private key of --otlp-grpc-tls-cert-file. [env: KILN_OTLP_GRPC_TLS_KEY_FILE] (default: --tls-key-file)")
    var otlpGrpcTlsKeyFile: String?

    @Option(
        help:
            "PEM CA: the OTLP gRPC listener requires client certificates it signed. [env: KILN_OTLP_GRPC_TLS_CLIENT_CA_FILE] (default: --tls-client-ca-file)"
    )
    var otlpGrpcTlsClientCaFile: String?

    /// The gRPC listener's own TLS flags, when given (kiln dev sets them: its children's HTTP stays plain on loopback).
    func otlpGRPCTLS() throws -> ServerTLS? {
        try TLSOptions.serverTLS(
            certificate: EnvironmentFallback.resolve(otlpGrpcTlsCertFile, env: "KILN_OTLP_GRPC_TLS_CERT_FILE"),
            key: EnvironmentFallback.resolve(otlpGrpcTlsKeyFile, env: "KILN_OTLP_GRPC_TLS_KEY_FILE"),
            clientCA: EnvironmentFallback.resolve(otlpGrpcTlsClientCaFile, env: "KILN_OTLP_GRPC_TLS_CLIENT_CA_FILE"),
            flag: "--otlp-grpc-tls")
    }

    func run() async throws {
        let process = try ServiceBootstrap.start(
            name: "kiln-scraper", options: service, pending: ["kafka": "connecting to Kafka"],
            role: .servesRequests, listenFlag: listen, defaultListen: "127.0.0.1:4100")
        let logger = process.logger
        let kafkaConfig = try kafka.kafkaConfig(clientID: "kiln-scraper")

        // Pushes and scrapes without a Kafka writer of their own share one producer to the raw topic.
        let producer = try KafkaProducer(config: ProducerConfig(kafka: kafkaConfig), logger: logger)
        let publisher = KafkaRawPublisher(producer: producer, topic: topics.raw, logger: logger)
        let options = try ingestOptions()
        let pushIngester = PushIngester(publisher: publisher, options: options, logger: logger)
        let concurrency = try access.resolvedConcurrency()
        process.admin.router.add(
            middleware: RequestAdmission(
                limits: .init(total: concurrency.total, perTenant: concurrency.perTenant, bodyBytes: concurrency.bodyBytes)))
        IngestRoutes.register(on: process.admin.router, ingester: pushIngester)
        let otlp = OTLPIngester(ingester: pushIngester, limits: try otlpLimits())
        OTLPRoutes.register(on: process.admin.router, ingester: otlp)
        var otlpServer: OTLPGRPCServer?
        if let text = EnvironmentFallback.resolve(otlpGrpcListen, env: "KILN_OTLP_GRPC_LISTEN") {
            let address = try ListenAddress(parsing: text)
            let tls = try otlpGRPCTLS() ?? process.tls
            otlpServer = try OTLPGRPCServer(
                host: address.host, port: address.port, certificates: tls, clientCAFile: tls?.clientCAFile, ingester: otlp, logger: logger)
        }
        logger.info(
            "push ingest",
            metadata: [
                "authentication": "\(options.access.credentials.map { "\($0.entries.count) credentials" } ?? "off")",
                "tenant_overrides": "\(options.overrides.tenants.count)",
            ])

        var scraper: ScrapeService?
        if let path = EnvironmentFallback.resolve(config, env: "KILN_SCRAPE_CONFIG") {
            let configuration = try ScrapeConfiguration.load(contentsOf: URL(fileURLWithPath: path))
            let selector = try ShardSelector(parsing: EnvironmentFallback.resolve(shard, env: "KILN_SCRAPE_SHARD", default: "0/1"))
            let sink = try WriterRouter(configuration: configuration, defaultPublisher: publisher, base: kafkaConfig, logger: logger)
            let fetcher = HTTPProfileFetcher()
            let manager = ScrapeManager(
                configuration: configuration, sink: sink, fetcher: fetcher,
                options: ScrapeManagerOptions(shard: selector), logger: logger)
            scraper = ScrapeService(manager: manager, fetcher: fetcher, sink: sink, logger: logger)
            logger.info("scraping", metadata: ["config": "\(path)", "jobs": "\(configuration.scrapeJobs.count)", "shard": "\(selector)"])
        }
        ScrapeService.registerTargetsRoute(on: process.admin.router, scraper: scraper)
        if let manager = scraper?.manager { process.admin.appendToMetrics { manager.status.prometheusText() } }

        // Shutdown runs in reverse: the HTTP and gRPC servers stop taking pushes, the scraper drains its
        // buffer into the producer, then the producer flushes and closes.
        let producerService = RawTopicProducerService(
            producer: producer, topics: topics, rawTopic: topics.raw, config: kafkaConfig,
            readiness: process.readiness, logger: logger)
        let probe = KafkaHealthProbe(
            config: kafkaConfig, topics: [topics.raw], topicOptions: topics, readiness: process.readiness,
            logger: logger, resetProducer: producer.reset(reason:))
        let services: [any Service] = [producerService, probe] + (scraper.map { [$0] } ?? []) + (otlpServer.map { [$0] } ?? [])
        try await process.run(services)
    }

    func otlpLimits() throws -> OTLPLimits {
        var limits = OTLPLimits()
        func number(_ flag: Int?, _ env: String) throws -> Int? {
            try EnvironmentFallback.nonNegative(flag.map { Double($0) }, env: env, setting: env).map { Int($0) }
        }
        if let v = try number(otlpMaxRequestBytes, "KILN_OTLP_MAX_REQUEST_BYTES") { limits.maxRequestBytes = v }
        if let v = try number(otlpMaxProfilesPerRequest, "KILN_OTLP_MAX_PROFILES_PER_REQUEST") { limits.maxProfilesPerRequest = v }
        if let v = try number(otlpMaxSamplesPerProfile, "KILN_OTLP_MAX_SAMPLES_PER_PROFILE") { limits.maxSamplesPerProfile = v }
        return limits
    }

    func ingestOptions() throws -> IngestOptions {
        var o = IngestOptions()
        func number(_ flag: (some BinaryInteger)?, _ env: String) throws -> Double? {
            try EnvironmentFallback.nonNegative(flag.map { Double($0) }, env: env, setting: env)
        }
        func number(_ flag: Double?, _ env: String) throws -> Double? {
            try EnvironmentFallback.nonNegative(flag, env: env, setting: env)
        }
        if let v = try number(ingestMaxBodyBytes, "KILN_INGEST_MAX_BODY_BYTES") { o.maxBodyBytes = Int(v) }
        if let v = try number(ingestBodyTimeout, "KILN_INGEST_BODY_TIMEOUT"), v > 0 { o.bodyReadTimeout = .milliseconds(Int64(v * 1000)) }
        if let v = try number(ingestMaxProfileBytes, "KILN_INGEST_MAX_PROFILE_BYTES") { o.maxProfileBytes = Int(v) }
        if let v = try number(ingestRateMb, "KILN_INGEST_RATE_MB") { o.rateBytesPerSecond = v * 1_048_576 }
        if let v = try number(ingestBurstMb, "KILN_INGEST_BURST_MB") { o.burstBytes = v * 1_048_576 }
        if let v = try number(ingestPublishTimeout, "KILN_INGEST_PUBLISH_TIMEOUT") { o.publishTimeout = .milliseconds(Int64(v * 1000)) }
        if let v = try number(ingestMaxSeries, "KILN_INGEST_MAX_SERIES") { o.maxSeriesPerTenant = Int(v) }
        if let v = try number(ingestMaxLabelNames, "KILN_INGEST_MAX_LABEL_NAMES") { o.maxLabelNames = Int(v) }
        if let path = access.resolvedAuthFile {
            o.access = TenantAccess(credentials: try Credentials.load(contentsOf: URL(fileURLWithPath: path)))
        }
        if let path = access.resolvedLimitsFile { o.overrides = try LimitOverrides.load(contentsOf: URL(fileURLWithPath: path)) }
        return o
    }
}

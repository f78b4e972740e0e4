import Foundation
import Hummingbird
import KafkaClient
import KafkaService
import KilnService
import Logging
import Scrape
import ServiceLifecycle

/// Makes sure the raw topic exists and Kafka answers (then the process is ready), and on shutdown
/// flushes and closes the producer after everything upstream has stopped.
public struct RawTopicProducerService: Service {
    let producer: KafkaProducer
    let topics: TopicOptions
    let rawTopic: String
    let config: KafkaConfig
    let readiness: Readiness
    let logger: Logger

    public init(producer: KafkaProducer, topics: TopicOptions, rawTopic: String, config: KafkaConfig, readiness: Readiness, logger: Logger)
    {
        self.producer = producer
        self.topics = topics
        self.rawTopic = rawTopic
        self.config = config
        self.readiness = readiness
        self.logger = logger
    }

    public func run() async throws {
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
public struct ScrapeService: Service {
    public let manager: ScrapeManager
    let fetcher: HTTPProfileFetcher
    let sink: WriterRouter
    let logger: Logger

    public init(manager: ScrapeManager, fetcher: HTTPProfileFetcher, sink: WriterRouter, logger: Logger) {
        self.manager = manager
        self.fetcher = fetcher
        self.sink = sink
        self.logger = logger
    }

    public func run() async throws {
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
public final class WriterRouter: ProfileSink {
    struct Writer {
        var sinks: [any ProfileSink]
        var producer: KafkaProducer?
        var externalLabels: [String: String]
    }

    private let writers: [String: Writer]
    private let defaultPublisher: KafkaRawPublisher

    public init(configuration: ScrapeConfiguration, defaultPublisher: KafkaRawPublisher, base: KafkaConfig, logger: Logger) throws {
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
                logger.info(
                    "pyroscope.write forwards over HTTP", metadata: ["writer": "\(label)", "endpoints": "\(writer.endpoints.map(\.url))"])
            }
            if w.sinks.isEmpty {
                logger.info(
                    "pyroscope.write has neither kafka nor endpoint; its profiles go to the raw topic of --kafka-brokers",
                    metadata: ["writer": "\(label)", "topic": "\(defaultPublisher.topic)"])
                w.sinks.append(defaultPublisher)
            }
            writers[label] = w
        }
        self.writers = writers
    }

    public func publish(_ scraped: ScrapedProfile) async throws {
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
    public func close() async throws {
        for w in writers.values {
            try await w.producer?.close(flushTimeout: .seconds(30))
        }
    }
}

extension ScrapeService {
    /// `GET /targets`: the scrape manager's targets, discovery errors and stats as JSON (an empty list in the
    /// same shape when nothing is scraped).
    public static func registerTargetsRoute<Context: RequestContext>(on router: Router<Context>, scraper: ScrapeService?) {
        let manager = scraper?.manager
        router.get("targets") { _, _ -> Response in
            let data = (try? manager?.status.jsonData()) ?? Data(#"{"discoveryErrors":{},"shard":"-","stats":{},"targets":[]}"#.utf8)
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
    }
}

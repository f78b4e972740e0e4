import Foundation
import IngestAPI
import KafkaClient
import Logging
import Metrics
import ProfileModel
import Records
import Scrape

/// Publishes raw profiles to `kiln.profiles.raw`, for both ways in: pushes (`RawProfilePublisher`) and
/// scrapes (Scrape's `ProfileSink`). Key = the envelope's key (tenant + series labels), so one target's
/// profiles stay in order on one partition. Every publish returns only once Kafka acknowledged the record.
public final class KafkaRawPublisher: RawProfilePublisher, ProfileSink, Sendable {
    public let topic: String
    private let producer: KafkaProducer
    private let logger: Logger
    private let records = Counter(label: "kiln_raw_published_records_total")
    private let bytes = Counter(label: "kiln_raw_published_bytes_total")

    public init(producer: KafkaProducer, topic: String, logger: Logger = Logger(label: "kiln.raw-publisher")) {
        self.producer = producer
        self.topic = topic
        self.logger = logger
    }

    /// A push: stored as received.
    public func publish(_ envelope: RawEnvelope) async throws {
        let value = envelope.encoded()
        _ = try await producer.send(ProducerRecord(topic: topic, key: envelope.key, value: value))
        records.increment()
        bytes.increment(by: value.count)
    }

    /// A scrape: turned into an envelope (source scrape, pprof, the target's cumulative flag) and stored.
    public func publish(_ scraped: ScrapedProfile) async throws {
        try await publish(Self.envelope(scraped))
    }

    public static func envelope(_ scraped: ScrapedProfile) -> RawEnvelope {
        RawEnvelope(
            tenant: scraped.tenant, labels: ProfileModel.LabelSet(scraped.labels), source: .scrape, format: .pprof,
            startNanos: nanos(scraped.startTime), endNanos: nanos(scraped.endTime),
            cumulative: scraped.cumulative, attributes: ["url": scraped.url], payload: scraped.body)
    }

    /// Waits until everything handed to the producer is delivered (or the timeout passes).
    public func flush(timeout: Duration = .seconds(30)) async throws {
        try await producer.flush(timeout: timeout)
    }

    static func nanos(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1e9).rounded())
    }
}

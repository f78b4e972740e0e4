import APICommon
import Foundation
import Logging
import Metrics
import ProfileModel
import Records

/// The part of push ingest that does not depend on HTTP: admission (per-tenant rate, in-flight bytes) and
/// publishing with a deadline. A push succeeds only when every one of its envelopes is published.
public final class PushIngester: Sendable {
    public let options: IngestOptions
    private let publisher: any RawProfilePublisher
    private let rateLimiter: TenantRateLimiter
    private let budget: InFlightBudget
    private let activeSeries: ActiveSeries
    private let logger: Logger

    public init(
        publisher: any RawProfilePublisher, options: IngestOptions = IngestOptions(),
        logger: Logger = Logger(label: "kiln.ingest")
    ) {
        self.options = options
        self.publisher = publisher
        self.logger = logger
        rateLimiter = TenantRateLimiter(bytesPerSecond: options.rateBytesPerSecond, burstBytes: options.burstBytes)
        budget = InFlightBudget(limit: options.maxInFlightBytes)
        activeSeries = ActiveSeries(window: options.activeSeriesWindow)
    }

    /// Series the tenant pushed within the active-series window.
    public func activeSeriesCount(tenant: String) -> Int { activeSeries.count(tenant: tenant) }

    /// Bytes handed to the publisher and not yet acknowledged.
    public var inFlightBytes: Int { budget.inFlightBytes }

    /// Admits and publishes `envelopes` of one request; returns when all are durable.
    public func submit(_ envelopes: [RawEnvelope], tenant: String, endpoint: String) async throws(APIError) {
        guard !envelopes.isEmpty else { throw APIError(.invalidArgument, "no profiles received") }
        let limits = options.forTenant(tenant)
        let decompressed = envelopes.reduce(0) { $0 + ProfileSize.decompressedEstimate($1.payload) }
        guard rateLimiter.allow(tenant: tenant, bytes: decompressed, rate: limits.rateBytesPerSecond, burst: limits.burstBytes) else {
            count("rejected", endpoint: endpoint, reason: "rate_limited")
            throw APIError.exceeding(
                .rateLimited, "ingestion_rate_mb", limits.rateBytesPerSecond / 1_048_576,
                "push rate limit (\(ByteCount.format(Int(limits.rateBytesPerSecond)))/s, burst \(ByteCount.format(Int(limits.burstBytes)))) exceeded for tenant \"\(tenant)\" while adding \(ByteCount.format(decompressed))"
            )
        }
        let (admitted, active) = activeSeries.admit(
            tenant: tenant, series: envelopes.map { $0.labels.hashValue }, limit: limits.maxSeriesPerTenant)
        guard admitted else {
            count("rejected", endpoint: endpoint, reason: "series_limit")
            throw APIError.exceeding(
                .rateLimited, "max_series", limits.maxSeriesPerTenant,
                "tenant \"\(tenant)\" has \(active) active series; this push would add new ones")
        }
        let bytes = envelopes.reduce(0) { $0 + $1.payload.count }
        guard await budget.acquire(bytes, timeout: options.admissionTimeout) else {
            count("rejected", endpoint: endpoint, reason: "backlog")
            throw APIError(.unavailable, "ingest backlog full: \(ByteCount.format(budget.inFlightBytes)) waiting for Kafka; retry later")
        }
        let outcome = OneShot<Result<Void, any Error>>()
        let publisher = self.publisher
        let budget = self.budget
        // Unstructured on purpose: when the deadline passes the request answers 503 while the publish runs
        // on and still holds its bytes in the budget until Kafka settles it, so a stalled broker cannot
        // be buried under retries.
        Task {
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for envelope in envelopes { group.addTask { try await publisher.publish(envelope) } }
                    try await group.waitForAll()
                }
                outcome.complete(.success(()))
            } catch {
                outcome.complete(.failure(error))
            }
            budget.release(bytes)
        }
        let timer = Task {
            try await Task.sleep(for: options.publishTimeout)
            outcome.complete(.failure(PublishTimeout()))
        }
        let result = await outcome.value
        timer.cancel()
        switch result {
        case .success:
            count("accepted", endpoint: endpoint, reason: "")
            Counter(label: "kiln_ingest_profiles_total", dimensions: [("endpoint", endpoint)]).increment(by: envelopes.count)
            Counter(label: "kiln_ingest_bytes_total", dimensions: [("endpoint", endpoint)]).increment(by: bytes)
        case .failure(is PublishTimeout):
            count("rejected", endpoint: endpoint, reason: "publish_timeout")
            throw APIError(.unavailable, "Kafka did not acknowledge the profiles within \(options.publishTimeout); retry later")
        case .failure(let error):
            count("rejected", endpoint: endpoint, reason: "publish_failed")
            logger.warning("publishing pushed profiles failed", metadata: ["tenant": "\(tenant)", "error": "\(error)"])
            throw APIError(.unavailable, "storing the profiles failed: \(error); retry later")
        }
    }

    /// Why `submit` answers `rejected`.
    static let rejectionReasons = ["backlog", "publish_failed", "publish_timeout", "rate_limited", "series_limit"]

    private func count(_ outcome: String, endpoint: String, reason: String) {
        EventCounters.zero(
            "kiln_ingest_requests_total", key: endpoint,
            Self.rejectionReasons.map { [("endpoint", endpoint), ("outcome", "rejected"), ("reason", $0)] })
        var dimensions = [("endpoint", endpoint), ("outcome", outcome)]
        if !reason.isEmpty { dimensions.append(("reason", reason)) }
        Counter(label: "kiln_ingest_requests_total", dimensions: dimensions).increment()
    }
}

struct PublishTimeout: Error {}

/// Sizes of received profiles.
public enum ProfileSize {
    /// The decompressed size without inflating: a gzip member's trailer (ISIZE, the size modulo 2^32),
    /// else the size as received. The normaliser enforces the hard limit while it inflates.
    public static func decompressedEstimate(_ payload: [UInt8]) -> Int {
        let n = payload.count
        guard n >= 18, payload[0] == 0x1F, payload[1] == 0x8B else { return n }
        let isize = UInt32(payload[n - 4]) | UInt32(payload[n - 3]) << 8 | UInt32(payload[n - 2]) << 16 | UInt32(payload[n - 1]) << 24
        return Int(isize)
    }
}

import Foundation
import Synchronization

/// One profile as fetched from a target, with everything the raw-topic envelope needs.
public struct ScrapedProfile: Sendable {
    public var tenant: String
    /// Published labels: `service_name`, `job`, `instance`, `__name__` and the target's own labels
    /// (those starting with `__` removed).
    public var labels: LabelSet
    /// True when the endpoint reports totals since process start (plain memory/mutex/block):
    /// the normalizer must subtract the previous profile of the same series.
    public var cumulative: Bool
    public var startTime: Date
    public var endTime: Date
    /// The response body exactly as received (gzip-compressed pprof for Go targets).
    public var body: [UInt8]
    public var url: String
    /// Labels of the `pyroscope.write` components this profile goes to.
    public var forwardTo: [String]

    public var profileName: String { labels["__name__"] ?? "" }

    public init(
        tenant: String, labels: LabelSet, cumulative: Bool, startTime: Date, endTime: Date, body: [UInt8],
        url: String, forwardTo: [String]
    ) {
        self.tenant = tenant
        self.labels = labels
        self.cumulative = cumulative
        self.startTime = startTime
        self.endTime = endTime
        self.body = body
        self.url = url
        self.forwardTo = forwardTo
    }
}

/// Where scraped profiles go (the Kafka producer in production, memory in tests).
/// `publish` may be slow; the scrape manager buffers in front of it and drops, counted, when full.
public protocol ProfileSink: Sendable {
    func publish(_ scraped: ScrapedProfile) async throws
}

/// Keeps everything published, for tests and `kiln dev` debugging.
public final class InMemoryProfileSink: ProfileSink {
    private let stored = Mutex<[ScrapedProfile]>([])

    public init() {}

    public func publish(_ scraped: ScrapedProfile) async throws {
        stored.withLock { $0.append(scraped) }
    }

    public var profiles: [ScrapedProfile] { stored.withLock { $0 } }
}

import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization

/// End-to-end latency from ingest to query: every interval a small profile goes out through the same path as
/// the load, under service `loadgen-probe` with a unique `probe` label value; the query service is asked for
/// `probe`'s values (Connect `querier.v1.QuerierService/LabelValues`, JSON) until the value appears. The
/// latency is from the start of the send to the first answer that lists it.
public final class LatencyProber: Sendable {
    public static let service = "loadgen-probe"
    public static let labelName = "probe"

    let queryURL: String
    let tenant: String?
    let runID: String
    let client: HTTPClient
    let clock = ContinuousClock()
    let origin: ContinuousClock.Instant

    struct State {
        var next = 0
        var pending: [String: ContinuousClock.Instant] = [:]
        var sentAccepted = 0
        var sendFailures = 0
        var latencies: [Double] = []
        var queryErrors = 0
        var lastQueryError: String?
        var warmUpSeconds: Double?
    }
    let state = Mutex(State())

    public init(queryURL: String, tenant: String?, runID: String, origin: ContinuousClock.Instant) {
        self.queryURL = queryURL.hasSuffix("/") ? String(queryURL.dropLast()) : queryURL
        self.tenant = tenant
        self.runID = runID
        self.origin = origin
        client = HTTPClient(eventLoopGroupProvider: .singleton)
    }

    /// The probe's fleet target: one service, one label value per probe.
    public static func target(value: String, variant: Int) -> Fleet.Target {
        let labels = [(labelName, value)]
        return Fleet.Target(
            service: service, kind: .cpu, labels: labels, variants: [variant],
            ingestName: Fleet.ingestName(service, labels),
            labelSet: .init([.init("service_name", service), .init(labelName, value)]))
    }

    /// Sends one probe through `sender`; returns the outcome (accepted probes count in the sent totals).
    public func sendProbe(sender: any ProfileSender, payload: [UInt8], variant: Int, nowNanos: Int64) async -> SendOutcome {
        let (seq, started) = state.withLock { s -> (Int, ContinuousClock.Instant) in
            defer { s.next += 1 }
            return (s.next, clock.now)
        }
        let value = "\(runID)-\(seq)"
        let shot = Shot(
            index: -1 - seq, target: Self.target(value: value, variant: variant), payload: payload,
            startNanos: nowNanos - 1_000_000_000, endNanos: nowNanos)
        let outcome = await sender.send(shot)
        state.withLock { s in
            if outcome == .accepted {
                s.sentAccepted += 1
                s.pending[value] = started
            } else {
                s.sendFailures += 1
            }
        }
        return outcome
    }

    public var pendingCount: Int { state.withLock { $0.pending.count } }

    /// One query before the first probe, timed and reported apart: a query service that has not yet read
    /// the blocks already in the store pays for that on its first call, which would otherwise be charged to
    /// the first probes' ingest-to-query latency (dashboards keep a real one warm).
    public func warmUp(startMillis: Int64, endMillis: Int64) async {
        let began = clock.now
        await poll(startMillis: startMillis, endMillis: endMillis, evenWithoutProbes: true)
        let took = (clock.now - began).seconds
        state.withLock { $0.warmUpSeconds = took }
    }

    /// One LabelValues query; resolves every pending probe it lists.
    public func poll(startMillis: Int64, endMillis: Int64, evenWithoutProbes: Bool = false) async {
        guard pendingCount > 0 || evenWithoutProbes else { return }
        var request = HTTPClientRequest(url: queryURL + "/querier.v1.QuerierService/LabelValues")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let tenant { request.headers.add(name: "X-Scope-OrgID", value: tenant) }
        let body: [String: Any] = [
            "name": Self.labelName, "matchers": ["{service_name=\"\(Self.service)\"}"],
            "start": String(startMillis), "end": String(endMillis),
        ]
        request.body = .bytes(ByteBuffer(bytes: (try? JSONSerialization.data(withJSONObject: body)) ?? Data()))
        do {
            let response = try await client.execute(request, timeout: .seconds(10))
            let bytes = try await response.body.collect(upTo: 32 << 20)
            let now = clock.now
            guard response.status.code == 200 else {
                state.withLock {
                    $0.queryErrors += 1
                    $0.lastQueryError = "HTTP \(response.status.code): \(String(buffer: bytes).prefix(200))"
                }
                return
            }
            let object = try JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any]
            let names = object?["names"] as? [String] ?? []
            state.withLock { s in
                for name in names {
                    if let sent = s.pending.removeValue(forKey: name) { s.latencies.append((now - sent).seconds) }
                }
            }
        } catch {
            state.withLock {
                $0.queryErrors += 1
                $0.lastQueryError = "\(error)"
            }
        }
    }

    public func summary() -> LatencySummary {
        state.withLock { s in
            LatencySummary(
                probesSent: s.sentAccepted, probeSendFailures: s.sendFailures, visible: s.latencies.count,
                notVisible: s.pending.count, queryErrors: s.queryErrors, lastQueryError: s.lastQueryError,
                latencies: s.latencies, queryWarmUpSeconds: s.warmUpSeconds)
        }
    }

    public func shutdown() async { try? await client.shutdown() }
}

public struct LatencySummary: Sendable, Codable {
    public var probesSent: Int
    public var probeSendFailures: Int
    public var visible: Int
    public var notVisible: Int
    public var queryErrors: Int
    public var lastQueryError: String?
    /// Seconds from send to visible, in the order they became visible.
    public var latencies: [Double]
    /// How long the query before the first probe took (see `LatencyProber.warmUp`).
    public var queryWarmUpSeconds: Double?
    public var p50: Double? { Self.quantile(latencies, 0.5) }
    public var p90: Double? { Self.quantile(latencies, 0.9) }
    public var p99: Double? { Self.quantile(latencies, 0.99) }
    public var max: Double? { latencies.max() }

    enum CodingKeys: String, CodingKey {
        case probesSent = "probes_sent"
        case probeSendFailures = "probe_send_failures"
        case visible
        case notVisible = "not_visible"
        case queryErrors = "query_errors"
        case lastQueryError = "last_query_error"
        case latencies = "latencies_s"
        case queryWarmUpSeconds = "query_warm_up_s"
        case p50 = "p50_s"
        case p90 = "p90_s"
        case p99 = "p99_s"
        case max = "max_s"
    }

    public init(
        probesSent: Int, probeSendFailures: Int, visible: Int, notVisible: Int, queryErrors: Int,
        lastQueryError: String?, latencies: [Double], queryWarmUpSeconds: Double? = nil
    ) {
        self.probesSent = probesSent
        self.probeSendFailures = probeSendFailures
        self.visible = visible
        self.notVisible = notVisible
        self.queryErrors = queryErrors
        self.lastQueryError = lastQueryError
        self.latencies = latencies
        self.queryWarmUpSeconds = queryWarmUpSeconds
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            probesSent: try c.decode(Int.self, forKey: .probesSent), probeSendFailures: try c.decode(Int.self, forKey: .probeSendFailures),
            visible: try c.decode(Int.self, forKey: .visible), notVisible: try c.decode(Int.self, forKey: .notVisible),
            queryErrors: try c.decode(Int.self, forKey: .queryErrors),
            lastQueryError: try c.decodeIfPresent(String.self, forKey: .lastQueryError),
            latencies: try c.decode([Double].self, forKey: .latencies),
            queryWarmUpSeconds: try c.decodeIfPresent(Double.self, forKey: .queryWarmUpSeconds))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(probesSent, forKey: .probesSent)
        try c.encode(probeSendFailures, forKey: .probeSendFailures)
        try c.encode(visible, forKey: .visible)
        try c.encode(notVisible, forKey: .notVisible)
        try c.encode(queryErrors, forKey: .queryErrors)
        try c.encodeIfPresent(lastQueryError, forKey: .lastQueryError)
        try c.encode(latencies, forKey: .latencies)
        try c.encodeIfPresent(queryWarmUpSeconds, forKey: .queryWarmUpSeconds)
        try c.encodeIfPresent(p50, forKey: .p50)
        try c.encodeIfPresent(p90, forKey: .p90)
        try c.encodeIfPresent(p99, forKey: .p99)
        try c.encodeIfPresent(max, forKey: .max)
    }

    /// Nearest-rank quantile.
    public static func quantile(_ values: [Double], _ q: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let rank = Int((q * Double(sorted.count)).rounded(.up))
        return sorted[Swift.max(0, Swift.min(sorted.count - 1, rank - 1))]
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

import Foundation
import KilnFoundation
import Synchronization

/// What one `kiln loadgen` phase does.
public struct LoadRunConfig: Sendable {
    public var phase: String
    public var mode: String
    public var target: String
    public var tenant: String?
    /// Profiles per second; nil = flat out.
    public var rate: Double?
    public var count: Int?
    public var duration: Duration?
    public var concurrency: Int
    public var sampleInterval: Duration = .seconds(1)
    /// Probe cadence; nil = no latency probes.
    public var probeInterval: Duration?
    /// After sending, wait this long at most for the pipeline to catch up (lag 0, counters, probes).
    public var drainTimeout: Duration = .zero
    /// Flat out but bounded: sending pauses while any watched group lags by more than this many records, so
    /// the achieved rate is what the whole pipeline sustains rather than what the front door accepts.
    public var maxLagRecords: Int64?
    public var settings: [String: String] = [:]

    public init(
        phase: String, mode: String, target: String, tenant: String?, rate: Double?, count: Int?,
        duration: Duration?, concurrency: Int
    ) {
        self.phase = phase
        self.mode = mode
        self.target = target
        self.tenant = tenant
        self.rate = rate
        self.count = count
        self.duration = duration
        self.concurrency = max(1, concurrency)
    }
}

/// Per-second send counts, by completion time.
public struct SecondRow: Sendable, Codable {
    public var t: Int
    public var sent = 0
    public var bytes = 0
    public var errors: [String: Int] = [:]
    public var probes = 0
    /// Sending was paused for lag during this second (see `maxLagRecords`).
    public var throttled = false
}

public struct Sample: Sendable, Codable {
    public var t: Double
    public var processes: [String: ProcessWatcher.Reading]
    public var lag: [LagReading]
}

public struct SendTotals: Sendable, Codable {
    public var attempted = 0
    public var accepted = 0
    public var bytes = 0
    public var errors: [String: Int] = [:]
    public var lastError: String?
    /// Σ values per `type/unit` over every accepted profile (probes included): what the store must hold.
    public var expectedTotals: [String: Int64] = [:]
    public var acceptedByKind: [String: Int] = [:]
}

public struct LoadResults: Sendable, Codable {
    public var format = 1
    public var phase: String
    public var mode: String
    public var target: String
    public var startedAtUnix: Double
    public var settings: [String: String]
    public var pool: [String: String]
    /// First send to last answer.
    public var sendSeconds: Double
    public var offeredRate: Double?
    public var achievedRate: Double
    public var bytesPerSecond: Double
    /// Send start to the moment the pipeline had caught up (nil if it did not within the drain timeout).
    public var drainedAfterSeconds: Double?
    /// Accepted profiles ÷ drainedAfterSeconds: what went all the way through, per second.
    public var endToEndRate: Double?
    public var totals: SendTotals
    public var sendLatencyP50Ms: Double?
    public var sendLatencyP99Ms: Double?
    public var seconds: [SecondRow]
    public var samples: [Sample]
    public var latency: LatencySummary?
}

/// Drives one phase: workers send the fleet's profiles through `sender` as the pacer allows, a sampler records
/// processes and lag every interval, an optional prober measures ingest-to-query latency; then waits for the
/// pipeline to drain and returns everything measured.
public final class LoadRun: Sendable {
    let config: LoadRunConfig
    let fleet: Fleet
    let pool: PayloadPool
    let sender: any ProfileSender
    let watcher: ProcessWatcher?
    let lag: LagMonitor?
    let queryURL: String?
    let progress: @Sendable (String) -> Void

    struct Shared {
        var rows: [SecondRow] = []
        var totals = SendTotals()
        var sendLatencies: [Double] = []
        var samples: [Sample] = []
        var sending = true
    }
    let shared = Mutex(Shared())

    public init(
        config: LoadRunConfig, fleet: Fleet, pool: PayloadPool, sender: any ProfileSender, watcher: ProcessWatcher?,
        lag: LagMonitor?, queryURL: String?, progress: @escaping @Sendable (String) -> Void = { print($0) }
    ) {
        self.config = config
        self.fleet = fleet
        self.pool = pool
        self.sender = sender
        self.watcher = watcher
        self.lag = lag
        self.queryURL = queryURL
        self.progress = progress
    }

    static func nowNanos() -> Int64 { Int64(Date().timeIntervalSince1970 * 1e9) }

    func record(_ outcome: SendOutcome, bytes: Int, totals: [String: Int64], kind: String?, at second: Int, took: Double?) {
        shared.withLock { s in
            while s.rows.count <= second { s.rows.append(SecondRow(t: s.rows.count)) }
            s.totals.attempted += 1
            if let took { s.sendLatencies.append(took) }
            if outcome == .accepted {
                s.totals.accepted += 1
                s.totals.bytes += bytes
                s.rows[second].sent += 1
                s.rows[second].bytes += bytes
                if kind == nil { s.rows[second].probes += 1 }
                s.totals.acceptedByKind[kind ?? "probe", default: 0] += 1
                for (key, value) in totals { s.totals.expectedTotals[key, default: 0] += value }
            } else if let key = outcome.errorKey {
                s.rows[second].errors[key, default: 0] += 1
                s.totals.errors[key, default: 0] += 1
                if case .failed(let text) = outcome { s.totals.lastError = text }
            }
        }
    }

    public func run() async -> LoadResults {
        let clock = ContinuousClock()
        let origin = clock.now
        let startedAt = Date().timeIntervalSince1970
        let elapsed: @Sendable () -> Double = { (clock.now - origin).seconds }
        let prober = queryURL.map {
            LatencyProber(queryURL: $0, tenant: config.tenant, runID: String(UInt64(startedAt * 1000), radix: 36), origin: origin)
        }
        let probeVariant = pool.smallestIndex

        // A first sample before any load: the baseline for counters and CPU.
        await takeSample(at: 0)
        let nowMillis = Int64(Date().timeIntervalSince1970 * 1000)
        await prober?.warmUp(startMillis: nowMillis - 3_600_000, endMillis: nowMillis + 3_600_000)

        let pacer = Pacer(rate: config.rate, count: config.count, duration: config.duration, start: clock.now)
        async let sampling: Void = samplerLoop(elapsed: elapsed)
        async let probing: Void = probeLoop(prober: prober, variant: probeVariant, elapsed: elapsed)
        async let polling: Void = pollLoop(prober: prober)
        async let reporting: Void = progressLoop(elapsed: elapsed)

        let sendStart = clock.now
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<config.concurrency {
                group.addTask { [self] in
                    while true {
                        while throttled.load(ordering: .relaxed) && !stopped {
                            shared.withLock { s in
                                let second = Int(elapsed())
                                while s.rows.count <= second { s.rows.append(SecondRow(t: s.rows.count)) }
                                s.rows[second].throttled = true
                            }
                            try? await Task.sleep(for: .milliseconds(20))
                            if let deadline = pacer.deadline, ContinuousClock.now >= deadline { break }
                        }
                        guard let index = await pacer.next() else { break }
                        let (t, v) = fleet.pick(index)
                        let variant = pool.variants[v]
                        let window = Fleet.window(index: index, nowNanos: Self.nowNanos())
                        let began = clock.now
                        let outcome = await sender.send(
                            Shot(
                                index: index, target: fleet.targets[t], payload: variant.bytes,
                                startNanos: window.start, endNanos: window.end))
                        record(
                            outcome, bytes: variant.bytes.count, totals: variant.totals, kind: variant.kind.rawValue,
                            at: Int(elapsed()), took: (clock.now - began).seconds)
                    }
                }
            }
        }
        let sendSeconds = (clock.now - sendStart).seconds
        shared.withLock { $0.sending = false }
        progress(
            "[\(config.phase)] sending done after \(String(format: "%.1f", sendSeconds)) s; waiting up to \(config.drainTimeout) for the pipeline to drain"
        )

        // Drain: wait for lag, counters and probes to catch up.
        var drainedAt: Double?
        let drainDeadline = clock.now + config.drainTimeout
        while clock.now < drainDeadline {
            if isDrained(prober: prober) {
                drainedAt = (clock.now - sendStart).seconds
                break
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
        if config.drainTimeout == .zero { drainedAt = nil }
        shared.withLock { $0.sending = false }
        stopLoops.store(true, ordering: .relaxed)
        _ = await (sampling, probing, polling, reporting)
        await takeSample(at: elapsed())
        await prober?.shutdown()

        let s = shared.withLock { $0 }
        let latencies = s.sendLatencies.sorted()
        func ms(_ q: Double) -> Double? { LatencySummary.quantile(latencies, q).map { $0 * 1000 } }
        var poolInfo = [
            "variants": String(pool.variants.count), "bytes": String(pool.totalBytes),
            "mean_payload_bytes": String(pool.totalBytes / max(1, pool.variants.count)),
        ]
        if !pool.missingFixtures.isEmpty { poolInfo["missing_fixtures"] = pool.missingFixtures.joined(separator: ",") }
        return LoadResults(
            phase: config.phase, mode: config.mode, target: config.target, startedAtUnix: startedAt,
            settings: config.settings, pool: poolInfo, sendSeconds: sendSeconds, offeredRate: config.rate,
            achievedRate: Double(s.totals.accepted) / max(sendSeconds, 1e-9),
            bytesPerSecond: Double(s.totals.bytes) / max(sendSeconds, 1e-9),
            drainedAfterSeconds: drainedAt,
            endToEndRate: drainedAt.map { Double(s.totals.accepted) / max($0, 1e-9) },
            totals: s.totals, sendLatencyP50Ms: ms(0.5), sendLatencyP99Ms: ms(0.99),
            seconds: s.rows, samples: s.samples, latency: prober?.summary())
    }

    let stopLoops = Atomic<Bool>(false)
    let throttled = Atomic<Bool>(false)
    var stopped: Bool { stopLoops.load(ordering: .relaxed) }

    func takeSample(at t: Double) async {
        async let processes = watcher?.sample() ?? [:]
        async let lags = lag?.sample(at: t) ?? []
        let sample = Sample(t: (t * 1000).rounded() / 1000, processes: await processes, lag: await lags)
        shared.withLock { $0.samples.append(sample) }
        if let limit = config.maxLagRecords {
            throttled.store(sample.lag.contains { $0.records > limit }, ordering: .relaxed)
        }
    }

    func samplerLoop(elapsed: @Sendable () -> Double) async {
        var next = 1.0
        let step = config.sampleInterval.seconds
        while !stopped {
            let now = elapsed()
            if now >= next {
                await takeSample(at: now)
                next += step
                while next <= elapsed() { next += step }  // a slow sample skips ticks instead of bunching them
            }
            try? await Task.sleep(for: .milliseconds(Int64(max(10, min(200, (next - elapsed()) * 1000)))))
        }
    }

    func probeLoop(prober: LatencyProber?, variant: Int, elapsed: @Sendable () -> Double) async {
        guard let prober, let interval = config.probeInterval else { return }
        let payload = pool.variants[variant]
        while !stopped && shared.withLock({ $0.sending }) {
            let began = elapsed()
            let outcome = await prober.sendProbe(sender: sender, payload: payload.bytes, variant: variant, nowNanos: Self.nowNanos())
            record(outcome, bytes: payload.bytes.count, totals: payload.totals, kind: nil, at: Int(elapsed()), took: nil)
            let wait = interval.seconds - (elapsed() - began)
            if wait > 0 { try? await Task.sleep(for: .milliseconds(Int64(wait * 1000))) }
        }
    }

    func pollLoop(prober: LatencyProber?) async {
        guard let prober else { return }
        let start = Int64(Date().timeIntervalSince1970 * 1000) - 3_600_000
        while !stopped {
            await prober.poll(startMillis: start, endMillis: Int64(Date().timeIntervalSince1970 * 1000) + 3_600_000)
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    func progressLoop(elapsed: @Sendable () -> Double) async {
        var last = 0
        while !stopped {
            try? await Task.sleep(for: .milliseconds(250))
            let now = Int(elapsed())
            guard now >= last + 5 else { continue }
            last = now
            let (accepted, errors, lagText) = shared.withLock { s in
                (
                    s.totals.accepted, s.totals.errors.values.reduce(0, +),
                    s.samples.last?.lag.map { "\($0.group) \($0.records) rec/\(String(format: "%.1f", $0.seconds)) s" }.joined(
                        separator: ", ") ?? ""
                )
            }
            progress("[\(config.phase)] t=\(now)s accepted=\(accepted) errors=\(errors)\(lagText.isEmpty ? "" : " lag: " + lagText)")
        }
    }

    /// Caught up: every accepted probe visible, every watched group's lag zero in the latest sample, and the
    /// watched stages' counters past what was sent (the normalisers consumed every accepted profile; the
    /// compactors every batch the normalisers produced).
    func isDrained(prober: LatencyProber?) -> Bool {
        if let prober, prober.pendingCount > 0 { return false }
        let (samples, accepted) = shared.withLock { ($0.samples, $0.totals.accepted) }
        guard let first = samples.first, let last = samples.last, samples.count > 1 else { return false }
        if last.lag.contains(where: { $0.records > 0 }) { return false }
        func delta(_ name: String) -> Double? {
            var found = false
            var sum = 0.0
            for (process, reading) in last.processes {
                guard let now = reading.metrics else { continue }
                let before = first.processes[process]?.metrics ?? [:]
                guard let value = PrometheusText.value(now, name: name) else { continue }
                found = true
                sum += value - (PrometheusText.value(before, name: name) ?? 0)
            }
            return found ? sum : nil
        }
        if let normalized = delta("kiln_normalizer_records_total"), normalized < Double(accepted) { return false }
        if let compacted = delta("kiln_compactor_records_total"), let batches = delta("kiln_normalizer_batches_total"),
            compacted < batches
        {
            return false
        }
        return true
    }
}

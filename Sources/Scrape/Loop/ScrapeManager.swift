import Foundation
import Logging
import ProfileModel
import Synchronization

/// One scrape loop's work: a target × an enabled profile endpoint of a job.
public struct ScrapeTarget: Sendable, Equatable {
    public var jobLabel: String
    public var address: String
    public var profile: ProfileEndpoint
    public var url: String
    /// Labels published with every profile of this loop.
    public var labels: LabelSet
    /// Identity of the loop: changes of URL or labels restart it.
    public var key: String {
        "\(jobLabel)|\(url)|" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
}

/// Evaluates target sources (literal lists, discovery components' targets, discovery.relabel) and
/// builds scrape targets.
public enum TargetResolver {
    /// `discovered`: each discovery component's current targets, by its id ("discovery.KIND.LABEL").
    public static func evaluate(
        _ source: TargetSource, configuration: ScrapeConfiguration, discovered: [String: [LabelSet]] = [:]
    ) -> [LabelSet] {
        switch source {
        case .literal(let targets):
            return targets
        case .discovered(let id):
            return discovered[id] ?? []
        case .relabel(let name):
            guard let component = configuration.relabelers[name] else { return [] }
            let input = evaluate(component.targets, configuration: configuration, discovered: discovered)
            return input.compactMap { Relabeling.apply(component.rules, to: $0) }
        case .concat(let parts):
            return parts.flatMap { evaluate($0, configuration: configuration, discovered: discovered) }
        }
    }

    /// The labels Kiln publishes for a target's profile, following Alloy: `service_name` from the
    /// target or "unspecified", `job`, `instance` (defaults to `__address__`), `__name__` with godeltaprof
    /// names mapped to memory/mutex/block; other `__`-prefixed target labels are dropped.
    public static func publishedLabels(target: LabelSet, job: ScrapeJob, profile: ProfileEndpoint) -> LabelSet {
        var labels = target.filter { !$0.key.hasPrefix("__") }
        let address = target["__address__"] ?? ""
        if (labels["service_name"] ?? "").isEmpty { labels["service_name"] = "unspecified" }
        if (labels["job"] ?? "").isEmpty { labels["job"] = job.jobName }
        if (labels["instance"] ?? "").isEmpty { labels["instance"] = address }
        labels["__name__"] = profile.seriesName
        return labels
    }

    /// All loops for `job` that `shard` owns; `skipped` counts targets owned by other shards.
    public static func scrapeTargets(
        job: ScrapeJob, targets: [LabelSet], shard: ShardSelector,
        skipped: inout Int
    ) -> [ScrapeTarget] {
        var out: [ScrapeTarget] = []
        var seen = Set<String>()
        for target in targets {
            guard let address = target["__address__"], !address.isEmpty else { continue }
            guard shard.owns(job: job.jobName, address: address) else {
                skipped += 1
                continue
            }
            let scheme = target["__scheme__"].flatMap { $0.isEmpty ? nil : $0 } ?? job.scheme
            let pathOverride = target["__profile_path__"].flatMap { $0.isEmpty ? nil : $0 }
            for var profile in job.enabledProfiles {
                // Alloy's `__profile_path__` (the `profiles.grafana.com/<type>.path` annotation) replaces the path.
                if let pathOverride { profile.path = pathOverride }
                let t = ScrapeTarget(
                    jobLabel: job.label, address: address, profile: profile,
                    url: "\(scheme)://\(address)\(job.requestPath(for: profile))",
                    labels: publishedLabels(target: target, job: job, profile: profile))
                if seen.insert(t.key).inserted { out.append(t) }
            }
        }
        return out
    }
}

/// When a loop first scrapes: a fixed phase within the interval derived from the target's identity,
/// so a fleet's scrapes are spread over the interval (and the phase is the same after a restart).
public enum ScrapeSchedule {
    public static func initialDelay(key: String, interval: Duration, now: Date) -> Duration {
        let intervalNanos = UInt64(max(1, interval.secondsDouble * 1e9))
        let nowNanos = UInt64(max(0, now.timeIntervalSince1970 * 1e9))
        var hash = FNV1a()
        hash.add(key)
        let phase = hash.value % intervalNanos
        let position = nowNanos % intervalNanos
        let wait = (phase + intervalNanos - position) % intervalNanos
        return .nanoseconds(Int64(wait))
    }

}

public struct ScrapeManagerOptions: Sendable {
    public var shard: ShardSelector = .all
    /// Scrapes in flight at once, across all targets.
    public var maxConcurrentScrapes: Int = 32
    /// Profiles waiting for the sink, at most (count and bytes).
    public var bufferCapacity: Int = 256
    public var bufferMaxBytes: Int = 256 << 20
    /// Spread first scrapes over the interval (off only in tests that want an immediate first scrape).
    public var spreadStartOffsets: Bool = true
    /// Where `discovery.dns` asks; nil: `KILN_DNS_SERVERS`, else /etc/resolv.conf (read only when a
    /// configuration has a `discovery.dns` component).
    public var dnsResolver: DNSResolver?

    public init(
        shard: ShardSelector = .all, maxConcurrentScrapes: Int = 32, bufferCapacity: Int = 256,
        bufferMaxBytes: Int = 256 << 20, spreadStartOffsets: Bool = true
    ) {
        self.shard = shard
        self.maxConcurrentScrapes = maxConcurrentScrapes
        self.bufferCapacity = bufferCapacity
        self.bufferMaxBytes = bufferMaxBytes
        self.spreadStartOffsets = spreadStartOffsets
    }
}

/// Runs every scrape loop of a configuration until cancelled: watches discovery files, starts and
/// stops loops as targets change, limits concurrency, hands profiles to the sink through a bounded
/// buffer, and keeps per-loop health. Cancel the task running `run()` to stop; queued profiles are
/// still handed to the sink before `run()` returns.
public final class ScrapeManager: Sendable {
    public let configuration: ScrapeConfiguration
    public let options: ScrapeManagerOptions
    private let sink: any ProfileSink
    private let fetcher: any ProfileFetcher
    private let logger: Logger
    /// Every discovery component of the configuration.
    public let discoveries: [any TargetDiscovery]
    private let limiter: ConcurrencyLimiter
    private let buffer: ProfileBuffer
    private let healthByKey = Mutex<[String: TargetHealth]>([:])
    private let counters = Mutex(ScrapeStats())
    private let changes: AsyncStream<Void>
    private let changesContinuation: AsyncStream<Void>.Continuation

    public init(
        configuration: ScrapeConfiguration, sink: any ProfileSink, fetcher: any ProfileFetcher,
        options: ScrapeManagerOptions = ScrapeManagerOptions(), logger: Logger = Logger(label: "kiln.scrape")
    ) {
        self.configuration = configuration
        self.options = options
        self.sink = sink
        self.fetcher = fetcher
        self.logger = logger
        var discoveries: [any TargetDiscovery] = configuration.fileDiscoveries.values.map { FileTargetWatcher(component: $0) }
        discoveries += configuration.httpDiscoveries.values.map { HTTPTargetWatcher(component: $0, fetcher: fetcher) }
        if !configuration.dnsDiscoveries.isEmpty {
            let resolver = options.dnsResolver ?? .system()
            discoveries += configuration.dnsDiscoveries.values.map { DNSTargetWatcher(component: $0, resolver: resolver) }
        }
        discoveries += configuration.kubernetesDiscoveries.values.map { KubernetesTargetWatcher(component: $0) }
        self.discoveries = discoveries
        self.limiter = ConcurrencyLimiter(limit: options.maxConcurrentScrapes)
        self.buffer = ProfileBuffer(maxProfiles: options.bufferCapacity, maxBytes: options.bufferMaxBytes)
        (changes, changesContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// The buffer between loops and sink, for tests that drain it by hand.
    var bufferForTests: ProfileBuffer { buffer }

    // MARK: snapshots

    public var targetHealth: [TargetHealth] {
        healthByKey.withLock { Array($0.values) }.sorted { ($0.component, $0.url, $0.profile) < ($1.component, $1.url, $1.profile) }
    }

    public var stats: ScrapeStats {
        var s = counters.withLock { $0 }
        let (profiles, bytes) = buffer.occupancy
        s.bufferedProfiles = profiles
        s.bufferedBytes = bytes
        return s
    }

    public var status: ScrapeStatus {
        var errors: [String: String] = [:]
        for d in discoveries {
            for (subject, e) in d.errors { errors["\(d.id): \(subject)"] = e }
        }
        return ScrapeStatus(shard: options.shard.description, targets: targetHealth, stats: stats, discoveryErrors: errors)
    }

    /// The loops the current configuration and discovered targets ask for, on this shard.
    public func currentTargets() -> [ScrapeTarget] {
        var discovered: [String: [LabelSet]] = [:]
        for d in discoveries { discovered[d.id] = d.targets }
        var skipped = 0
        var out: [ScrapeTarget] = []
        for job in configuration.scrapeJobs {
            let labels = TargetResolver.evaluate(job.targets, configuration: configuration, discovered: discovered)
            out += TargetResolver.scrapeTargets(job: job, targets: labels, shard: options.shard, skipped: &skipped)
        }
        counters.withLock { $0.targetsSkippedByShard = skipped }
        return out
    }

    // MARK: running

    public func run() async {
        let publisher = Task { await self.publishLoop() }
        let signal = self.changesContinuation
        let discoveryTasks = discoveries.map { d in Task { await d.run { signal.yield() } } }
        var running: [String: Task<Void, Never>] = [:]
        reconcile(&running)
        for await _ in changes {
            if Task.isCancelled { break }
            reconcile(&running)
        }
        for t in discoveryTasks { t.cancel() }
        for t in running.values { t.cancel() }
        for t in running.values { await t.value }
        buffer.finish()
        await publisher.value
        logger.info("scrape manager stopped", metadata: ["published": "\(stats.profilesPublishedTotal)"])
    }

    private func reconcile(_ running: inout [String: Task<Void, Never>]) {
        let desired = currentTargets()
        let desiredKeys = Set(desired.map(\.key))
        for (key, task) in running where !desiredKeys.contains(key) {
            task.cancel()
            running.removeValue(forKey: key)
            healthByKey.withLock { _ = $0.removeValue(forKey: key) }
        }
        for target in desired where running[target.key] == nil {
            guard let job = configuration.scrapeJobs.first(where: { $0.label == target.jobLabel }) else { continue }
            healthByKey.withLock {
                $0[target.key] = TargetHealth(
                    component: "pyroscope.scrape.\(job.label)", job: job.jobName, tenant: job.tenant,
                    profile: target.profile.name, url: target.url, labels: target.labels, health: .unknown,
                    scrapeIntervalSeconds: job.scrapeInterval.secondsDouble,
                    scrapeTimeoutSeconds: job.timeout(for: target.profile).secondsDouble, scrapesTotal: 0, failuresTotal: 0)
            }
            running[target.key] = Task { await self.scrapeLoop(target, job: job) }
        }
        counters.withLock { $0.activeLoops = running.count }
        logger.info("scrape targets reconciled", metadata: ["loops": "\(running.count)", "shard": "\(options.shard)"])
    }

    private func scrapeLoop(_ target: ScrapeTarget, job: ScrapeJob) async {
        let clock = ContinuousClock()
        if options.spreadStartOffsets {
            let delay = ScrapeSchedule.initialDelay(key: target.key, interval: job.scrapeInterval, now: Date())
            do { try await clock.sleep(for: delay) } catch { return }
        }
        var next = clock.now
        while !Task.isCancelled {
            await scrapeOnce(target, job: job)
            next = next.advanced(by: job.scrapeInterval)
            let now = clock.now
            while next < now { next = next.advanced(by: job.scrapeInterval) }  // skip missed ticks
            do { try await clock.sleep(until: next) } catch { return }
        }
    }

    /// One scrape: fetch, record health, offer to the buffer. Failures are recorded; the next tick retries.
    func scrapeOnce(_ target: ScrapeTarget, job: ScrapeJob) async {
        do { try await limiter.acquire() } catch { return }
        defer { limiter.release() }
        let started = Date()
        let clock = ContinuousClock()
        let t0 = clock.now
        let request = ProfileRequest(
            url: target.url, timeout: job.timeout(for: target.profile),
            maxBodyBytes: job.bodySizeLimit, credentials: job.credentials, tls: job.tls)
        let result: Result<[UInt8], any Error>
        do { result = .success(try await fetcher.fetch(request)) } catch { result = .failure(error) }
        if Task.isCancelled { return }
        let elapsed = (clock.now - t0).secondsDouble
        let ended = Date()
        switch result {
        case .success(let body):
            updateHealth(target.key, at: started, duration: elapsed, error: nil, bytes: body.count)
            counters.withLock {
                $0.scrapesTotal += 1
                $0.bytesScrapedTotal += UInt64(body.count)
            }
            let profile = ScrapedProfile(
                tenant: job.tenant, labels: target.labels, cumulative: target.profile.cumulative,
                startTime: started, endTime: ended, body: body, url: target.url,
                forwardTo: job.forwardTo)
            if case .dropped(let reason) = buffer.offer(profile) {
                counters.withLock { $0.droppedTotal[reason, default: 0] += 1 }
                logger.warning("scraped profile dropped", metadata: ["reason": "\(reason)", "url": "\(target.url)"])
            }
        case .failure(let error):
            let message = (error as? ScrapeError)?.message ?? String(describing: error)
            updateHealth(target.key, at: started, duration: elapsed, error: message, bytes: nil)
            counters.withLock {
                $0.scrapesTotal += 1
                $0.scrapeFailuresTotal += 1
            }
            logger.debug("scrape failed", metadata: ["url": "\(target.url)", "error": "\(message)"])
        }
    }

    private func updateHealth(_ key: String, at time: Date, duration: Double, error: String?, bytes: Int?) {
        healthByKey.withLock { all in
            guard var h = all[key] else { return }
            h.health = error == nil ? .up : .down
            h.lastError = error
            h.lastScrape = time
            h.lastScrapeDurationSeconds = duration
            if let bytes { h.lastBodyBytes = bytes }
            h.scrapesTotal += 1
            if error != nil { h.failuresTotal += 1 }
            all[key] = h
        }
    }

    private func publishLoop() async {
        while let profile = await buffer.next() {
            do {
                try await sink.publish(profile)
                counters.withLock { $0.profilesPublishedTotal += 1 }
            } catch {
                counters.withLock { $0.publishFailuresTotal += 1 }
                logger.error("sink rejected profile", metadata: ["url": "\(profile.url)", "error": "\(error)"])
            }
            buffer.completed(bytes: profile.body.count)
        }
    }
}

import Foundation
import Synchronization
import Testing

@testable import Scrape

@Suite("Scrape manager")
struct ScrapeManagerTests {
    static func config(targets: [String], extra: String = "") throws -> ScrapeConfiguration {
        let list = targets.map { "{\"__address__\" = \"\($0)\", \"service_name\" = \"svc\"}" }.joined(separator: ", ")
        return try ScrapeConfiguration.parse(
            writerPrefix() + """
                pyroscope.scrape "s" {
                  targets = [\(list)]
                  forward_to = [pyroscope.write.w.receiver]
                  tenant = "t1"
                \(extra)
                }
                """, file: "m.alloy")
    }

    @Test("a full buffer drops new profiles with a counted reason; memory stays bounded")
    func backPressure() async throws {
        let config = try Self.config(targets: ["127.0.0.1:1"])
        let fetcher = RecordingFetcher { _ in [UInt8](repeating: 7, count: 1000) }
        let manager = ScrapeManager(
            configuration: config, sink: InMemoryProfileSink(), fetcher: fetcher,
            options: ScrapeManagerOptions(bufferCapacity: 3, bufferMaxBytes: 1_000_000))
        let target = try #require(manager.currentTargets().first { $0.profile.kind == .goroutine })
        let job = try #require(config.scrapeJobs.first)
        // Nothing drains the buffer (run() is not started): the 4th and later profiles must be dropped.
        for _ in 0..<10 { await manager.scrapeOnce(target, job: job) }
        let stats = manager.stats
        #expect(stats.bufferedProfiles == 3)
        #expect(stats.bufferedBytes == 3000)
        #expect(stats.droppedTotal == ["buffer_full": 7])
        #expect(stats.scrapesTotal == 10)

        let byBytes = ScrapeManager(
            configuration: config, sink: InMemoryProfileSink(), fetcher: fetcher,
            options: ScrapeManagerOptions(bufferCapacity: 100, bufferMaxBytes: 2500))
        for _ in 0..<4 { await byBytes.scrapeOnce(target, job: job) }
        #expect(byBytes.stats.droppedTotal == ["buffer_bytes_full": 2])
        #expect(byBytes.stats.bufferedBytes == 2000)
    }

    @Test("a slow sink is fed from the buffer and everything queued is flushed at shutdown")
    func slowSinkFlush() async throws {
        let config = try Self.config(targets: ["127.0.0.1:1"], extra: "  scrape_interval = \"2s\"")
        let sink = GatedSink()
        let fetcher = RecordingFetcher { _ in [1, 2, 3] }
        let manager = ScrapeManager(
            configuration: config, sink: sink, fetcher: fetcher,
            options: ScrapeManagerOptions(bufferCapacity: 100, spreadStartOffsets: false))
        let running = Task { await manager.run() }
        // Five loops (default profiles); the first publish blocks, the rest queue up.
        let queued = await waitUntil(timeout: .seconds(30)) { manager.stats.bufferedProfiles >= 4 }
        #expect(queued, "stats: \(manager.stats)")
        running.cancel()
        sink.open()
        await running.value
        #expect(manager.stats.profilesPublishedTotal == manager.stats.scrapesTotal)
        #expect(sink.count == Int(manager.stats.scrapesTotal))
        #expect(manager.stats.bufferedProfiles == 0 && manager.stats.bufferedBytes == 0)
    }

    @Test("concurrency is bounded across targets")
    func boundedConcurrency() async throws {
        let config = try Self.config(targets: (1...12).map { "127.0.0.1:\($0)" })
        // Every fetch waits at the gate until the test lets it through: the overlap is certain, not timed.
        let gate = FetchGate()
        let fetcher = RecordingFetcher { _ in
            await gate.pass()
            return [1]
        }
        let manager = ScrapeManager(
            configuration: config, sink: InMemoryProfileSink(), fetcher: fetcher,
            options: ScrapeManagerOptions(maxConcurrentScrapes: 3))
        let job = try #require(config.scrapeJobs.first)
        let targets = manager.currentTargets().filter { $0.profile.kind == .goroutine }
        try #require(targets.count == 12)
        let scrapes = Task {
            await withTaskGroup(of: Void.self) { group in
                for t in targets { group.addTask { await manager.scrapeOnce(t, job: job) } }
            }
        }
        // Three fetches are held at the gate; the other nine scrapes wait for a slot.
        let full = await waitUntil(timeout: .seconds(30)) { gate.held == 3 }
        #expect(full, "fetches held at the gate: \(gate.held)")
        // Let one through at a time: its slot goes to exactly one waiting scrape, never to more.
        var released = 0
        while full, released < targets.count {
            gate.release(1)
            released += 1
            let expected = min(3, targets.count - released)
            let settled = await waitUntil(timeout: .seconds(30)) { gate.held == expected }
            #expect(settled, "after \(released) released: \(gate.held) fetches held, expected \(expected)")
            if !settled { break }
        }
        // After a failure above, let the rest through so every scrape ends.
        gate.release(targets.count - released)
        await scrapes.value
        #expect(fetcher.urls.count == 12)
        #expect(fetcher.maxInFlight == 3)
    }

    @Test("published profile carries tenant, labels, cumulative flag, times, URL, body and destinations")
    func publishedEnvelope() async throws {
        let config = try Self.config(targets: ["127.0.0.1:9"])
        let body: [UInt8] = [0x1f, 0x8b, 8, 0, 42]
        let fetcher = RecordingFetcher { _ in body }
        let manager = ScrapeManager(
            configuration: config, sink: InMemoryProfileSink(), fetcher: fetcher,
            options: ScrapeManagerOptions(bufferCapacity: 10))
        let job = try #require(config.scrapeJobs.first)
        for t in manager.currentTargets() { await manager.scrapeOnce(t, job: job) }
        let sink = InMemoryProfileSink()
        while manager.stats.bufferedProfiles > 0, let p = await manager.bufferForTests.next() {
            try await sink.publish(p)
            manager.bufferForTests.completed(bytes: p.body.count)
        }
        let byName = Dictionary(uniqueKeysWithValues: sink.profiles.map { ($0.profileName, $0) })
        #expect(Set(byName.keys) == ["process_cpu", "memory", "mutex", "block", "goroutine"])
        let memory = try #require(byName["memory"])
        #expect(memory.tenant == "t1" && memory.cumulative && memory.body == body && memory.forwardTo == ["w"])
        #expect(memory.url == "http://127.0.0.1:9/debug/pprof/allocs")
        #expect(memory.labels == ["__name__": "memory", "service_name": "svc", "job": "pyroscope.scrape.s", "instance": "127.0.0.1:9"])
        #expect(memory.endTime >= memory.startTime)
        #expect(byName["process_cpu"]?.cumulative == false)
        #expect(byName["process_cpu"]?.url == "http://127.0.0.1:9/debug/pprof/profile?seconds=14")
        let requests = fetcher.urls
        #expect(requests.count == 5)
    }

    @Test("a failed scrape marks the loop down with its error; the next success marks it up")
    func healthTransitions() async throws {
        // A long interval keeps the loops' own first scrape (at a hashed phase) out of this short test.
        let config = try Self.config(targets: ["127.0.0.1:9"], extra: "  scrape_interval = \"1h\"")
        let failing = Mutex(true)
        let fetcher = RecordingFetcher { _ in
            if failing.withLock({ $0 }) { throw ScrapeError("connection refused") }
            return [1, 2]
        }
        let manager = ScrapeManager(configuration: config, sink: InMemoryProfileSink(), fetcher: fetcher)
        let job = try #require(config.scrapeJobs.first)
        let runner = Task { await manager.run() }
        let registered = await waitUntil(timeout: .seconds(30)) { manager.targetHealth.count == 5 }
        #expect(registered)
        // Stop the loops (health entries stay) so only the scrapes below change the counters.
        runner.cancel()
        await runner.value
        #expect(manager.targetHealth.allSatisfy { $0.health == .unknown })
        let target = try #require(manager.currentTargets().first { $0.profile.kind == .goroutine })
        await manager.scrapeOnce(target, job: job)
        var h = try #require(manager.targetHealth.first { $0.profile == "goroutine" })
        #expect(!h.up && h.health == .down && h.lastError == "connection refused" && h.failuresTotal == 1)
        failing.withLock { $0 = false }
        await manager.scrapeOnce(target, job: job)
        h = try #require(manager.targetHealth.first { $0.profile == "goroutine" })
        #expect(h.up && h.lastError == nil && h.lastBodyBytes == 2 && h.scrapesTotal == 2)
        let json = String(decoding: try manager.status.jsonData(), as: UTF8.self)
        #expect(json.contains("\"health\" : \"up\""))
        let metrics = manager.status.prometheusText()
        #expect(
            metrics.contains(
                "kiln_scrape_target_up{job=\"pyroscope.scrape.s\",instance=\"127.0.0.1:9\",profile=\"goroutine\",tenant=\"t1\"} 1"))
        #expect(metrics.contains("kiln_scrape_failures_total 1"))
    }
}

/// A sink whose publish waits until `open()`: simulates a stalled Kafka producer.
final class GatedSink: ProfileSink {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>], count: Int)>((false, [], 0))

    func publish(_ scraped: ScrapedProfile) async throws {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let proceed = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiters.append(c)
                return false
            }
            if proceed { c.resume() }
        }
        state.withLock { $0.count += 1 }
    }

    func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }

    var count: Int { state.withLock { $0.count } }
}

/// Holds every fetch that calls `pass()` until the test lets it through with `release`, so a test makes
/// fetches overlap for certain instead of hoping a sleep is long enough.
final class FetchGate: Sendable {
    private struct State {
        var held: [CheckedContinuation<Void, Never>] = []
        /// Fetches let through ahead of their arrival.
        var permits = 0
    }
    private let state = Mutex(State())

    /// Waits at the gate until `release` lets this fetch through.
    func pass() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let proceed = state.withLock { s -> Bool in
                if s.permits > 0 {
                    s.permits -= 1
                    return true
                }
                s.held.append(c)
                return false
            }
            if proceed { c.resume() }
        }
    }

    /// Lets `count` fetches through: those held first (in arrival order), then ones still to arrive.
    func release(_ count: Int) {
        let released = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            let now = Array(s.held.prefix(count))
            s.held.removeFirst(now.count)
            s.permits += count - now.count
            return now
        }
        for c in released { c.resume() }
    }

    /// Fetches waiting at the gate now.
    var held: Int { state.withLock { $0.held.count } }
}

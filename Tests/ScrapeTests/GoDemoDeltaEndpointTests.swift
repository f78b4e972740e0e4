import Foundation
import PprofCodec
import TestSupport
import Testing

@testable import Scrape

/// The Go demo's godeltaprof-compatible endpoints (demo/go-target/deltaprof.go), read with Kiln's own
/// decoder and compared with the plain cumulative endpoints of the same process.
@Suite("godeltaprof endpoints of the Go demo", .serialized, .requires(.go))
struct GoDemoDeltaEndpointTests {
    /// What a comparison needs from one profile.
    struct Summary {
        var sampleTypes: [String]  // "type/unit"
        var periodType: String
        var period: Int64
        var totals: [String: Int64]
        var sampleCount: Int
        /// Functions on the stacks of samples with a value.
        var functions: Set<String>
    }

    static func summary(_ body: [UInt8]) throws -> Summary {
        let p = try PprofDecoder().decode(body)
        let types = p.sampleTypes.map { p.string($0.type) }
        var totals: [String: Int64] = [:]
        for s in 0..<p.sampleCount {
            for (t, v) in p.values(s).enumerated() { totals[types[t], default: 0] += v }
        }
        var functions: Set<String> = []
        for s in 0..<p.sampleCount where p.values(s).contains(where: { $0 > 0 }) {
            for location in p.stack(s) {
                for line in p.lines(of: Int(location)) { functions.insert(p.string(p.functions[Int(line.functionIndex)].name)) }
            }
        }
        return Summary(
            sampleTypes: p.sampleTypes.map { p.string($0.type) + "/" + p.string($0.unit) },
            periodType: p.periodType.map { p.string($0.type) + "/" + p.string($0.unit) } ?? "",
            period: p.period, totals: totals, sampleCount: p.sampleCount, functions: functions)
    }

    @Test(
        "each delta endpoint serves the plain profile's types with the increase since its previous request",
        arguments: [
            ("/debug/pprof/delta_heap", "/debug/pprof/allocs", ["alloc_objects", "alloc_space"], "main.allocateBuffers"),
            ("/debug/pprof/delta_block", "/debug/pprof/block", ["contentions", "delay"], "main.blockOnChannel"),
            ("/debug/pprof/delta_mutex", "/debug/pprof/mutex", ["contentions", "delay"], "main.contendMutex"),
        ])
    func servesDeltas(delta: String, plain: String, cumulativeTypes: [String], hotFunction: String) async throws {
        let demo = try await GoDemo.start()
        defer { Task { try? await demo.stop() } }

        // Wait until the process has done some of each kind of work (P1), so that a body repeating
        // totals since start could not pass for the increase over a few milliseconds — and until the
        // demo's own work shows (a heap profile samples allocations, and the runtime's own come first).
        var before = try Self.summary(await demo.fetch(plain))
        let deadline = ContinuousClock.now + .seconds(20)
        while cumulativeTypes.contains(where: { before.totals[$0, default: 0] <= 0 }) || !before.functions.contains(hotFunction) {
            guard ContinuousClock.now < deadline else {
                Issue.record("\(plain) showed no \(hotFunction) work for 20 s: \(before.totals)")
                return
            }
            try await Task.sleep(for: .milliseconds(100))
            before = try Self.summary(await demo.fetch(plain))
        }
        let firstBody = try await demo.fetch(delta)
        let secondBody = try await demo.fetch(delta)
        let after = try Self.summary(await demo.fetch(plain))
        let first = try Self.summary(firstBody)
        let second = try Self.summary(secondBody)

        for got in [first, second] {
            #expect(got.sampleTypes == after.sampleTypes, "\(delta)")
            #expect(got.periodType == after.periodType && got.period == after.period, "\(delta): \(got.periodType) \(got.period)")
        }
        // Values are scaled and converted per stack with integer truncation; allow one unit per sample.
        let slack = Int64(second.sampleCount + first.sampleCount)
        for type in cumulativeTypes {
            let p1 = before.totals[type, default: 0]
            let p2 = after.totals[type, default: 0]
            let f1 = first.totals[type, default: 0]
            let f2 = second.totals[type, default: 0]
            // Request order P1, F1, F2, P2: F1 covers everything since start, F2 only [F1, F2] ⊆ [P1, P2].
            #expect(f1 + slack >= p1, "\(delta) \(type): first \(f1) < cumulative before it \(p1)")
            #expect(f2 < p2, "\(delta) \(type): second \(f2) not below cumulative \(p2)")
            #expect(f2 <= p2 - p1 + slack, "\(delta) \(type): second \(f2) exceeds the growth \(p2 - p1) around it")
            #expect(f1 + f2 <= p2 + slack, "\(delta) \(type): \(f1) + \(f2) exceeds cumulative \(p2)")
        }
        // Go's own reader takes the body too, and names the demo's work (allocations, not live memory:
        // the demo has only just started).
        let top = try GoDemoIntegrationTests.topFunctions(firstBody, sampleIndex: cumulativeTypes.last)
        #expect(top.contains(hotFunction), "\(delta): \(hotFunction) not in\n\(top)")
    }

    @Test("the article's godeltaprof blocks scrape the demo as non-cumulative memory, block and mutex")
    func scrapesDeltaEndpoints() async throws {
        let demo = try await GoDemo.start()
        defer { Task { try? await demo.stop() } }
        let config = try ScrapeConfiguration.parse(
            writerPrefix() + """
                pyroscope.scrape "demo" {
                  targets = [{"__address__" = "\(demo.address)", "service_name" = "go-demo"}]
                  forward_to = [pyroscope.write.w.receiver]
                  scrape_interval = "2s"
                  profiling_config {
                    profile.process_cpu { enabled = false }
                    profile.goroutine { enabled = false }
                    profile.memory { enabled = false }
                    profile.mutex { enabled = false }
                    profile.block { enabled = false }
                    profile.godeltaprof_memory { enabled = true }
                    profile.godeltaprof_mutex { enabled = true }
                    profile.godeltaprof_block { enabled = true }
                  }
                }
                """, file: "delta.alloy")
        let sink = InMemoryProfileSink()
        let fetcher = HTTPProfileFetcher()
        let manager = ScrapeManager(
            configuration: config, sink: sink, fetcher: fetcher,
            options: ScrapeManagerOptions(spreadStartOffsets: false))
        let runner = Task { await manager.run() }
        let expected: Set<String> = ["memory", "mutex", "block"]
        let all = await waitUntil(timeout: .seconds(15)) { Set(sink.profiles.map(\.profileName)) == expected }
        runner.cancel()
        await runner.value
        try await fetcher.shutdown()
        #expect(
            all, "scraped: \(Set(sink.profiles.map(\.profileName))); health: \(manager.targetHealth.map { ($0.profile, $0.lastError) })")
        #expect(manager.targetHealth.allSatisfy { $0.lastError == nil }, "\(manager.targetHealth)")
        let paths = ["memory": "/debug/pprof/delta_heap", "mutex": "/debug/pprof/delta_mutex", "block": "/debug/pprof/delta_block"]
        for profile in sink.profiles {
            #expect(profile.url == "http://\(demo.address)\(paths[profile.profileName] ?? "?")")
            #expect(!profile.cumulative, "\(profile.profileName) is marked cumulative")
            #expect(throws: Never.self) { try PprofDecoder().decode(profile.body) }
        }
    }
}

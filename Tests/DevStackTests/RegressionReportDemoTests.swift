import AsyncHTTPClient
import Foundation
import Query
import TestSupport
import Testing

@testable import DevStack

/// Regression reports on a real program: the repo's Go demo, scraped every 2 s by `kiln dev`, runs as
/// usual, then its `/debug/hot` switch makes `main.hashLoop` about three times hotter. `kiln report
/// regressions` between the two windows ranks hashLoop first, and between windows of unchanged behaviour
/// it finds (almost) nothing.
@Suite(.serialized) struct RegressionReportDemoTests {
    static let query = #"process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="go-demo"}"#

    @Test(.requires(.kilnDev, .go))
    func theSlowerFunctionIsRankedFirst() async throws {
        // No leak: a heap that grows would change the GC's share between windows for a real reason.
        let demo = try await GoDemo.start(arguments: ["-leak-limit-mb", "0"])
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-regressions-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dataDir) }
        try await withHTTPClient { client in
            let dev = try KilnDevHarness.start(in: dataDir, client: client) { port in
                """
                pyroscope.scrape "demo" {
                  targets         = [{"__address__" = "\(demo.address)", "service_name" = "go-demo"}]
                  forward_to      = [pyroscope.write.local.receiver]
                  scrape_interval = "2s"
                  profiling_config {
                    profile.process_cpu { enabled = true }
                    profile.memory { enabled = false }
                    profile.goroutine { enabled = false }
                    profile.mutex { enabled = false }
                    profile.block { enabled = false }
                  }
                }
                pyroscope.write "local" {
                  endpoint { url = "http://127.0.0.1:\(port)" }
                }
                """
            }
            let process = dev.process
            defer { process.signal(SIGTERM) }
            _ = try await dev.waitUntilReady()
            func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
            func report(_ baseline: ClosedRange<Int64>, _ comparison: ClosedRange<Int64>, format: String = "json") async throws -> String {
                let output = dataDir.appendingPathComponent("report.\(format)")
                let run = try await runToCompletion(
                    TestEnvironment.binDir.appendingPathComponent("kiln"),
                    [
                        "report", "regressions", "--url", dev.baseURL, "--tenant", "anonymous", "--baseline", Self.query,
                        "--baseline-from", "\(baseline.lowerBound)", "--baseline-until", "\(baseline.upperBound)",
                        "--compare-from", "\(comparison.lowerBound)", "--compare-until", "\(comparison.upperBound)",
                        "--format", format, "--output", output.path,
                    ])
                try #require(run.status == 0, "kiln report regressions: \(run.output)")
                return try String(contentsOf: output, encoding: .utf8)
            }
            func decoded(_ baseline: ClosedRange<Int64>, _ comparison: ClosedRange<Int64>) async throws -> RegressionReport {
                try JSONDecoder().decode(RegressionReport.self, from: Data(try await report(baseline, comparison).utf8))
            }

            // Two phases of the same program: as built, then with hashLoop three times the work. Each window
            // starts a few seconds after its phase does, so no profile straddles the switch.
            let start = nowMillis() + 4000
            try await Task.sleep(for: .seconds(36))
            let normal = start...nowMillis()
            #expect(try await demo.post("/debug/hot?factor=3").contains("factor 3"))
            let hotStart = nowMillis() + 3000
            try await Task.sleep(for: .seconds(38))
            let hot = hotStart...nowMillis()
            // Wait until the last profiles reached a block: 2 s apart, about 17 in the hot window (its thirds need 4 each).
            var changed = try await decoded(normal, hot)
            let deadline = ContinuousClock.now + .seconds(60)
            while changed.comparison.profiles < (hot.upperBound - hot.lowerBound) / 2000 - 2, ContinuousClock.now < deadline {
                try await Task.sleep(for: .seconds(1))
                changed = try await decoded(normal, hot)
            }
            print(
                "regressions: \(changed.baseline.profiles) against \(changed.comparison.profiles) profiles; "
                    + (changed.regressions + changed.insignificant).prefix(8).map {
                        "\($0.function) \($0.totalShare.before) → \($0.totalShare.after) p \($0.p) q \($0.q) sup \($0.superiority)"
                    }
                    .joined(separator: "; "))
            // The report ranks by the change of inclusive share, so a caller holding hashLoop (main.cpuWorker) can
            // rank beside it or just above it when its other work grows too on a loaded machine (seen once in CI:
            // +19.3 pp against hashLoop's +19.0 pp). Set hashLoop's callers aside — its own call paths name
            // them — and it must come first: no other function regressed more.
            let top = try #require(
                changed.regressions.first { $0.function == "main.hashLoop" },
                "hashLoop not reported: \(changed.regressions.prefix(5).map(\.function)), noise: \(changed.insignificant.prefix(5).map(\.function))"
            )
            let callers = Set(top.paths.flatMap { $0.frames.dropLast() })
            #expect(changed.regressions.first { !callers.contains($0.function) }?.function == "main.hashLoop")
            #expect(callers.contains("main.cpuWorker"))
            #expect(top.significant && top.superiority > 0.9)
            // Three times the work per round of cpuWorker, measured against computePrimes, the round's other,
            // unchanged half (hashLoop's CPU per profile alone also moves with how many rounds a busy machine
            // lets the worker finish: x4.1 once in CI). This ratio too runs above 3 on a busy 2-core machine
            // (x4.4 in a fresh-clone run), probably because a worker that no longer sleeps between rounds
            // runs computePrimes with warm caches. So: clearly grown by the change, not by an absurd factor.
            let primes = try #require(
                (changed.regressions + changed.improvements + changed.insignificant).first { $0.function == "main.computePrimes" },
                "computePrimes not in the report")
            let ratio =
                (top.totalPerProfile.after / primes.totalPerProfile.after) / (top.totalPerProfile.before / primes.totalPerProfile.before)
            #expect(ratio > 2 && ratio < 6, "hashLoop per computePrimes: ×\(ratio)")
            #expect(top.paths.first?.frames.last == "main.hashLoop" && top.paths.first?.frames.contains("main.cpuWorker") == true)

            let markdown = try await report(normal, hot, format: "markdown")
            let rank = changed.regressions.firstIndex { $0.function == "main.hashLoop" }! + 1
            #expect(markdown.contains("| \(rank) | `main.hashLoop` |"), "\(markdown.prefix(2000))")
            let html = try await report(normal, hot, format: "html")
            #expect(html.contains("<svg") && html.contains("<title>main.hashLoop: "))

            // Windows of unchanged behaviour: halves and thirds of each phase. With q < 0.05 and no real
            // change, a pair reports anything at most 5 % of the time; allow one pair of the six.
            var pairs: [(ClosedRange<Int64>, ClosedRange<Int64>)] = []
            for phase in [normal, hot] {
                let third = (phase.upperBound - phase.lowerBound) / 3
                let (a, b) = (phase.lowerBound + third, phase.lowerBound + 2 * third)
                let mid = (phase.lowerBound + phase.upperBound) / 2
                pairs += [
                    (phase.lowerBound...mid, mid + 1...phase.upperBound), (phase.lowerBound...a, b...phase.upperBound),
                    (phase.lowerBound...a, a + 1...b),
                ]
            }
            var reporting: [String] = []
            for (a, b) in pairs {
                let r = try await decoded(a, b)
                #expect(r.baseline.profiles >= 4 && r.comparison.profiles >= 4)
                let found = (r.regressions + r.improvements).map(\.function)
                if !found.isEmpty { reporting.append(found.joined(separator: ", ")) }
            }
            print("regressions: \(reporting.count) of \(pairs.count) pairs of unchanged windows reported a change: \(reporting)")
            #expect(reporting.count <= 1, "\(reporting)")
            _ = try await dev.stop()
        }
        try await demo.stop()
    }
}

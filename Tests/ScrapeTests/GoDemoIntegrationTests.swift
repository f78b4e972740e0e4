import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Scrape

/// Scrapes the real Go demo program (demo/go-target) over HTTP.
@Suite("Scraping the Go demo target", .serialized, .requires(.go))
struct GoDemoIntegrationTests {
    /// Builds the demo with scripts/build-demo.sh; nil (with a recorded reason) when the build fails.
    static func demoBinary() throws -> URL? {
        let root = TestEnvironment.repoRoot
        _ = try TestEnvironment.requireGo()
        let p = Process()
        p.executableURL = root.appendingPathComponent("scripts/build-demo.sh")
        p.currentDirectoryURL = root
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            Issue.record("scripts/build-demo.sh failed: \(text)")
            return nil
        }
        return root.appendingPathComponent(".build-demo/go-target")
    }

    /// A running demo process; its address comes from the first stdout line.
    final class Demo: Sendable {
        let process: Process
        let address: String

        init(binary: URL, address requested: String = "127.0.0.1:0") throws {
            let p = Process()
            p.executableURL = binary
            p.arguments = ["-addr", requested]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            var line = [UInt8]()
            let handle = out.fileHandleForReading
            while true {  // blocking read of the first line; the demo prints it right after listen()
                let byte = handle.readData(ofLength: 1)
                if byte.isEmpty || byte.first == UInt8(ascii: "\n") { break }
                line.append(contentsOf: byte)
            }
            let text = String(decoding: line, as: UTF8.self)
            guard text.hasPrefix("listening on ") else {
                p.terminate()
                throw ScrapeError("demo did not report its address: \"\(text)\"")
            }
            process = p
            address = String(text.dropFirst("listening on ".count))
        }

        func stop() {
            process.terminate()
            process.waitUntilExit()
        }
    }

    static func config(address: String, interval: String = "3s") throws -> ScrapeConfiguration {
        try ScrapeConfiguration.parse(
            writerPrefix() + """
                pyroscope.scrape "demo" {
                  targets = [{"__address__" = "\(address)", "service_name" = "go-demo", "env" = "test"}]
                  forward_to = [pyroscope.write.w.receiver]
                  scrape_interval = "\(interval)"
                  tenant = "demo-tenant"
                }
                """, file: "demo.alloy")
    }

    /// `go tool pprof -top` over a profile body; the reference parser names the hot functions.
    static func topFunctions(_ body: [UInt8], sampleIndex: String? = nil) throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-\(UUID().uuidString).pb.gz")
        try Data(body).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        return try TestEnvironment.goToolPprof(
            ["-top", "-nodecount=40"] + (sampleIndex.map { ["-sample_index=\($0)"] } ?? []) + [file.path])
    }

    @Test("every enabled profile type is scraped with the right labels, gzip bodies and seconds=2 for CPU")
    func scrapeEveryProfile() async throws {
        guard let binary = try Self.demoBinary() else { return }
        let demo = try Demo(binary: binary)
        defer { demo.stop() }
        let config = try Self.config(address: demo.address)
        let job = try #require(config.scrapeJobs.first)
        #expect(job.deltaProfilingDuration == .seconds(2))
        let sink = InMemoryProfileSink()
        let fetcher = HTTPProfileFetcher()
        let manager = ScrapeManager(configuration: config, sink: sink, fetcher: fetcher)
        let runner = Task { await manager.run() }

        let expected: Set<String> = ["process_cpu", "memory", "mutex", "block", "goroutine"]
        let all = await waitUntil(timeout: .seconds(20)) { Set(sink.profiles.map(\.profileName)) == expected }
        runner.cancel()
        await runner.value
        try await fetcher.shutdown()
        #expect(
            all, "scraped: \(Set(sink.profiles.map(\.profileName))); health: \(manager.targetHealth.map { ($0.profile, $0.lastError) })")

        for profile in sink.profiles {
            #expect(profile.tenant == "demo-tenant")
            #expect(
                profile.labels == [
                    "__name__": profile.profileName, "service_name": "go-demo", "env": "test",
                    "job": "pyroscope.scrape.demo", "instance": demo.address,
                ])
            #expect(Array(profile.body.prefix(2)) == [0x1f, 0x8b], "\(profile.profileName) body is not gzip")
            #expect(profile.cumulative == ["memory", "mutex", "block"].contains(profile.profileName))
        }
        let cpu = try #require(sink.profiles.first { $0.profileName == "process_cpu" })
        #expect(cpu.url == "http://\(demo.address)/debug/pprof/profile?seconds=2")
        #expect(cpu.endTime.timeIntervalSince(cpu.startTime) >= 2.0)
        let cpuHealth = try #require(manager.targetHealth.first { $0.profile == "process_cpu" })
        #expect((cpuHealth.lastScrapeDurationSeconds ?? 0) >= 2.0)

        // The bodies are real profiles of the demo's named work, as Go's own pprof reads them.
        let hot: [String: String] = [
            "process_cpu": "main.computePrimes", "memory": "main.allocateBuffers",
            "mutex": "main.contendMutex", "block": "main.blockOnChannel",
            "goroutine": "main.mutexWorkers",
        ]
        for (name, function) in hot {
            let profile = try #require(sink.profiles.first { $0.profileName == name })
            let top = try Self.topFunctions(profile.body)
            #expect(top.contains(function), "\(name): \(function) not in\n\(top)")
        }
    }

    @Test("a closed port is down with its error and recovers when the target comes up")
    func downThenUp() async throws {
        guard let binary = try Self.demoBinary() else { return }
        // Find a free port by letting the demo pick one, then stop it: the port is now closed.
        let probe = try Demo(binary: binary)
        let address = probe.address
        probe.stop()

        let config = try ScrapeConfiguration.parse(
            writerPrefix() + """
                pyroscope.scrape "down" {
                  targets = [{"__address__" = "\(address)"}]
                  forward_to = [pyroscope.write.w.receiver]
                  scrape_interval = "2s"
                  profiling_config {
                    profile.process_cpu { enabled = false }
                    profile.memory { enabled = false }
                    profile.mutex { enabled = false }
                    profile.block { enabled = false }
                  }
                }
                """, file: "down.alloy")
        let sink = InMemoryProfileSink()
        let fetcher = HTTPProfileFetcher()
        let manager = ScrapeManager(
            configuration: config, sink: sink, fetcher: fetcher,
            options: ScrapeManagerOptions(spreadStartOffsets: false))
        let runner = Task { await manager.run() }
        let down = await waitUntil(timeout: .seconds(10)) { manager.targetHealth.first?.health == .down }
        #expect(down)
        let health = try #require(manager.targetHealth.first)
        #expect(!health.up)
        #expect(health.lastError?.lowercased().contains("refused") == true, "error: \(health.lastError ?? "nil")")
        #expect(sink.profiles.isEmpty)

        let demo = try Demo(binary: binary, address: address)
        defer { demo.stop() }
        let up = await waitUntil(timeout: .seconds(10)) { manager.targetHealth.first?.up == true }
        runner.cancel()
        await runner.value
        try await fetcher.shutdown()
        #expect(up, "health: \(manager.targetHealth)")
        #expect(manager.targetHealth.first?.lastError == nil)
        #expect(sink.profiles.contains { $0.profileName == "goroutine" })
        #expect(manager.stats.scrapeFailuresTotal >= 1)
    }

    @Test("body-size limit and per-scrape timeout turn into recorded errors")
    func limits() async throws {
        guard let binary = try Self.demoBinary() else { return }
        let demo = try Demo(binary: binary)
        defer { demo.stop() }
        let fetcher = HTTPProfileFetcher()
        do {
            _ = try await fetcher.fetch(
                ProfileRequest(
                    url: "http://\(demo.address)/debug/pprof/goroutine", timeout: .seconds(5),
                    maxBodyBytes: 16, credentials: .none, tls: nil))
            Issue.record("a body over the limit was accepted")
        } catch {
            #expect("\(error)" == "response body exceeds body_size_limit of 16 bytes")
        }
        // A CPU profile of 3 s cannot finish within a 1 s deadline.
        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try await fetcher.fetch(
                ProfileRequest(
                    url: "http://\(demo.address)/debug/pprof/profile?seconds=3",
                    timeout: .seconds(1), maxBodyBytes: 1 << 20, credentials: .none, tls: nil))
            Issue.record("a 3 s profile finished inside a 1 s timeout")
        } catch {
            let elapsed = clock.now - start
            #expect(elapsed < .milliseconds(2500), "timeout took \(elapsed)")
            #expect("\(error)".contains("timed out") || "\(error)".lowercased().contains("deadline"), "error: \(error)")
        }
        do {
            _ = try await fetcher.fetch(
                ProfileRequest(
                    url: "http://\(demo.address)/debug/pprof/no_such_profile", timeout: .seconds(5),
                    maxBodyBytes: 1 << 20, credentials: .none, tls: nil))
            Issue.record("an unknown profile was served")
        } catch {
            #expect("\(error)".hasPrefix("server returned HTTP status 404"), "error: \(error)")
        }
        try await fetcher.shutdown()
    }
}

import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Scrape

/// Routes discovery requests to a real HTTP client and records every scrape without a network.
final class DiscoveryThenRecord: ProfileFetcher {
    let discovery = HTTPProfileFetcher()
    let scrapes = RecordingFetcher { _ in [0x1f, 0x8b] }
    let discoveryURL: String

    init(discoveryURL: String) { self.discoveryURL = discoveryURL }

    func fetch(_ request: ProfileRequest) async throws -> [UInt8] {
        request.url == discoveryURL ? try await discovery.fetch(request) : try await scrapes.fetch(request)
    }
}

@Suite("discovery.http")
struct HTTPDiscoveryTests {
    @Test("an answer becomes targets with __address__, the group's labels and __meta_url")
    func parsesTargetGroups() throws {
        let url = "http://sd.example/targets"
        let targets = try HTTPTargetWatcher.parse(
            Data(#"[{"targets": ["a:1", "b:2"], "labels": {"env": "prod"}}, {"targets": ["c:3"]}]"#.utf8), url: url)
        #expect(targets.map { $0["__address__"] } == ["a:1", "b:2", "c:3"])
        #expect(targets.map { $0["env"] } == ["prod", "prod", nil])
        #expect(targets.allSatisfy { $0["__meta_url"] == url })
        #expect(throws: FileTargets.FormatError.self) { try HTTPTargetWatcher.parse(Data(#"{"targets": []}"#.utf8), url: url) }
    }

    /// A real HTTP server (Python's `http.server`) serves the target list from a folder; the scraper
    /// follows the list as it changes, relabels with `__meta_url`, and keeps the last good list while the
    /// server is gone.
    @Test("targets follow the served list; a vanished target stops within one refresh", .requires(.python()))
    func followsTheServedList() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let list = dir.url.appendingPathComponent("targets.json")
        try Data(#"[{"targets": ["127.0.0.1:1", "127.0.0.1:9"], "labels": {"service_name": "first"}}]"#.utf8).write(to: list)
        let server = try ChildProcess(
            TestEnvironment.venvPython, ["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", dir.url.path])
        defer { server.signal(SIGKILL) }
        let banner = try await server.waitForLine { $0.contains("Serving HTTP on") }
        let port = try #require(banner.split(separator: " ").firstIndex(of: "port").map { banner.split(separator: " ")[$0 + 1] })
        let url = "http://127.0.0.1:\(port)/targets.json"

        let text =
            writerPrefix() + """
                discovery.http "fleet" {
                  url = "\(url)"
                  refresh_interval = "200ms"
                }
                discovery.relabel "keep" {
                  targets = discovery.http.fleet.targets
                  rule {
                    source_labels = ["__address__"]
                    regex = "127.0.0.1:9"
                    action = "drop"
                  }
                  rule {
                    source_labels = ["__meta_url"]
                    target_label = "discovered_from"
                  }
                }
                pyroscope.scrape "s" {
                  targets = discovery.relabel.keep.output
                  forward_to = [pyroscope.write.w.receiver]
                  scrape_interval = "2s"
                  profiling_config {
                    profile.process_cpu { enabled = false }
                    profile.memory { enabled = false }
                    profile.mutex { enabled = false }
                    profile.block { enabled = false }
                  }
                }
                """
        let config = try ScrapeConfiguration.parse(text, file: "http.alloy")
        #expect(config.httpDiscoveries["fleet"]?.refreshInterval == .milliseconds(200))
        let fetcher = DiscoveryThenRecord(discoveryURL: url)
        let manager = ScrapeManager(
            configuration: config, sink: InMemoryProfileSink(), fetcher: fetcher, options: ScrapeManagerOptions(spreadStartOffsets: false))
        let running = Task { await manager.run() }
        defer { running.cancel() }

        let firstSeen = await waitUntil(timeout: .seconds(30)) {
            fetcher.scrapes.urls.contains("http://127.0.0.1:1/debug/pprof/goroutine")
        }
        #expect(firstSeen)
        #expect(manager.targetHealth.map(\.labels["service_name"]) == ["first"], "the relabel rule dropped 127.0.0.1:9")
        #expect(manager.targetHealth.map(\.labels["discovered_from"]) == [url])

        // The list changes: the old target goes, two new ones come.
        try Data(#"[{"targets": ["127.0.0.1:2", "127.0.0.1:3"], "labels": {"service_name": "second"}}]"#.utf8).write(to: list)
        let switched = await waitUntil(timeout: .seconds(30)) {
            Set(manager.targetHealth.map(\.url)) == [
                "http://127.0.0.1:2/debug/pprof/goroutine", "http://127.0.0.1:3/debug/pprof/goroutine",
            ]
        }
        #expect(switched, "health: \(manager.targetHealth.map(\.url))")
        let scrapedNew = await waitUntil(timeout: .seconds(30)) {
            fetcher.scrapes.urls.contains("http://127.0.0.1:2/debug/pprof/goroutine")
                && fetcher.scrapes.urls.contains("http://127.0.0.1:3/debug/pprof/goroutine")
        }
        #expect(scrapedNew)

        // The server goes away: the error is shown, the last good targets stay.
        server.signal(SIGKILL)
        _ = try await server.waitForExit()
        let errorShown = await waitUntil(timeout: .seconds(30)) {
            manager.status.discoveryErrors.keys.contains("discovery.http.fleet: \(url)")
        }
        #expect(errorShown, "\(manager.status.discoveryErrors)")
        #expect(manager.targetHealth.count == 2)
        running.cancel()
        await running.value
        try await fetcher.discovery.shutdown()
    }

    /// Alloy's way to shard a fleet over scraper replicas: each replica keeps the targets whose `hashmod`
    /// of the address is its own number. Three replicas over 60 targets discovered from one HTTP list
    /// scrape every target, each exactly once.
    @Test("3 replicas with hashmod over 60 discovered targets scrape each target exactly once", .requires(.python()))
    func hashmodShardsDiscoveredTargets() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let addresses = (0..<60).map { "10.1.\($0 / 10).\($0 % 10):6060" }
        let list = #"[{"targets": ["# + addresses.map { "\"\($0)\"" }.joined(separator: ", ") + #"], "labels": {"service_name": "fleet"}}]"#
        try Data(list.utf8).write(to: dir.url.appendingPathComponent("targets.json"))
        let server = try ChildProcess(
            TestEnvironment.venvPython, ["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", dir.url.path])
        defer { server.signal(SIGKILL) }
        let banner = try await server.waitForLine { $0.contains("Serving HTTP on") }
        let port = try #require(banner.split(separator: " ").firstIndex(of: "port").map { banner.split(separator: " ")[$0 + 1] })
        let url = "http://127.0.0.1:\(port)/targets.json"

        var replicas: [(ScrapeManager, DiscoveryThenRecord, Task<Void, Never>)] = []
        for replica in 0..<3 {
            let text =
                writerPrefix() + """
                    discovery.http "fleet" {
                      url = "\(url)"
                    }
                    discovery.relabel "shard" {
                      targets = discovery.http.fleet.targets
                      rule {
                        source_labels = ["__address__"]
                        modulus = 3
                        target_label = "__tmp_hash"
                        action = "hashmod"
                      }
                      rule {
                        source_labels = ["__tmp_hash"]
                        regex = "\(replica)"
                        action = "keep"
                      }
                    }
                    pyroscope.scrape "s" {
                      targets = discovery.relabel.shard.output
                      forward_to = [pyroscope.write.w.receiver]
                      profiling_config {
                        profile.process_cpu { enabled = false }
                        profile.memory { enabled = false }
                        profile.mutex { enabled = false }
                        profile.block { enabled = false }
                      }
                    }
                    """
            let fetcher = DiscoveryThenRecord(discoveryURL: url)
            let manager = ScrapeManager(
                configuration: try ScrapeConfiguration.parse(text, file: "replica\(replica).alloy"), sink: InMemoryProfileSink(),
                fetcher: fetcher, options: ScrapeManagerOptions(spreadStartOffsets: false))
            replicas.append((manager, fetcher, Task { await manager.run() }))
        }
        func scrapedBy() -> [String: [Int]] {
            var owners: [String: [Int]] = [:]
            for (i, (_, fetcher, _)) in replicas.enumerated() {
                for scraped in Set(fetcher.scrapes.urls) { owners[scraped, default: []].append(i) }
            }
            return owners
        }
        let all = await waitUntil(timeout: .seconds(30)) { scrapedBy().count == 60 }
        #expect(all, "\(scrapedBy().count) of 60 targets scraped")
        let owners = scrapedBy()
        #expect(Set(owners.keys) == Set(addresses.map { "http://\($0)/debug/pprof/goroutine" }))
        #expect(owners.values.allSatisfy { $0.count == 1 }, "\(owners.filter { $0.value.count != 1 })")
        #expect(replicas.allSatisfy { !$0.1.scrapes.urls.isEmpty }, "a replica owns nothing")
        for (_, fetcher, task) in replicas {
            task.cancel()
            await task.value
            try await fetcher.discovery.shutdown()
        }
    }
}

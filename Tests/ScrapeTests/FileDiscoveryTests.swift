import Foundation
import Testing

@testable import Scrape

@Suite("discovery.file")
struct FileDiscoveryTests {
    @Test("file_sd JSON: targets and group labels, __meta_filepath")
    func json() throws {
        let data = Data(#"[{"targets": ["a:1", "b:2"], "labels": {"service_name": "cart"}}, {"targets": ["c:3"]}]"#.utf8)
        let targets = try FileTargets.parse(data, path: "/x/t.json")
        #expect(
            targets == [
                ["__address__": "a:1", "service_name": "cart", "__meta_filepath": "/x/t.json"],
                ["__address__": "b:2", "service_name": "cart", "__meta_filepath": "/x/t.json"],
                ["__address__": "c:3", "__meta_filepath": "/x/t.json"],
            ])
        #expect(throws: FileTargets.FormatError.self) { try FileTargets.parse(Data(#"{"targets": []}"#.utf8), path: "t.json") }
        #expect(throws: FileTargets.FormatError.self) { try FileTargets.parse(Data(#"[{"targets": [1]}]"#.utf8), path: "t.json") }
    }

    @Test("file_sd YAML subset: block and flow lists and maps, quotes, comments")
    func yaml() throws {
        let text = """
            # fleet
            - targets:
                - 10.0.0.1:6060
                - "10.0.0.2:6060"   # quoted
              labels:
                service_name: cart
                env: 'prod'
            - targets: ['10.0.0.3:6060', "10.0.0.4:6060"]
              labels: {service_name: search, team: "a#b"}
            """
        let targets = try FileTargets.parse(Data(text.utf8), path: "f.yaml")
        #expect(targets.map { $0["__address__"]! } == ["10.0.0.1:6060", "10.0.0.2:6060", "10.0.0.3:6060", "10.0.0.4:6060"])
        #expect(targets[1]["env"] == "prod" && targets[1]["service_name"] == "cart")
        #expect(targets[3]["team"] == "a#b" && targets[3]["service_name"] == "search")
        do {
            _ = try FileTargets.parse(Data("- targets:\n    - a:1\n  hosts: x\n".utf8), path: "bad.yml")
            Issue.record("unknown key accepted")
        } catch let e as FileTargets.FormatError {
            #expect(e.description == #"bad.yml:3: unknown key "hosts" in target group (expected targets or labels)"#)
        }
    }

    @Test("targets are re-read when the file changes; scrape loops follow")
    func reReadOnChange() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let file = dir.url.appendingPathComponent("targets.json")
        try Data(#"[{"targets": ["127.0.0.1:1"], "labels": {"service_name": "first"}}]"#.utf8).write(to: file)
        let text =
            writerPrefix() + """
                discovery.file "fleet" {
                  files = ["*.json"]
                  refresh_interval = "100ms"
                }
                pyroscope.scrape "s" {
                  targets = discovery.file.fleet.targets
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
        let config = try ScrapeConfiguration.parse(text, file: "files.alloy", baseDirectory: dir.url)
        #expect(config.fileDiscoveries["fleet"]?.files == [dir.url.appendingPathComponent("*.json").path])
        let fetcher = RecordingFetcher { _ in [0x1f, 0x8b] }
        let sink = InMemoryProfileSink()
        let manager = ScrapeManager(
            configuration: config, sink: sink, fetcher: fetcher,
            options: ScrapeManagerOptions(spreadStartOffsets: false))
        let running = Task { await manager.run() }
        defer { running.cancel() }

        let firstSeen = await waitUntil(timeout: .seconds(30)) {
            fetcher.urls.contains("http://127.0.0.1:1/debug/pprof/goroutine")
        }
        #expect(firstSeen)
        #expect(manager.targetHealth.map(\.labels["service_name"]) == ["first"])

        // Rewrite the file with a different target; a second file appears too (the glob picks it up).
        try Data(#"[{"targets": ["127.0.0.1:2"], "labels": {"service_name": "second"}}]"#.utf8).write(to: file)
        try Data(#"[{"targets": ["127.0.0.1:3"]}]"#.utf8).write(to: dir.url.appendingPathComponent("more.json"))
        let switched = await waitUntil(timeout: .seconds(30)) {
            Set(manager.targetHealth.compactMap { $0.labels["service_name"] }) == ["second", "unspecified"]
        }
        #expect(switched, "health: \(manager.targetHealth.map(\.labels))")
        let scrapedNew = await waitUntil(timeout: .seconds(30)) {
            fetcher.urls.contains("http://127.0.0.1:2/debug/pprof/goroutine")
                && fetcher.urls.contains("http://127.0.0.1:3/debug/pprof/goroutine")
        }
        #expect(scrapedNew)

        // A broken rewrite keeps the last good targets and reports the error.
        try Data("not json".utf8).write(to: file)
        let errorShown = await waitUntil(timeout: .seconds(30)) { !manager.status.discoveryErrors.isEmpty }
        #expect(errorShown)
        #expect(Set(manager.targetHealth.compactMap { $0.labels["service_name"] }) == ["second", "unspecified"])
        running.cancel()
        await running.value
    }
}

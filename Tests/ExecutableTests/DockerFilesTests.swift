import Foundation
import Scrape
import TestSupport
import Testing

/// docker/ cannot be run here (no Docker engine), so these tests check that what its files name exists:
/// executables, their flags, the products built, the provisioned data source and the Alloy config.
@Suite struct DockerFilesTests {
    static let docker = TestEnvironment.repoRoot.appendingPathComponent("docker")
    static let executables = ["kiln", "kiln-scraper", "kiln-normalizer", "kiln-compactor", "kiln-query", "kiln-ruler"]

    /// A YAML mapping as JSON, parsed by PyYAML from the project's venv (tests that use it are marked
    /// `.requires(.python("yaml"))`).
    static func yaml(_ file: URL) async throws -> [String: Any] {
        let result = try await runToCompletion(
            TestEnvironment.venvPython,
            ["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))", file.path])
        try #require(result.status == 0, "\(file.lastPathComponent) does not parse: \(result.output)")
        let object = try JSONSerialization.jsonObject(with: Data(result.output.utf8))
        return try #require(object as? [String: Any], "\(file.lastPathComponent) is not a YAML mapping")
    }

    @Test(.requires(.python("yaml"))) func composeRunsKilnCommandsWithFlagsTheyHave() async throws {
        let compose = try await Self.yaml(Self.docker.appendingPathComponent("compose.yaml"))
        let services = try #require(compose["services"] as? [String: Any], "compose.yaml has no services")
        for needed in [
            "kafka", "minio", "go-demo", "grafana", "prometheus", "kiln-scraper", "kiln-normalizer", "kiln-compactor", "kiln-query",
            "kiln-ruler",
        ] {
            #expect(services[needed] != nil, "compose has no \(needed) service")
        }
        var checked = 0
        for (name, value) in services {
            guard let service = value as? [String: Any], let command = service["command"] as? [String],
                let executable = command.first, Self.executables.contains(executable)
            else { continue }
            let help = try await runToCompletion(TestEnvironment.binDir.appendingPathComponent(executable), ["--help"]).output
            for flag in command where flag.hasPrefix("--") {
                #expect(help.contains(flag), "\(name): \(executable) has no \(flag)")
            }
            for mount in service["volumes"] as? [String] ?? [] {
                let source = mount.split(separator: ":")[0]
                #expect(
                    FileManager.default.fileExists(atPath: Self.docker.appendingPathComponent(String(source)).path),
                    "\(name) mounts missing \(source)")
            }
            checked += 1
        }
        #expect(checked == 5)
    }

    @Test func imageBuildsEveryExecutable() throws {
        let dockerfile = try String(contentsOf: Self.docker.appendingPathComponent("Dockerfile"), encoding: .utf8)
        let package = try String(contentsOf: TestEnvironment.repoRoot.appendingPathComponent("Package.swift"), encoding: .utf8)
        for executable in Self.executables {
            #expect(
                dockerfile.contains(" \(executable) ") || dockerfile.contains(" \(executable);"), "Dockerfile does not build \(executable)")
            #expect(package.contains(".executable(name: \"\(executable)\""))
        }
        let demo = try String(contentsOf: Self.docker.appendingPathComponent("go-demo.Dockerfile"), encoding: .utf8)
        #expect(demo.contains("COPY demo/go-target"))
        #expect(FileManager.default.fileExists(atPath: TestEnvironment.repoRoot.appendingPathComponent("demo/go-target/main.go").path))
    }

    @Test(.requires(.python("yaml"))) func grafanaDataSourcePointsAtKilnQuery() async throws {
        let file = try await Self.yaml(Self.docker.appendingPathComponent("grafana/datasource.yaml"))
        let sources = try #require(file["datasources"] as? [[String: Any]], "datasource.yaml has no datasources list")
        #expect(sources.count == 2)
        #expect(sources.first { $0["type"] as? String == "grafana-pyroscope-datasource" }?["url"] as? String == "http://kiln-query:4040")
        #expect(sources.first { $0["type"] as? String == "prometheus" }?["url"] as? String == "http://prometheus:9090")
    }

    @Test func alloyConfigParses() throws {
        let config = try ScrapeConfiguration.load(contentsOf: Self.docker.appendingPathComponent("alloy/demo.alloy"))
        #expect(config.scrapeJobs.count == 1)
        #expect(config.writers.values.contains { $0.kafka?.brokers.contains("kafka:9092") == true })
    }
}

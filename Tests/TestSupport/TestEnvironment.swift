import Foundation

/// Where the integration tests find what `make test` started for them, and the shared fixtures.
public enum TestEnvironment {
    /// Bootstrap servers of the Tansu broker started by scripts/test-env.sh, e.g. `127.0.0.1:19092`.
    public static var kafkaBrokers: String? { value("KILN_TEST_KAFKA_BROKERS") }
    /// Endpoint of the moto S3 server started by scripts/test-env.sh, e.g. `http://127.0.0.1:19000`.
    public static var s3Endpoint: String? { value("KILN_TEST_S3_ENDPOINT") }
    /// True under `make test`: a missing broker or S3 server is then a failure, not a skip.
    public static var integrationRequired: Bool { value("KILN_REQUIRE_INTEGRATION") == "1" }

    /// The repo's root folder (holds Package.swift).
    public static var repoRoot: URL {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }

    /// `../shared/fixtures` beside the repo, or `KILN_FIXTURES_DIR`.
    public static var fixturesDir: URL {
        if let dir = value("KILN_FIXTURES_DIR") { return URL(fileURLWithPath: dir) }
        return repoRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures")
    }

    /// The folder holding the built executables (`kiln`, `kiln-scraper`, ...).
    public static var binDir: URL {
        if let dir = value("KILN_BIN_DIR") { return URL(fileURLWithPath: dir) }
        return repoRoot.appendingPathComponent(".build/debug")
    }

    private static func value(_ name: String) -> String? {
        guard let v = ProcessInfo.processInfo.environment[name], !v.isEmpty else { return nil }
        return v
    }
}

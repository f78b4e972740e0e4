import Foundation
import TestSupport
import Testing

/// The executables as a user runs them: `--help`, the admin endpoints, and a clean stop on SIGTERM.
@Suite struct ServiceExecutableTests {
    static let services = ["kiln-scraper", "kiln-normalizer", "kiln-compactor", "kiln-query"]

    @Test(arguments: services + ["kiln"])
    func helpDescribesTheCommand(executable: String) async throws {
        let (status, output) = try await runToCompletion(TestEnvironment.binDir.appendingPathComponent(executable), ["--help"])
        #expect(status == 0)
        #expect(output.contains("USAGE: \(executable)"))
        if executable != "kiln" {
            for flag in ["--log-level", "--admin-listen", "KILN_LOG_LEVEL"] { #expect(output.contains(flag), "\(flag) missing") }
        }
    }

    @Test func unknownFlagIsRejectedWithItsName() async throws {
        let (status, output) = try await runToCompletion(TestEnvironment.binDir.appendingPathComponent("kiln-query"), ["--no-such-flag"])
        #expect(status != 0)
        #expect(output.contains("--no-such-flag"))
    }

    @Test func badLogLevelFromEnvironmentNamesTheValue() async throws {
        let (status, output) = try await runToCompletion(
            TestEnvironment.binDir.appendingPathComponent("kiln-query"), ["--admin-listen", "127.0.0.1:0"],
            environment: ["KILN_LOG_LEVEL": "loud"])
        #expect(status != 0)
        #expect(output.contains("unknown log level \"loud\""))
    }
}

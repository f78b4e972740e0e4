import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Something a test needs from outside the repo: a broker, an S3 server, the shared fixtures, Chromium,
/// Go, Python packages, root for a tmpfs. The one skip rule of the test suite is built on it:
///
/// - everything present: the test runs;
/// - something missing outside `make test`: the test is skipped, and the output names what is missing
///   and how to get it;
/// - something missing under `make test` (KILN_REQUIRE_INTEGRATION=1): the test fails, naming it.
///
/// Declare it with the `.requires(...)` trait; where only some arguments of a parameterised test need
/// it, call `check()` in the test case instead. A test never prints "skipped" and returns (that reports a pass).
public struct Requirement: Sendable, CustomStringConvertible {
    /// What is needed, e.g. "a Kafka broker".
    public let name: String
    private let probe: @Sendable () async -> String?

    /// `probe` answers nil when the thing is available, else why not and how to get it.
    public init(_ name: String, probe: @escaping @Sendable () async -> String?) {
        self.name = name
        self.probe = probe
    }

    /// Nil when available; otherwise why not and how to get it.
    public var missing: String? {
        get async { await probe() }
    }

    public var description: String { name }

    /// The one rule, inside a running test (or one test case of a parameterised test): returns when the
    /// requirement is met; skips the test (case) outside `make test`; fails it under `make test`.
    public func check(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        guard let why = await missing else { return }
        if TestEnvironment.integrationRequired {
            throw RequirementMissing("KILN_REQUIRE_INTEGRATION=1 but \(name) is missing: \(why)")
        }
        try Test.cancel(Comment(rawValue: "needs \(name): \(why)"), sourceLocation: sourceLocation)
    }
}

/// A requirement that is missing under `make test`.
public struct RequirementMissing: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

// MARK: - What the tests need

extension Requirement {
    /// The Tansu broker scripts/test-env.sh starts (KILN_TEST_KAFKA_BROKERS).
    public static let kafka = Requirement("a Kafka broker") {
        TestEnvironment.kafkaBrokers == nil ? "KILN_TEST_KAFKA_BROKERS is not set (scripts/test-env.sh start && . run/test-env.sh)" : nil
    }

    /// The moto S3 server scripts/test-env.sh starts (KILN_TEST_S3_ENDPOINT).
    public static let s3 = Requirement("an S3 server") {
        TestEnvironment.s3Endpoint == nil ? "KILN_TEST_S3_ENDPOINT is not set (scripts/test-env.sh start && . run/test-env.sh)" : nil
    }

    /// The Prometheus scripts/test-env.sh starts (KILN_TEST_PROMETHEUS_URL).
    public static let prometheus = Requirement("a Prometheus server") {
        TestEnvironment.prometheusURL == nil ? "KILN_TEST_PROMETHEUS_URL is not set (scripts/test-env.sh start && . run/test-env.sh)" : nil
    }

    /// The shared pprof corpus (`<fixtures>/pprof` with its EXPECTED.json).
    public static let fixtures = Requirement("the shared pprof fixtures") {
        let expected = TestEnvironment.fixturesDir.appendingPathComponent("pprof/EXPECTED.json")
        return FileManager.default.fileExists(atPath: expected.path)
            ? nil : "\(expected.path) does not exist (set KILN_FIXTURES_DIR to the shared fixtures folder)"
    }

    /// One file of the shared fixtures, by its path inside the fixtures folder (e.g. "alloy/seed.alloy").
    public static func fixture(_ path: String) -> Requirement {
        Requirement("the fixture \(path)") {
            let url = TestEnvironment.fixturesDir.appendingPathComponent(path)
            return FileManager.default.fileExists(atPath: url.path)
                ? nil : "\(url.path) does not exist (set KILN_FIXTURES_DIR to the shared fixtures folder)"
        }
    }

    /// Headless Chromium (KILN_CHROMIUM, else chromium, chromium-browser or google-chrome on PATH).
    public static let chromium = Requirement("a Chromium binary") {
        TestEnvironment.chromiumPath == nil
            ? "no chromium, chromium-browser or google-chrome on PATH and KILN_CHROMIUM is not set (apt-get install chromium)" : nil
    }

    /// The Go toolchain (Debian's golang-go), for the Go demo program and `go tool pprof`.
    public static let go = Requirement("Go") {
        TestEnvironment.goPath == nil ? "no go in /usr/bin, /usr/local/go/bin or on PATH (apt-get install golang-go)" : nil
    }

    /// Graphviz's `dot`, which renders the DOT graphs Kiln answers.
    public static let graphviz = Requirement("Graphviz's dot") {
        ["/usr/bin/dot", "/usr/local/bin/dot"].contains { FileManager.default.isExecutableFile(atPath: $0) }
            ? nil : "no dot in /usr/bin or /usr/local/bin (apt-get install graphviz)"
    }

    /// Debian's dnsmasq (package dnsmasq-base), a real DNS server for `discovery.dns`.
    public static let dnsmasq = Requirement("dnsmasq") {
        FileManager.default.isExecutableFile(atPath: "/usr/sbin/dnsmasq") ? nil : "no /usr/sbin/dnsmasq (apt-get install dnsmasq-base)"
    }

    /// Debian's openssl command, for certificates made per test.
    public static let openssl = Requirement("openssl") {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") ? nil : "no /usr/bin/openssl (apt-get install openssl)"
    }

    /// A Python that can import `modules`: `interpreter`, else the repo's .venv (scripts/setup.sh).
    public static func python(_ modules: String..., interpreter: URL? = nil) -> Requirement {
        let executable = interpreter ?? TestEnvironment.venvPython
        let list = modules.joined(separator: ", ")
        let name = modules.isEmpty ? "Python at \(executable.path)" : "Python with \(list) at \(executable.path)"
        return Requirement(name) {
            await Requirement.cached("python \(executable.path) \(list)") {
                guard FileManager.default.isExecutableFile(atPath: executable.path) else {
                    return "\(executable.path) does not exist (scripts/setup.sh creates the .venv)"
                }
                guard !modules.isEmpty else { return nil }
                do {
                    let result = try await runToCompletion(executable, ["-c", "import " + list], timeout: .seconds(60))
                    if result.status == 0 { return nil }
                    let last = result.output.split(separator: "\n").last.map(String.init) ?? "exit status \(result.status)"
                    return "\(executable.path) cannot import \(list): \(last) (scripts/setup.sh installs them)"
                } catch {
                    return "\(executable.path) could not be run: \(error)"
                }
            }
        }
    }

    /// An executable of the repo's .venv, e.g. "tansu" or "moto_server" (scripts/setup.sh installs them).
    public static func venvTool(_ name: String) -> Requirement {
        Requirement(".venv/bin/\(name)") {
            let url = TestEnvironment.repoRoot.appendingPathComponent(".venv/bin/\(name)")
            return FileManager.default.isExecutableFile(atPath: url.path)
                ? nil : "\(url.path) does not exist (scripts/setup.sh installs it)"
        }
    }

    /// Kiln's executables, built into `TestEnvironment.binDir` (KILN_BIN_DIR, else .build/debug).
    public static func executables(_ names: String...) -> Requirement {
        Requirement("the built \(names.joined(separator: ", "))") {
            let bin = TestEnvironment.binDir
            let absent = names.filter { !FileManager.default.isExecutableFile(atPath: bin.appendingPathComponent($0).path) }
            return absent.isEmpty ? nil : "\(absent.joined(separator: ", ")) not built in \(bin.path) (swift build)"
        }
    }

    /// Root, to mount a small tmpfs (a real full or read-only disk). CI runs the tests as root.
    public static let tmpfsMount = Requirement("root to mount a tmpfs") {
        await Requirement.cached("tmpfs") {
            guard geteuid() == 0 else { return "the tests do not run as root (CI does)" }
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-tmpfs-probe-\(UInt32.random(in: 0 ... .max))")
            do {
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(at: dir) }
                let mount = try await runToCompletion(
                    URL(fileURLWithPath: "/bin/mount"), ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir.path],
                    timeout: .seconds(10))
                guard mount.status == 0 else { return "mount -t tmpfs failed (\(mount.status)): \(mount.output)" }
                _ = try await runToCompletion(URL(fileURLWithPath: "/bin/umount"), [dir.path], timeout: .seconds(10))
                return nil
            } catch {
                return "mount -t tmpfs could not be run: \(error)"
            }
        }
    }

    /// Probes that start a process run once per test process.
    private static let probeResults = Mutex<[String: String?]>([:])

    private static func cached(_ key: String, _ probe: () async -> String?) async -> String? {
        if let known = probeResults.withLock({ $0[key] }) { return known }
        let result = await probe()
        probeResults.withLock { $0[key] = .some(result) }
        return result
    }
}

// MARK: - The trait

/// `.requires(...)`: see `Requirement`. On a suite it applies to every test in it.
public struct RequirementTrait: TestTrait, SuiteTrait {
    public var requirements: [Requirement]
    public var sourceLocation: SourceLocation

    public var isRecursive: Bool { true }

    public func prepare(for test: Test) async throws {
        var missing: [String] = []
        for requirement in requirements {
            if let why = await requirement.missing { missing.append("\(requirement.name): \(why)") }
        }
        guard !missing.isEmpty else { return }
        let list = missing.joined(separator: "; ")
        if TestEnvironment.integrationRequired {
            // Not a skip: the planner records this error as the test's failure.
            throw RequirementMissing("KILN_REQUIRE_INTEGRATION=1 but a requirement is missing: \(list)")
        }
        // Swift Testing's own condition trait does the skipping, so the reason shows as the skip's comment.
        try await ConditionTrait.disabled(Comment(rawValue: "needs \(list)"), sourceLocation: sourceLocation).prepare(for: test)
    }
}

extension Trait where Self == RequirementTrait {
    /// Runs the test when every requirement is met; otherwise skips it with the reason, or, under
    /// `make test` (KILN_REQUIRE_INTEGRATION=1), fails it with the reason.
    public static func requires(_ requirements: Requirement..., sourceLocation: SourceLocation = #_sourceLocation) -> Self {
        RequirementTrait(requirements: requirements, sourceLocation: sourceLocation)
    }
}

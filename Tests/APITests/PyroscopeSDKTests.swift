import Foundation
import APICommon
import IngestAPI
import QueryAPI
import KilnProtos
import ProfileModel
import Records
import Testing
import TestSupport

/// The real Pyroscope Python SDK (PyPI `pyroscope-io`, pyroscope-rs inside) pushing to Kiln. It sends
/// Connect `application/proto` with `Content-Encoding: gzip`. The interpreter comes from
/// KILN_PYROSCOPE_PYTHON, else the repo's .venv when it has the package; otherwise the test is skipped
/// with a message (or fails under KILN_REQUIRE_INTEGRATION=1).
@Suite struct PyroscopeSDKTests {
    static func python() async -> URL? {
        var candidates: [URL] = []
        if let env = ProcessInfo.processInfo.environment["KILN_PYROSCOPE_PYTHON"], !env.isEmpty { candidates.append(URL(fileURLWithPath: env)) }
        candidates.append(TestEnvironment.repoRoot.appendingPathComponent(".venv/bin/python"))
        for c in candidates where FileManager.default.isExecutableFile(atPath: c.path) {
            if let r = try? await runToCompletion(c, ["-c", "import pyroscope"], timeout: .seconds(30)), r.status == 0 { return c }
        }
        return nil
    }

    @Test func pythonSDKPushLandsAsEnvelopes() async throws {
        guard let python = await Self.python() else {
            let message = "PyroscopeSDKTests: no Python with pyroscope-io (pip install pyroscope-io into .venv or set KILN_PYROSCOPE_PYTHON); skipped"
            if TestEnvironment.integrationRequired { Issue.record(Comment(rawValue: message)) } else { print(message) }
            return
        }
        let app = "kiln-sdk-\(UInt32.random(in: 0 ... .max))"
        let publisher = InMemoryRawPublisher()
        try await withIngestServer(publisher: publisher) { base in
            let script = """
            import pyroscope, time
            pyroscope.configure(application_name="\(app)", server_address="\(base)", tags={"env": "sdk-test"},
                                sample_rate=100, tenant_id="sdk-tenant")
            def burn():
                x = 0
                for i in range(100000): x += i * i
                return x
            t = time.time()
            while time.time() - t < 3: burn()
            pyroscope.shutdown()
            """
            let result = try await runToCompletion(python, ["-c", script], timeout: .seconds(60))
            #expect(result.status == 0, "\(result.output)")
        }
        let envelopes = publisher.envelopes
        #expect(!envelopes.isEmpty, "the SDK's shutdown flushes at least one profile")
        for e in envelopes {
            #expect(e.tenant == "sdk-tenant")
            #expect(e.format == .pprof)
            #expect(e.source == .push)
            #expect(e.labels["service_name"] == app)
            #expect(e.labels["env"] == "sdk-test")
            #expect(e.payload.count > 20)
        }
        print("pyroscope-io pushed \(envelopes.count) profile(s) with labels \(envelopes.first.map { "\($0.labels)" } ?? "-")")
    }
}

import APICommon
import Foundation
import IngestAPI
import KilnProtos
import ProfileModel
import QueryAPI
import Records
import TestSupport
import Testing

/// The real Pyroscope Python SDK (PyPI `pyroscope-io`, pyroscope-rs inside) pushing to Kiln. It sends
/// Connect `application/proto` with `Content-Encoding: gzip`. The interpreter is KILN_PYROSCOPE_PYTHON,
/// else the repo's .venv (scripts/setup.sh installs pyroscope-io there).
@Suite struct PyroscopeSDKTests {
    static var python: URL {
        if let env = ProcessInfo.processInfo.environment["KILN_PYROSCOPE_PYTHON"], !env.isEmpty { return URL(fileURLWithPath: env) }
        return TestEnvironment.venvPython
    }

    @Test(.requires(.python("pyroscope", interpreter: PyroscopeSDKTests.python)))
    func pythonSDKPushLandsAsEnvelopes() async throws {
        let python = Self.python
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

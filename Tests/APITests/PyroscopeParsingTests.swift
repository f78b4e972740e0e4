import APICommon
import Foundation
import IngestAPI
import KilnProtos
import QueryAPI
import Testing

@Suite struct PyroscopeParsingTests {
    @Test func nameWithLabels() throws {
        let name = try PyroscopeName(parsing: "my.app.cpu{env=staging, region = us-west-1}")
        #expect(name.application == "my.app.cpu")
        #expect(name.labels.map(\.name) == ["env", "region"])
        #expect(name.labels.map(\.value) == ["staging", "us-west-1"])
        let type = try name.foldedType()
        #expect(type == .init(metricName: "process_cpu", sampleType: "samples", sampleUnit: "count", application: "my.app"))
    }

    @Test func nameSuffixes() throws {
        let cases: [(String, String, String, String)] = [
            ("svc.inuse_space", "memory", "inuse_space", "bytes"),
            ("svc.alloc_objects", "memory", "alloc_objects", "count"),
            ("svc.goroutines", "goroutine", "goroutines", "count"),
            ("svc.mutex_count", "mutex", "contentions", "count"),
            ("svc.mutex_duration", "mutex", "delay", "nanoseconds"),
            ("svc.block_duration", "block", "delay", "nanoseconds"),
            ("svc.lock_count", "block", "contentions", "count"),
            ("svc.wall", "wall", "samples", "count"),
            ("svc.itimer", "process_cpu", "samples", "count"),
            ("svc.exceptions", "exceptions", "samples", "count"),
            ("svc", "process_cpu", "samples", "count"),
        ]
        for (text, metric, type, unit) in cases {
            let t = try PyroscopeName(parsing: text).foldedType()
            #expect(t.metricName == metric, "\(text)")
            #expect(t.sampleType == type, "\(text)")
            #expect(t.sampleUnit == unit, "\(text)")
            #expect(t.application == (text == "svc" ? "svc" : "svc"))
        }
        #expect(throws: APIError.self) { try PyroscopeName(parsing: "svc.bogus").foldedType() }
    }

    @Test func badNames() {
        for bad in ["", "{env=x}", "my app{}", "app{bad-label=1}", "app{__name__=x}", "app{=x}"] {
            #expect(throws: APIError.self, "\(bad)") { try PyroscopeName(parsing: bad) }
        }
    }

    @Test func times() {
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(PyroscopeTime.parse("1690000000", now: now).timeIntervalSince1970 == 1_690_000_000)
        #expect(PyroscopeTime.parse("1690000000123", now: now).timeIntervalSince1970 == 1_690_000_000.123)
        #expect(PyroscopeTime.nanos(PyroscopeTime.parse("1690000000123456789", now: now)) / 1000 == 1_690_000_000_123_456)
        #expect(PyroscopeTime.parse("now", now: now) == now)
        #expect(PyroscopeTime.parse("now-1h", now: now) == now.addingTimeInterval(-3600))
        #expect(PyroscopeTime.parse("now-1h30m", now: now) == now.addingTimeInterval(-5400))
        #expect(PyroscopeTime.parse("now+2d", now: now) == now.addingTimeInterval(2 * 86400))
        #expect(PyroscopeTime.parse("20230102", now: now).timeIntervalSince1970 == 1_672_617_600)
    }

    @Test func tenants() {
        #expect(TenantID.validationError("team-a_1.(prod)*!'") == nil)
        #expect(TenantID.validationError("a/b") != nil)
        #expect(TenantID.validationError("..") != nil)
        // Top-level folders starting with "_" hold Kiln's own state (leases): no tenant may write there.
        #expect(TenantID.validationError("_kiln")?.contains("reserved") == true)
        #expect(TenantID.validationError("_x") != nil)
        #expect(TenantID.validationError("a_") == nil)
        #expect(throws: APIError.self) { try TenantID.resolve("_kiln").get() }
        #expect(TenantID.validationError(String(repeating: "x", count: 151)) != nil)
        #expect(TenantID.validationError(String(repeating: "x", count: 150)) == nil)
        #expect((try? TenantID.resolve(nil).get()) == "anonymous")
    }

    @Test func formQuery() {
        let q = FormQuery.parse("name=my.app.cpu%7Benv%3Dstaging%2Cregion%3Dus%7D&from=1&spyName=a+b&from=2")
        #expect(q["name"] == "my.app.cpu{env=staging,region=us}")
        #expect(q["from"] == "1")
        #expect(q["spyName"] == "a b")
    }
}

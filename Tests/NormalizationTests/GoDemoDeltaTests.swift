import Foundation
import Normalization
import PprofCodec
import ProfileModel
import Records
import TestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Deltas on successive scrapes of a real Go program's cumulative endpoints.
@Suite(.serialized, .requires(.go)) struct GoDemoDeltaTests {
    /// Sum per sample type name, straight from the decoded profile.
    static func totals(_ bytes: [UInt8]) throws -> [String: Int64] {
        let p = try PprofDecoder().decode(bytes)
        var out: [String: Int64] = [:]
        for s in 0..<p.sampleCount where !p.stack(s).isEmpty {
            for (t, v) in p.values(s).enumerated() { out[p.string(p.sampleTypes[t].type), default: 0] += v }
        }
        return out
    }

    @Test(arguments: [
        ("/debug/pprof/allocs", "memory", ["alloc_objects", "alloc_space"]),
        ("/debug/pprof/mutex", "mutex", ["contentions", "delay"]),
        ("/debug/pprof/block", "block", ["contentions", "delay"]),
    ])
    func successiveScrapesBecomeExactDeltas(path: String, name: String, cumulativeTypes: [String]) async throws {
        let demo = try await GoDemo.start()
        defer { Task { try? await demo.stop() } }
        let labels = LabelSet(["service_name": "go-demo", "__name__": name, "instance": demo.address])
        func envelope(_ payload: [UInt8]) -> RawEnvelope {
            RawEnvelope(
                tenant: "t", labels: labels, source: .scrape, format: .pprof, startNanos: 0, endNanos: 0,
                cumulative: true, payload: payload)
        }
        var normalizer = Normalizer()
        let first = try await demo.fetch(path)
        let firstTotals = try Self.totals(first)
        // The demo keeps working, so the counters grow; wait until every cumulative type has moved.
        var second = first
        var secondTotals = firstTotals
        let deadline = ContinuousClock.now + .seconds(20)
        while cumulativeTypes.contains(where: { secondTotals[$0, default: 0] <= firstTotals[$0, default: 0] }) {
            #expect(ContinuousClock.now < deadline, "\(path) did not grow within 20 s")
            if ContinuousClock.now >= deadline { return }
            try await Task.sleep(for: .milliseconds(200))
            second = try await demo.fetch(path)
            secondTotals = try Self.totals(second)
        }

        let baseline = try normalizer.normalize(envelope(first), provenance: Provenance(topic: "raw", partition: 0, offset: 0))
        #expect(baseline.deltaOutcome == .baseline)
        let delta = try normalizer.normalize(envelope(second), provenance: Provenance(topic: "raw", partition: 0, offset: 1))
        #expect(delta.deltaOutcome == .delta)
        var got: [String: Int64] = [:]
        for (type, total) in delta.batch?.totalsByProfileType ?? [:] { got[type.sampleType, default: 0] += total }
        for type in cumulativeTypes {
            #expect(got[type, default: 0] == secondTotals[type, default: 0] - firstTotals[type, default: 0], "\(path) \(type)")
        }
        // Snapshot types (in-use memory) pass through whole.
        for (type, total) in secondTotals where !cumulativeTypes.contains(type) && total != 0 {
            #expect(got[type] == total, "\(path) \(type)")
        }
    }
}

import Blocks
import Foundation
import Hummingbird
import KilnProtos
import Logging
import Normalization
import ObjectStore
import PprofCodec
import ProfileModel
import Query
import QueryAPI
import Records
import SwiftProtobuf
import TestSupport
import Testing

/// SelectMergeProfile at full fidelity: every accepted fixture, normalised with `__delta__="false"` (values
/// stored as sent) and written as a block, comes back from the query API as a pprof profile on which
/// `go tool pprof -top -lines` prints the same rows — values, functions, file:line — as on the original file,
/// for each of its sample types, and with the original's sampling period.
@Suite(.requires(.fixtures, .go))
struct PprofFidelityTests {
    struct Case: Sendable {
        var file: String
        var profileType: ProfileTypeID
        /// The sample type's index in the original file, for `-sample_index`.
        var sampleIndex: Int
        /// Unix ms covering the stored samples (the file's own time, when it has one).
        var millis: ClosedRange<Int64>
        /// The file's sampling period.
        var period: Int64
    }

    static let base: Int64 = 1_700_000_000_000_000_000

    @Test func exportedProfilesPrintWhatTheOriginalsPrint() async throws {
        let dir = TestEnvironment.fixturesDir.appendingPathComponent("pprof")
        let expected =
            try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("EXPECTED.json"))) as! [String: Any]
        let files = (expected["files"] as! [String: Any]).compactMap { name, facts -> String? in
            ((facts as? [String: Any])?["accepted"] as? Bool) == true ? name : nil
        }.sorted()
        try #require(!files.isEmpty)
        let storeDir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-fidelity-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: storeDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: storeDir) }
        let store = try makeObjectStore(url: "file://" + storeDir.path)

        var cases: [Case] = []
        var head = Head(tenant: "t1")
        var normalizer = Normalizer()
        for (offset, file) in files.enumerated() {
            let bytes = try [UInt8](Data(contentsOf: dir.appendingPathComponent(file)))
            let envelope = RawEnvelope(
                tenant: "t1", labels: LabelSet([Label("service_name", file), Label("__delta__", "false")]), source: .push,
                format: .pprof, startNanos: Self.base, endNanos: Self.base + 10_000_000_000, cumulative: false, payload: bytes)
            let result = try normalizer.normalize(envelope, provenance: Provenance(topic: "raw", partition: 0, offset: Int64(offset)))
            guard let batch = result.batch else { continue }
            head.append(batch, from: RecordPosition(topic: "raw", partition: 0, offset: Int64(offset)))
            let original = try PprofDecoder().decode(bytes)
            let types: [(type: String, unit: String)] = original.sampleTypes.map { (original.string($0.type), original.string($0.unit)) }
            for type in Set(batch.series.map(\.profileType)) {
                let exact = types.firstIndex { $0.type == type.sampleType && $0.unit == type.sampleUnit }
                let byName = types.firstIndex { $0.type == type.sampleType }
                let index = try #require(exact ?? byName, "\(file): \(type.id) is none of the file's sample types \(types)")
                let times = batch.sampleTimes
                cases.append(
                    Case(
                        file: file, profileType: type, sampleIndex: index,
                        millis: times.min()! / 1_000_000 - 1...times.max()! / 1_000_000 + 1, period: original.period))
            }
        }
        let ulid = ULID.make()
        try await BlockWriter.upload(
            try BlockWriter().encode(head, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: [])), to: store)

        var logger = Logger(label: "test.fidelity")
        logger.logLevel = .warning
        let engine = QueryEngine(store: store)
        let tmp = storeDir.appendingPathComponent("exports")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        let allCases = cases
        let mismatches = try await withServer({ router in QueryRoutes.register(on: router, engine: engine, logger: logger) }) { base in
            var mismatches: [String] = []
            for (n, c) in allCases.enumerated() {
                var request = Querier_V1_SelectMergeProfileRequest()
                request.profileTypeID = c.profileType.id
                request.labelSelector = "{service_name=\"\(c.file)\"}"
                request.start = c.millis.lowerBound
                request.end = c.millis.upperBound
                let answer = try await post(
                    base + "/querier.v1.QuerierService/SelectMergeProfile", body: try request.serializedBytes(),
                    headers: [("Content-Type", "application/proto"), ("X-Scope-OrgID", "t1")])
                try #require(answer.status == 200, "\(c.file) \(c.profileType.id): \(String(decoding: answer.body, as: UTF8.self))")
                let exported = tmp.appendingPathComponent("\(n).pb")
                try Data(answer.body).write(to: exported)
                let period = try Google_V1_Profile(serializedBytes: answer.body).period
                if period != c.period { mismatches.append("\(c.file) \(c.profileType.id): period \(period), the original's \(c.period)") }
                // The two go tool pprof runs at once (most of this test's time), each on a thread of its own.
                async let original = Self.topLinesOffThePool(dir.appendingPathComponent(c.file), sampleIndex: c.sampleIndex)
                async let export = Self.topLinesOffThePool(exported, sampleIndex: 0)
                let (want, got) = try await (original, export)
                if want != got {
                    let missing = want.filter { !got.contains($0) }.prefix(3)
                    let extra = got.filter { !want.contains($0) }.prefix(3)
                    mismatches.append(
                        "\(c.file) \(c.profileType.id): \(want.count) rows vs \(got.count); missing \(missing), extra \(extra)")
                } else if want.isEmpty {
                    mismatches.append("\(c.file) \(c.profileType.id): go tool pprof printed no rows")
                }
            }
            return mismatches
        }
        print(
            "pprof fidelity: \(cases.count - mismatches.count) of \(cases.count) (fixture, sample type) exports print the original's rows")
        #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n"))")
        try await store.shutdown()
    }

    /// `topLines` on a dispatch thread: it waits for a child process, which must not hold a thread of
    /// the cooperative pool the query server answers on.
    static func topLinesOffThePool(_ file: URL, sampleIndex: Int) async throws -> [String] {
        try await withCheckedThrowingContinuation { done in
            DispatchQueue.global().async { done.resume(with: Result { try topLines(file, sampleIndex: sampleIndex) }) }
        }
    }

    /// `go tool pprof -top -lines` rows (flat, cum, function and file:line), every node, sorted. The
    /// `(inline)` and `(partial-inline)` marks are dropped: Kiln keeps each inlined call as a frame of its
    /// own, not which location held it.
    static func topLines(_ file: URL, sampleIndex: Int) throws -> [String] {
        let output = try TestEnvironment.goToolPprof([
            "-top", "-lines", "-nodefraction=0", "-nodecount=1000000", "-sample_index=\(sampleIndex)", file.path,
        ])
        let lines = output.split(separator: "\n")
        guard let header = lines.firstIndex(where: { $0.contains("flat%") && $0.contains("cum%") }) else { return [] }
        return lines[(header + 1)...].map { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            // flat flat% sum% cum cum% name [file:line] [(inline)]: percentages depend on the file's total,
            // which counts samples without a stack that Kiln does not store.
            guard fields.count >= 6 else { return String(line) }
            let rest = fields[5...].filter { $0 != "(inline)" && $0 != "(partial-inline)" }
            return ([fields[0], fields[3]] + rest).joined(separator: " ")
        }.sorted()
    }
}

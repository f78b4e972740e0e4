import Foundation
import Normalization
import PprofCodec
import ProfileModel
import Records
import TestSupport
import Testing

private func envelope(
    _ payload: [UInt8], name: String = "memory", cumulative: Bool, format: PayloadFormat = .pprof,
    attributes: [String: String] = [:], extraLabels: [String: String] = [:]
) -> RawEnvelope {
    var labels = ["service_name": "checkout", "__name__": name, "instance": "127.0.0.1:6060", "__delta__": "false"]
    labels.merge(extraLabels) { _, new in new }
    return RawEnvelope(
        tenant: "anonymous", labels: LabelSet(labels), source: .scrape, format: format,
        startNanos: 1_700_000_000_000_000_000, endNanos: 1_700_000_015_000_000_000,
        cumulative: cumulative, attributes: attributes, payload: payload)
}

private let provenance = Provenance(topic: "kiln.profiles.raw", partition: 0, offset: 7)

/// Sum of batch values per sample type name.
private func totals(_ batch: SampleBatch?) -> [String: Int64] {
    var out: [String: Int64] = [:]
    for (type, total) in batch?.totalsByProfileType ?? [:] { out[type.sampleType, default: 0] += total }
    return out
}

private func valueOf(_ batch: SampleBatch?, leaf: String, type: String) -> Int64 {
    guard let batch else { return 0 }
    var sum: Int64 = 0
    for i in 0..<batch.sampleCount where batch.series[Int(batch.sampleSeries[i])].profileType.sampleType == type {
        let stack = batch.stacks.stack(Int(batch.sampleStacks[i]))
        if batch.symbols.functionName(ofFrame: Int(stack.first!)) == leaf { sum += batch.sampleValues[i] }
    }
    return sum
}

@Suite struct NormalizerTests {
    static let heapTypes = [("alloc_objects", "count"), ("alloc_space", "bytes"), ("inuse_objects", "count"), ("inuse_space", "bytes")]

    static func heap(_ allocA: Int64, _ allocB: Int64, inuse: Int64 = 5) -> [UInt8] {
        SyntheticProfile(
            sampleTypes: heapTypes, periodType: ("space", "bytes"),
            samples: [
                .init(stack: ["main.allocA", "main.main"], values: [allocA, allocA * 100, inuse, inuse * 100]),
                .init(stack: ["main.allocB", "main.main"], values: [allocB, allocB * 100, 0, 0]),
            ]
        ).encoded()
    }

    @Test func profilesWithoutANameGetOneEvenWithUnnamedSampleTypes() throws {
        // A push without __name__ whose sample type has no name (real fixtures do this): the profile type
        // ID must still parse, or the block holding it could not be read.
        let payload = SyntheticProfile(
            sampleTypes: [("", "count")], periodType: ("", ""), samples: [.init(stack: ["main.work", "main.main"], values: [3])]
        ).encoded()
        var labels = envelope(payload, cumulative: false)
        labels.labels = LabelSet(labels.labels.labels.filter { $0.name != "__name__" })
        var normalizer = Normalizer()
        let batch = try #require(try normalizer.normalize(labels, provenance: provenance).batch)
        for series in batch.series {
            #expect(ProfileTypeID(parsing: series.profileType.id) != nil, "\(series.profileType.id)")
            #expect(series.profileType.name == "unknown")
        }
        #expect(ProfileNaming.inferName(sampleTypes: ["", "cpu"], periodType: "cpu") == "process_cpu")
        #expect(ProfileNaming.inferName(sampleTypes: ["", ""], periodType: "") == "unknown")
    }

    @Test func cumulativeProfilesBecomeDeltasAfterABaseline() throws {
        var normalizer = Normalizer()
        let first = try normalizer.normalize(envelope(Self.heap(10, 4), cumulative: true), provenance: provenance)
        #expect(first.deltaOutcome == .baseline)
        // The baseline holds back the cumulative types; in-use snapshots pass.
        #expect(totals(first.batch) == ["inuse_objects": 5, "inuse_space": 500])

        let second = try normalizer.normalize(envelope(Self.heap(15, 4), cumulative: true), provenance: provenance)
        #expect(second.deltaOutcome == .delta)
        #expect(valueOf(second.batch, leaf: "main.allocA", type: "alloc_objects") == 5)
        #expect(valueOf(second.batch, leaf: "main.allocA", type: "alloc_space") == 500)
        // allocB did not change: its delta is zero and dropped.
        #expect(valueOf(second.batch, leaf: "main.allocB", type: "alloc_objects") == 0)
        #expect(totals(second.batch)["alloc_objects"] == 5)

        let third = try normalizer.normalize(envelope(Self.heap(3, 1), cumulative: true), provenance: provenance)
        #expect(third.deltaOutcome == .reset)
        #expect(totals(third.batch)["alloc_objects"] == nil)

        let fourth = try normalizer.normalize(envelope(Self.heap(4, 3), cumulative: true), provenance: provenance)
        #expect(totals(fourth.batch)["alloc_objects"] == 3)
    }

    @Test func deltasAreKeptPerTarget() throws {
        var normalizer = Normalizer()
        _ = try normalizer.normalize(envelope(Self.heap(10, 4), cumulative: true), provenance: provenance)
        let other = try normalizer.normalize(
            envelope(Self.heap(50, 50), cumulative: true, extraLabels: ["instance": "127.0.0.2:6060"]), provenance: provenance)
        #expect(other.deltaOutcome == .baseline)
        let again = try normalizer.normalize(envelope(Self.heap(11, 4), cumulative: true), provenance: provenance)
        #expect(totals(again.batch)["alloc_objects"] == 1)
    }

    @Test func notCumulativeProfilesPassUnchanged() throws {
        var normalizer = Normalizer()
        let result = try normalizer.normalize(envelope(Self.heap(10, 4), cumulative: false), provenance: provenance)
        #expect(result.deltaOutcome == .notCumulative)
        #expect(totals(result.batch) == ["alloc_objects": 14, "alloc_space": 1400, "inuse_objects": 5, "inuse_space": 500])
        // allocB's two zero in-use values are dropped and counted.
        #expect(result.batch?.droppedZeroValue == 2)
    }

    @Test func seriesLabelsComeFromEnvelopeAndSampleLabelsButSpansStayPerSample() throws {
        let profile = SyntheticProfile(
            sampleTypes: [("cpu", "nanoseconds")], periodType: ("cpu", "nanoseconds"),
            samples: [
                .init(stack: ["main.work"], values: [100], labels: [("endpoint", "/a"), ("span_id", "00000000000000ff")]),
                .init(stack: ["main.work"], values: [200], labels: [("endpoint", "/b")]),
                .init(stack: ["main.idle"], values: [300]),
                .init(stack: [], values: [400]),
            ]
        ).encoded()
        var normalizer = Normalizer()
        let batch = try #require(
            try normalizer.normalize(envelope(profile, name: "process_cpu", cumulative: false), provenance: provenance).batch)
        let labelSets = Set(batch.series.map(\.labels))
        #expect(labelSets.count == 3)
        for labels in labelSets {
            #expect(labels["service_name"] == "checkout")
            #expect(labels["__profile_type__"] == "process_cpu:cpu:nanoseconds:cpu:nanoseconds")
            #expect(labels["__delta__"] == nil)
            #expect(labels["span_id"] == nil)
        }
        #expect(labelSets.contains { $0["endpoint"] == "/a" })
        #expect(batch.sampleSpans.contains(0xff))
        #expect(batch.sampleValues.reduce(0, +) == 600)
        #expect(batch.droppedEmptyStack == 1)
        #expect(batch.provenance == provenance)
    }

    @Test func stacksAndSymbolsAreDeduplicated() throws {
        let profile = SyntheticProfile(
            sampleTypes: [("samples", "count")], periodType: ("cpu", "nanoseconds"),
            samples: [
                .init(stack: ["a", "b", "main"], values: [1], labels: [("k", "1")]),
                .init(stack: ["a", "b", "main"], values: [2], labels: [("k", "2")]),
                .init(stack: ["b", "main"], values: [3]),
            ]
        ).encoded()
        var normalizer = Normalizer()
        let batch = try #require(
            try normalizer.normalize(envelope(profile, name: "process_cpu", cumulative: false), provenance: provenance).batch)
        #expect(batch.stacks.count == 2)
        #expect(batch.symbols.functions.count == 3)
        #expect(batch.symbols.strings.filter { $0 == "main" }.count == 1)
    }

    @Test func missingServiceNameAndNameAreFilledIn() throws {
        var env = envelope(Self.heap(1, 1), cumulative: false)
        env.labels = LabelSet(["instance": "x"])
        var normalizer = Normalizer()
        let batch = try #require(try normalizer.normalize(env, provenance: provenance).batch)
        #expect(batch.series.allSatisfy { $0.labels["service_name"] == "unknown_service" && $0.profileType.name == "memory" })
    }

    @Test func foldedTextBecomesCPUNanoseconds() throws {
        let text = Array("main;work;compute 3\nmain;idle 1\n".utf8)
        var normalizer = Normalizer()
        let result = try normalizer.normalize(
            envelope(
                text, name: "process_cpu", cumulative: false, format: .folded,
                attributes: ["name": "process_cpu", "sampleRate": "100"]), provenance: provenance)
        let batch = try #require(result.batch)
        #expect(batch.series.first?.profileType.id == "process_cpu:cpu:nanoseconds:cpu:nanoseconds")
        #expect(valueOf(batch, leaf: "compute", type: "cpu") == 30_000_000)
        #expect(totals(batch)["cpu"] == 40_000_000)
    }

    @Test func foldedSampleTypeFromTheNameSuffixIsKept() throws {
        let text = Array("main;alloc 512\nmain;grow 128\n".utf8)
        var normalizer = Normalizer()
        let result = try normalizer.normalize(
            envelope(
                text, name: "memory", cumulative: false, format: .folded,
                attributes: ["name": "memory", "sampleType": "alloc_space", "sampleUnit": "bytes", "units": "bytes"]),
            provenance: provenance)
        let batch = try #require(result.batch)
        #expect(batch.series.first?.profileType.id == "memory:alloc_space:bytes:alloc_space:bytes")
        #expect(totals(batch)["alloc_space"] == 640)
    }

    @Test func badInputIsNamed() {
        var normalizer = Normalizer()
        #expect(throws: NormalizationError.self) {
            try normalizer.normalize(envelope([0x0a, 0xff, 0xff], cumulative: false), provenance: provenance)
        }
        do {
            _ = try normalizer.normalize(envelope(Array("main;work x\n".utf8), cumulative: false, format: .folded), provenance: provenance)
            Issue.record("a folded line without a number was accepted")
        } catch {
            #expect(error.description == "folded line 1: value \"x\" is not a non-negative integer")
        }
    }
}

/// Every real fixture profile: what goes in comes out, minus the dropped samples, which are counted.
@Suite(.requires(.fixtures)) struct FixtureConservationTests {
    struct Expected: Decodable {
        struct FileLevel: Decodable {
            struct ValueType: Decodable {
                var type: String
                var unit: String
            }
            var sampleTypes: [ValueType]?
            var totals: [Int64]?
            enum CodingKeys: String, CodingKey {
                case sampleTypes = "sample_types"
                case totals
            }
        }
        var accepted: Bool
        var fileLevel: FileLevel?
        enum CodingKeys: String, CodingKey {
            case accepted
            case fileLevel = "file_level"
        }
    }

    static func fixtures() throws -> [(String, Expected)] {
        let dir = TestEnvironment.fixturesDir.appendingPathComponent("pprof")
        let data = try Data(contentsOf: dir.appendingPathComponent("EXPECTED.json"))
        struct File: Decodable { var files: [String: Expected] }
        return try JSONDecoder().decode(File.self, from: data).files.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    @Test func fixturesArePresent() throws {
        #expect(try Self.fixtures().count > 0, "EXPECTED.json in \(TestEnvironment.fixturesDir.path)/pprof lists no fixtures")
    }

    @Test func everyAcceptedFixtureConservesItsTotals() throws {
        let dir = TestEnvironment.fixturesDir.appendingPathComponent("pprof")
        var checked = 0
        for (file, expected) in try Self.fixtures() where expected.accepted {
            guard let level = expected.fileLevel, let types = level.sampleTypes, let expectedTotals = level.totals else {
                Issue.record("\(file): accepted, but EXPECTED.json has no file_level sample types and totals")
                continue
            }
            let bytes = try Data(contentsOf: dir.appendingPathComponent(file))
            let profile = try PprofDecoder(limits: .unbounded()).decode(Array(bytes))
            // Value carried by samples with an empty stack, which normalisation drops (and counts).
            var emptyStackValue = [Int64](repeating: 0, count: types.count)
            var emptyStackEntries: Int64 = 0
            for s in 0..<profile.sampleCount where profile.stack(s).isEmpty {
                for (t, v) in profile.values(s).enumerated() {
                    emptyStackValue[t] += v
                    if v != 0 { emptyStackEntries += 1 }
                }
            }
            var normalizer = Normalizer(options: NormalizerOptions(limits: .unbounded()))
            let result = try normalizer.normalize(envelope(Array(bytes), name: "fixture", cumulative: false), provenance: provenance)
            var got: [String: Int64] = [:]
            for (type, total) in result.batch?.totalsByProfileType ?? [:] {
                got["\(type.sampleType)/\(type.sampleUnit)", default: 0] += total
            }
            var want: [String: Int64] = [:]
            for (t, type) in types.enumerated() {
                let remaining = expectedTotals[t] - emptyStackValue[t]
                if remaining != 0 { want["\(type.type)/\(type.unit)", default: 0] += remaining }
            }
            #expect(got == want, "\(file)")
            #expect((result.batch?.droppedEmptyStack ?? 0) == emptyStackEntries, "\(file)")
            checked += 1
        }
        #expect(checked > 0, "no fixture was checked")
    }

    /// Every kept sample's batch stack spells its pprof stack: the same functions, files and lines, inline
    /// frames expanded, in order, and the stack table holds each stack once. Value totals cannot see a
    /// sample given the wrong stack; this can, including stacks assembled from the callers they share
    /// with the stack before them.
    @Test func everyKeptSampleKeepsItsStack() throws {
        let dir = TestEnvironment.fixturesDir.appendingPathComponent("pprof")
        var checked = 0
        for (file, expected) in try Self.fixtures() where expected.accepted {
            let bytes = try Data(contentsOf: dir.appendingPathComponent(file))
            let profile = try PprofDecoder(limits: .unbounded()).decode(Array(bytes))
            var normalizer = Normalizer(options: NormalizerOptions(limits: .unbounded()))
            guard
                let batch = try normalizer.normalize(envelope(Array(bytes), name: "fixture", cumulative: false), provenance: provenance)
                    .batch
            else { continue }
            let symbols = batch.symbols
            // Each side's functions as numbers, equal when name and file are: frames then compare as
            // (function, line) pairs without a string per frame.
            var functionNumbers: [String: Int64] = [:]
            func number(_ key: String) -> Int64 {
                if let n = functionNumbers[key] { return n }
                functionNumbers[key] = Int64(functionNumbers.count)
                return Int64(functionNumbers.count - 1)
            }
            let pprofFunctions = profile.functions.map { number("\(profile.string($0.name)) \(profile.string($0.filename))") }
            let batchFunctions = symbols.functions.map { number("\(symbols.strings[Int($0.name)]) \(symbols.strings[Int($0.filename)])") }
            let batchFunctionOfNumber = Dictionary(batchFunctions.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
            func batchFunctionIndex(_ n: Int64) -> Int { batchFunctionOfNumber[n] ?? 0 }
            var k = 0
            var mismatches = 0
            var want: [Int64] = []
            var got: [Int64] = []
            // Every sample of the smaller profiles; every fifth of the merged ones with 60,000 and more
            // (debug builds are slow), the batch samples in between skipped by their count.
            let step = profile.sampleCount >= 60_000 ? 5 : 1
            for s in 0..<profile.sampleCount where !profile.stack(s).isEmpty {
                guard s % step == 0 else {
                    k += profile.values(s).filter { $0 != 0 }.count
                    continue
                }
                want.removeAll(keepingCapacity: true)
                for location in profile.stack(s) {
                    let lines = profile.lines(of: Int(location))
                    // An unsymbolized location is one frame, named after its mapping and address.
                    if lines.isEmpty {
                        want.append(-1 - Int64(location))
                        want.append(0)
                    }
                    for line in lines {
                        want.append(pprofFunctions[Int(line.functionIndex)])
                        want.append(line.line)
                    }
                }
                for value in profile.values(s) where value != 0 {
                    got.removeAll(keepingCapacity: true)
                    for frame in batch.stacks.stack(Int(batch.sampleStacks[k])) {
                        let f = symbols.frames[Int(frame)]
                        got.append(batchFunctions[Int(f.function)])
                        got.append(f.line)
                    }
                    let same =
                        got.count == want.count
                        && stride(from: 0, to: want.count, by: 2).allSatisfy { i in
                            guard want[i] < 0 else { return got[i] == want[i] && got[i + 1] == want[i + 1] }
                            let address = profile.locations[Int(-1 - want[i])].address
                            let name = symbols.strings[Int(symbols.functions[Int(batchFunctionIndex(got[i]))].name)]
                            return name.hasSuffix("+0x\(String(address, radix: 16))") && got[i + 1] == 0
                        }
                    if !same { mismatches += 1 }
                    k += 1
                }
            }
            #expect(k == batch.sampleCount, "\(file)")
            #expect(mismatches == 0, "\(file): \(mismatches) of \(k) samples have another stack")
            // And no stack is stored twice (a hash resumed from the stack before must equal the whole one's).
            let distinct = Set((0..<batch.stacks.count).map { Array(batch.stacks.stack($0)) })
            #expect(distinct.count == batch.stacks.count, "\(file)")
            // Nor any string, function or frame (each table looked up with a hash computed ahead of it).
            #expect(Set(symbols.strings).count == symbols.strings.count, "\(file): a string stored twice")
            #expect(Set(symbols.functions).count == symbols.functions.count, "\(file): a function stored twice")
            #expect(Set(symbols.frames).count == symbols.frames.count, "\(file): a frame stored twice")
            checked += 1
        }
        #expect(checked > 0, "no fixture was checked")
    }
}

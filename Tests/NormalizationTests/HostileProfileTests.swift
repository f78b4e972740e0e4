import Foundation
import Normalization
import PprofCodec
import ProfileModel
import Records
import TestSupport
import Testing

/// Real profiles with bytes flipped, overwritten or cut: the normaliser (its interning works on raw
/// pointers) must either name the fault or produce a batch that conserves the decoded profile's values and
/// whose every reference resolves, with no stack stored twice.
@Suite struct HostileProfileTests {
    /// Deterministic, so a failure names a reproducible mutant.
    struct XorShift {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
    }

    static func mutate(_ raw: [UInt8], _ r: inout XorShift) -> (bytes: [UInt8], what: String) {
        var bytes = raw
        switch r.below(4) {
        case 0:
            for _ in 0..<1 + r.below(4) { bytes[r.below(bytes.count)] ^= UInt8(truncatingIfNeeded: r.next() | 1) }
            return (bytes, "flipped bytes")
        case 1:
            // A small varint (an id, an index, a length) where one was.
            bytes[r.below(bytes.count)] = UInt8(r.below(8))
            return (bytes, "small byte")
        case 2:
            return (Array(bytes.prefix(r.below(bytes.count))), "truncated")
        default:
            // A run copied over another place: duplicates ids, strings and stacks.
            let from = r.below(bytes.count)
            let to = r.below(bytes.count)
            let n = min(1 + r.below(64), bytes.count - max(from, to))
            bytes.replaceSubrange(to..<to + n, with: raw[from..<from + n])
            return (bytes, "copied run")
        }
    }

    @Test(.requires(.fixtures)) func mutatedRealProfilesAreRejectedOrConserved() throws {
        let dir = TestEnvironment.fixturesDir.appendingPathComponent("pprof")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".pb.gz") }.sorted()
        try #require(!names.isEmpty, "no .pb.gz fixtures in \(dir.path)")
        var r = XorShift(state: 0x5EED_CAFE_F00D_1234)
        var accepted = 0
        var rejected = 0
        for name in names {
            guard let gz = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path),
                let raw = try? [UInt8](gz).withUnsafeBytes({ try Gzip.decompress($0, limit: 64 << 20) }),
                raw.count <= 400_000, !raw.isEmpty
            else { continue }  // small ones: many mutants, bounded time
            for k in 0..<30 {
                let (bytes, what) = Self.mutate(raw, &r)
                let label = "\(name) mutant \(k) (\(what))"
                var normalizer = Normalizer()
                let envelope = RawEnvelope(
                    tenant: "t", labels: LabelSet(["service_name": "s"]), source: .push, format: .pprof,
                    startNanos: 0, endNanos: 0, cumulative: false, payload: bytes)
                let result: NormalizationResult
                do {
                    result = try normalizer.normalize(envelope, provenance: Provenance(topic: "raw", partition: 0, offset: Int64(k)))
                } catch {
                    #expect(!error.description.isEmpty, "\(label)")
                    rejected += 1
                    continue
                }
                accepted += 1
                let profile = try PprofDecoder().decode(bytes)
                var want: [String: Int64] = [:]
                for s in 0..<profile.sampleCount where !profile.stack(s).isEmpty {
                    for (t, v) in profile.values(s).enumerated() where v != 0 {
                        want[profile.string(profile.sampleTypes[t].type), default: 0] &+= v
                    }
                }
                var got: [String: Int64] = [:]
                if let batch = result.batch {
                    for (type, total) in batch.totalsByProfileType { got[type.sampleType, default: 0] &+= total }
                    Self.checkReferences(batch, label)
                }
                #expect(got == want.filter { $0.value != 0 }, "\(label)")
            }
        }
        print("hostile variants of real profiles: \(accepted) normalised and checked, \(rejected) rejected with a reason")
        // Both outcomes must occur, or the mutants test nothing.
        #expect(accepted > 0 && rejected > 0, "accepted \(accepted), rejected \(rejected)")
    }

    static func checkReferences(_ batch: SampleBatch, _ label: String) {
        let symbols = batch.symbols
        for f in symbols.functions {
            let ok = [f.name, f.systemName, f.filename].allSatisfy { Int($0) < symbols.strings.count }
            if !ok {
                Issue.record("\(label): function with a string outside the table")
                return
            }
        }
        for frame in symbols.frames where Int(frame.function) >= symbols.functions.count {
            Issue.record("\(label): frame with an unknown function")
            return
        }
        var seen = Set<ArraySlice<UInt32>>()
        for i in 0..<batch.stacks.count {
            let stack = batch.stacks.stack(i)
            if stack.contains(where: { Int($0) >= symbols.frames.count }) {
                Issue.record("\(label): stack \(i) has an unknown frame")
                return
            }
            if !seen.insert(stack).inserted {
                Issue.record("\(label): stack \(i) stored twice")
                return
            }
        }
        if batch.sampleStacks.contains(where: { Int($0) >= batch.stacks.count }) { Issue.record("\(label): sample with an unknown stack") }
    }
}

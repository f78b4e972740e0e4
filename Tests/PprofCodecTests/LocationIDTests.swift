import Testing

@testable import PprofCodec

/// Location ids take two readers: a vector one (four ids a step, ids of one to three bytes) and the
/// scalar one for everything it leaves. These profiles mix what sends an id to either, and the decoded
/// stacks must be exactly the ids written.
@Suite struct LocationIDTests {
    /// splitmix64: a fixed seed gives every run the same profiles.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// A varint padded to `length` bytes with continuation bytes carrying zeros (valid protobuf, not
    /// canonical): the vector reader must hand such ids to the scalar one.
    static func paddedVarint(_ v: UInt64, length: Int, into out: inout ProtoBytes) {
        var canonical = ProtoBytes()
        canonical.varint(v)
        var bytes = canonical.bytes
        if bytes.count < length {
            bytes[bytes.count - 1] |= 0x80
            bytes += [UInt8](repeating: 0x80, count: length - bytes.count - 1) + [0]
        }
        out.bytes += bytes
    }

    /// A profile with `locationCount` dense locations and the given stacks (location ids, packed),
    /// written with the samples last, so the final stacks end where the payload ends. `padded` ids are
    /// written in five bytes.
    static func profile(locationCount: Int, stacks: [[UInt64]], padded: Set<Int> = []) -> [UInt8] {
        var p = ProtoBytes()
        p.message(
            1,
            ProtoBytes.build {
                $0.field(1, 1)
                $0.field(2, 2)
            })
        for id in 1...UInt64(locationCount) {
            p.message(
                4,
                ProtoBytes.build { l in
                    l.field(1, id)
                    l.message(
                        4,
                        ProtoBytes.build {
                            $0.field(1, 1)
                            $0.field(2, id)
                        })
                })
        }
        p.message(
            5,
            ProtoBytes.build {
                $0.field(1, 1)
                $0.field(2, 3)
            })
        for s in ["", "cpu", "nanoseconds", "main"] { p.string(6, s) }
        var position = 0
        for stack in stacks {
            var ids = ProtoBytes()
            for id in stack {
                if padded.contains(position) { paddedVarint(id, length: 5, into: &ids) } else { ids.varint(id) }
                position += 1
            }
            p.message(
                2,
                ProtoBytes.build { s in
                    s.varint(1 << 3 | 2)
                    s.varint(UInt64(ids.bytes.count))
                    s.bytes += ids.bytes
                    s.field(2, 1)
                })
        }
        return p.bytes
    }

    static func randomStacks(count: Int, locationCount: Int, using rng: inout Seeded) -> [[UInt64]] {
        (0..<count).map { _ in
            // Depths past 64 bytes of ids make the vector reader take its mask more than once per stack.
            let depth = Int.random(in: 1...90, using: &rng)
            return (0..<depth).map { _ in
                // Mostly short ids, with runs of long ones, as merged profiles have.
                Bool.random(using: &rng)
                    ? UInt64.random(in: 1...127, using: &rng)
                    : UInt64.random(in: 1...UInt64(locationCount), using: &rng)
            }
        }
    }

    @Test func idsOfOneToThreeBytesAndPaddedIdsDecodeExactly() throws {
        #if arch(x86_64)
            #expect(SmallVarints.tables != nil, "the vector reader should run on this CPU")
        #endif
        var rng = Seeded(state: 42)
        let locationCount = 20_000  // ids from 16,384 on take three bytes
        let stacks = Self.randomStacks(count: 400, locationCount: locationCount, using: &rng)
        let total = stacks.reduce(0) { $0 + $1.count }
        let padded = Set((0..<total / 50).map { _ in Int.random(in: 0..<total, using: &rng) })
        let p = try PprofDecoder().decode(Self.profile(locationCount: locationCount, stacks: stacks, padded: padded))
        #expect(p.sampleCount == stacks.count)
        for (s, stack) in stacks.enumerated() {
            #expect(Array(p.stack(s)) == stack.map { Int32($0) - 1 }, "sample \(s)")
        }
    }

    @Test func anUnknownOrReservedIdInsideALongStackIsNamed() throws {
        var rng = Seeded(state: 7)
        let locationCount = 300
        for (bad, message) in [
            (UInt64(301), "references unknown location 301"), (0, "references location 0 (reserved)"),
            (20_000, "references unknown location 20000"),
        ] {
            var stacks = Self.randomStacks(count: 30, locationCount: locationCount, using: &rng)
            let s = 17
            stacks[s][Int.random(in: 0..<stacks[s].count, using: &rng)] = bad
            let error = #expect(throws: PprofError.self) {
                try PprofDecoder().decode(Self.profile(locationCount: locationCount, stacks: stacks))
            }
            #expect(error?.message == "sample \(s) \(message)")
        }
    }
}

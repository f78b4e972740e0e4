/// Hand-built protobuf bytes for hostile-input tests (independent of the encoder under test).
struct ProtoBytes {
    var bytes: [UInt8] = []

    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func field(_ n: UInt64, _ v: UInt64) {
        varint(n << 3)
        varint(v)
    }

    mutating func message(_ n: UInt64, _ body: ProtoBytes) {
        varint(n << 3 | 2)
        varint(UInt64(body.bytes.count))
        bytes += body.bytes
    }

    mutating func string(_ n: UInt64, _ s: String) {
        varint(n << 3 | 2)
        varint(UInt64(s.utf8.count))
        bytes += Array(s.utf8)
    }

    static func build(_ f: (inout ProtoBytes) -> Void) -> ProtoBytes {
        var p = ProtoBytes()
        f(&p)
        return p
    }

    /// A small valid profile: strings "", "cpu", "nanoseconds", "k", "v", <function name>, "caller"; one function, one
    /// location, one sample. `edit` may append or replace parts.
    static func profile(
        sampleCount: Int = 1, depth: Int = 1, labels: Int = 0, functionName: String = "main",
        lineFunctionID: UInt64 = 1, locationID: UInt64 = 7, values: Int = 1
    ) -> [UInt8] {
        var p = ProtoBytes()
        p.message(
            1,
            build {
                $0.field(1, 1)
                $0.field(2, 2)
            })
        for _ in 0..<sampleCount {
            p.message(
                2,
                build { s in
                    for _ in 0..<depth { s.field(1, locationID) }
                    for v in 0..<values { s.field(2, UInt64(10 + v)) }
                    for _ in 0..<labels {
                        s.message(
                            3,
                            build {
                                $0.field(1, 3)
                                $0.field(2, 4)
                            })
                    }
                })
        }
        p.message(
            4,
            build { l in
                l.field(1, locationID)
                l.message(4, build { $0.field(1, 1) })  // inlined frame
                l.message(
                    4,
                    build {
                        $0.field(1, lineFunctionID)
                        $0.field(2, 3)
                    })
            })
        p.message(
            5,
            build {
                $0.field(1, 1)
                $0.field(2, 5)
            })
        for s in ["", "cpu", "nanoseconds", "k", "v", functionName, "caller"] { p.string(6, s) }
        p.field(9, 1_700_000_000_000_000_000)
        return p.bytes
    }
}

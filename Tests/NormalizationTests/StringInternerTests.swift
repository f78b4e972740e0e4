import PprofCodec
import ProfileModel
import Testing

@testable import Normalization

/// The batch string interner against `String`: ids in first-seen order, one id per distinct string
/// (including after the table grows), and invalid UTF-8 stored as `String(decoding:as:)` reads it.
@Suite struct StringInternerTests {
    static func intern(_ interner: inout StringInterner, _ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBufferPointer { interner.intern($0) }
    }

    /// The empty string is id 0 however its buffer comes: a pprof string-table entry of length 0 has a
    /// base address, a Swift empty array may not.
    @Test func theEmptyStringIsIDZeroWithOrWithoutABaseAddress() {
        var interner = StringInterner(capacity: 4)
        let payload: [UInt8] = [0x61, 0x62]
        let withBase = payload.withUnsafeBufferPointer { interner.intern(UnsafeBufferPointer(rebasing: $0[1..<1])) }
        #expect(withBase == 0)
        #expect(interner.intern(UnsafeBufferPointer(start: nil, count: 0)) == 0)
        #expect(interner.intern("") == 0)
        #expect(Array(interner.strings) == [""])
    }

    @Test func distinctStringsGetDenseIdsAcrossGrowth() {
        var interner = StringInterner(capacity: 4)
        var expected: [String: UInt32] = ["": 0]
        var order = [""]
        // Several times the starting capacity, with repeats and non-ASCII names.
        for i in 0..<3_000 {
            let text = i % 3 == 0 ? "pkg/käse.Func\(i % 700)" : "github.com/acme/service/internal.handler\(i % 1_100)"
            let id = Self.intern(&interner, Array(text.utf8))
            if let known = expected[text] {
                #expect(id == known, "\(text)")
            } else {
                #expect(id == UInt32(order.count), "\(text) is new, so it takes the next id")
                expected[text] = id
                order.append(text)
            }
        }
        #expect(Array(interner.strings) == order)
    }

    @Test func invalidUTF8IsStoredRepairedAndSharesItsRepair() {
        var interner = StringInterner(capacity: 8)
        let broken: [UInt8] = Array("main.f".utf8) + [0xFF] + Array("oo".utf8) + [0xC3]
        let repaired = String(decoding: broken, as: UTF8.self)
        let id = Self.intern(&interner, broken)
        #expect(interner.strings[Int(id)] == repaired)
        #expect(interner.strings.withUTF8(Int(id)) { Array($0) } == Array(repaired.utf8))
        // The same bytes again, and the repaired text itself, are the same string.
        #expect(Self.intern(&interner, broken) == id)
        #expect(interner.intern(repaired) == id)
        // Valid multi-byte UTF-8 is kept byte for byte.
        let valid = "café.naïve"
        let validID = interner.intern(valid)
        #expect(validID != id)
        #expect(interner.strings.withUTF8(Int(validID)) { Array($0) } == Array(valid.utf8))
    }
}

/// Unsymbolized frames are named `<mapping file>+0x<address>` from bytes; the names equal what the
/// same rule spelled with Strings gives, for awkward paths and addresses at every hex length.
@Suite struct UnsymbolizedNameTests {
    static func reference(path: String, address: UInt64) -> String {
        let file = path.isEmpty ? "unknown" : path.split(separator: "/").last.map(String.init) ?? path
        return "\(file)+0x\(String(address, radix: 16))"
    }

    @Test func namesMatchTheStringRule() {
        let paths = [
            "/usr/lib/x86_64-linux-gnu/libc.so.6", "libfoo.so", "dir/", "/", "//", "a//b//", "/opt/app/bin/server (deleted)",
            "/usr/lib/ünïcode.so", "",
        ]
        var addresses: [UInt64] = [0, UInt64.max, 0x1f2e3]
        for bits in 0..<64 { addresses += [UInt64(1) << bits, (UInt64(1) << bits) - 1] }
        for path in paths {
            let file = path.isEmpty ? Array("unknown".utf8) : UnsymbolizedFrame.file(Array(path.utf8))
            for address in addresses {
                var bytes: [UInt8] = []
                UnsymbolizedFrame.appendName(file: file, address: address, to: &bytes)
                #expect(String(decoding: bytes, as: UTF8.self) == Self.reference(path: path, address: address), "\(path) \(address)")
            }
        }
    }
}

@testable import Normalization
import ProfileModel
import Testing

/// The batch string interner against `String`: ids in first-seen order, one id per distinct string
/// (including after the table grows), and invalid UTF-8 stored as `String(decoding:as:)` reads it.
@Suite struct StringInternerTests {
    static func intern(_ interner: inout StringInterner, _ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBufferPointer { interner.intern($0) }
    }

    @Test func distinctStringsGetDenseIdsAcrossGrowth() {
        var interner = StringInterner(capacity: 4)
        var expected: [String: UInt32] = ["": 0]
        var order = [""]
        // Several times the starting capacity, with repeats and non-ASCII names.
        for i in 0 ..< 3_000 {
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

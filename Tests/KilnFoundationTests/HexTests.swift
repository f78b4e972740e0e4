import KilnFoundation
import Testing

@Suite struct HexTests {
    @Test("a 64-bit value is 16 digits, leading zeros kept, and reads back as its big-endian bytes")
    func wordsAndBytes() {
        #expect(Hex.string(UInt64(0x00f0_67aa_0ba9_02b7)) == "00f067aa0ba902b7")
        #expect(Hex.string(UInt64(0)) == "0000000000000000")
        #expect(Hex.bytes("00F067aa0ba902b7") == [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        #expect(Hex.bytes("0g") == nil && Hex.bytes("abc") == nil)
    }
}

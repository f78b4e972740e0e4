/// A symbol table's strings, stored back to back as UTF-8 in one buffer.
///
/// A large profile has tens of thousands of distinct function and file names; as `[String]` each longer
/// than 15 bytes was its own heap object, allocated when the batch was built, reference-counted at every
/// copy and freed with the batch. Here they are one byte buffer and one offset array; a `String` is made
/// only when an element is read as one. Strings are compared by their bytes.
public struct StringTable: RandomAccessCollection, Hashable, Sendable, ExpressibleByArrayLiteral {
    /// All strings' UTF-8, back to back.
    public private(set) var utf8: [UInt8] = []
    /// `ends[i]` is where string `i` ends in `utf8` (it starts where string `i - 1` ends).
    public private(set) var ends: [UInt32] = []

    public init() {}

    public init(_ strings: some Sequence<String>) {
        for s in strings { append(s) }
    }

    public init(arrayLiteral strings: String...) {
        self.init(strings)
    }

    @inlinable public var startIndex: Int { 0 }
    @inlinable public var endIndex: Int { ends.count }

    public subscript(i: Int) -> String {
        utf8.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[byteRange(i)]), as: UTF8.self) }
    }

    /// Where string `i` lies in `utf8`.
    @inlinable public func byteRange(_ i: Int) -> Range<Int> {
        (i == 0 ? 0 : Int(ends[i - 1]))..<Int(ends[i])
    }

    /// Calls `body` with string `i`'s UTF-8, in place.
    @inlinable public func withUTF8<R>(_ i: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        let range = byteRange(i)
        return try utf8.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[range])) }
    }

    public mutating func append(_ string: String) {
        var s = string
        s.withUTF8 { appendValidUTF8($0) }
    }

    /// Appends `bytes`, which must be valid UTF-8 (a `String`'s, or checked with `isValidUTF8`).
    public mutating func appendValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) {
        utf8.append(contentsOf: bytes)
        ends.append(UInt32(utf8.count))
    }

    /// Appends `bytes` as a `String` made from them would read: invalid UTF-8 is repaired (each bad
    /// sequence becomes U+FFFD), as `String(decoding:as:)` does.
    public mutating func appendRepairing(_ bytes: UnsafeBufferPointer<UInt8>) {
        if Self.isValidUTF8(bytes) {
            appendValidUTF8(bytes)
        } else {
            append(String(decoding: bytes, as: UTF8.self))
        }
    }

    public mutating func reserveCapacity(strings: Int, bytes: Int) {
        ends.reserveCapacity(strings)
        utf8.reserveCapacity(bytes)
    }

    /// Whether `bytes` is valid UTF-8; ASCII (nearly every symbol) is checked eight bytes at a time.
    @inlinable public static func isValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let raw = UnsafeRawPointer(base)
        var i = 0
        while i &+ 8 <= bytes.count {
            if raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { break }
            i &+= 8
        }
        while i < bytes.count && bytes[i] < 0x80 { i &+= 1 }
        if i == bytes.count { return true }
        // Not all ASCII: the standard library's validation decides.
        return String(validating: bytes, as: UTF8.self) != nil
    }
}

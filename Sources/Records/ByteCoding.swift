import KilnFoundation
import ProfileModel

/// Little helpers for Kiln's record encodings: LEB128 varints, zigzag, length-prefixed bytes.
/// The reader checks every bound and throws a `RecordDecodingError` naming the field.
struct ByteWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func varint(_ v: UInt64) { Varint.append(v, to: &bytes) }
    mutating func varint(_ v: Int) { varint(UInt64(v)) }
    mutating func signed(_ v: Int64) { varint(Varint.zigzag(v)) }

    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            varint(utf8.count)
            bytes.append(contentsOf: utf8)
        }
    }

    mutating func blob<C: Collection>(_ b: C) where C.Element == UInt8 {
        varint(b.count)
        bytes.append(contentsOf: b)
    }

    mutating func fixed64(_ v: UInt64) {
        var x = v.littleEndian
        withUnsafeBytes(of: &x) { bytes.append(contentsOf: $0) }
    }
}

public struct RecordDecodingError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

struct ByteReader {
    let bytes: [UInt8]
    var position: Int

    init(_ bytes: [UInt8], position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    var remaining: Int { bytes.count - position }

    mutating func byte(_ field: StaticString) throws -> UInt8 {
        guard position < bytes.count else { throw RecordDecodingError("truncated record: \(field) missing") }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func varint(_ field: StaticString) throws -> UInt64 {
        do {
            return try Varint.read(bytes, at: &position)
        } catch Varint.ReadError.truncated {
            throw RecordDecodingError("truncated record: varint \(field) cut off")
        } catch {
            throw RecordDecodingError("varint \(field) overflows 64 bits")
        }
    }

    /// A count that must fit in memory we are willing to allocate: at most `limit` (evaluated before the
    /// count itself is read).
    mutating func count(_ field: StaticString, limit: Int) throws -> Int {
        let v = try varint(field)
        guard v <= UInt64(limit) else { throw RecordDecodingError("\(field) \(v) exceeds the limit \(limit)") }
        return Int(v)
    }

    mutating func signed(_ field: StaticString) throws -> Int64 {
        Varint.unzigzag(try varint(field))
    }

    mutating func blob(_ field: StaticString) throws -> ArraySlice<UInt8> {
        let length = try varint(field)
        guard length <= UInt64(remaining) else {
            throw RecordDecodingError("truncated record: \(field) needs \(length) bytes, \(remaining) left")
        }
        let n = Int(length)
        defer { position += n }
        return bytes[position..<position + n]
    }

    mutating func string(_ field: StaticString) throws -> String {
        let b = try blob(field)
        return b.withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) }
    }

    /// A length-prefixed string appended to `table` as a `String` of its bytes would read (invalid
    /// UTF-8 repaired), without making the `String`.
    mutating func string(_ field: StaticString, into table: inout StringTable) throws {
        let b = try blob(field)
        b.withUnsafeBufferPointer { table.appendRepairing($0) }
    }

    /// Runs `body` with a cursor from the current position, and goes on where the cursor stopped: bulk
    /// sections (stacks, sample columns) read through one pointer instead of a checked call per varint.
    mutating func withCursor<T>(_ body: (inout ByteCursor) throws -> T) throws -> T {
        let bytes = self.bytes
        let start = position
        let (result, end) = try bytes.withUnsafeBytes { raw in
            var cursor = ByteCursor(raw, position: start)
            let result = try body(&cursor)
            return (result, cursor.position)
        }
        position = end
        return result
    }

    mutating func fixed64(_ field: StaticString) throws -> UInt64 {
        guard remaining >= 8 else { throw RecordDecodingError("truncated record: \(field) cut off") }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(bytes[position + i]) << (8 * UInt64(i)) }
        position += 8
        return v
    }
}

/// `ByteReader`'s varint reads over a raw pointer, valid inside `ByteReader.withCursor`.
struct ByteCursor {
    let raw: UnsafeRawBufferPointer
    var position: Int

    init(_ raw: UnsafeRawBufferPointer, position: Int) {
        self.raw = raw
        self.position = position
    }

    var remaining: Int { raw.count &- position }

    @inline(__always)
    mutating func varint(_ field: StaticString) throws -> UInt64 {
        if position < raw.count, raw[position] < 0x80 {
            defer { position &+= 1 }
            return UInt64(raw[position])
        }
        do throws(Varint.ReadError) {
            return try Varint.read(raw, at: &position, end: raw.count)
        } catch .truncated {
            throw RecordDecodingError("truncated record: varint \(field) cut off")
        } catch {
            throw RecordDecodingError("varint \(field) overflows 64 bits")
        }
    }

    @inline(__always)
    mutating func count(_ field: StaticString, limit: Int) throws -> Int {
        let v = try varint(field)
        guard v <= UInt64(limit) else { throw RecordDecodingError("\(field) \(v) exceeds the limit \(limit)") }
        return Int(v)
    }

    @inline(__always)
    mutating func signed(_ field: StaticString) throws -> Int64 { Varint.unzigzag(try varint(field)) }

    /// A little-endian byte length of the section after it: at most what is left.
    mutating func sectionLength(_ field: StaticString) throws -> Int {
        guard remaining >= 4 else { throw RecordDecodingError("truncated record: \(field) cut off") }
        let v = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: position, as: UInt32.self)))
        position &+= 4
        guard v <= remaining else { throw RecordDecodingError("truncated record: \(field) \(v) exceeds the \(remaining) bytes left") }
        return v
    }

    /// Steps over `count` varints without reading them: each ends at its first byte below 0x80, so
    /// eight bytes at a time count their ends.
    mutating func skipVarints(_ count: Int, _ field: StaticString) throws {
        var left = count
        var p = position
        let end = raw.count
        while left >= 8 && p &+ 8 <= end {
            let word = raw.loadUnaligned(fromByteOffset: p, as: UInt64.self)
            let ends = (~word & 0x8080_8080_8080_8080).nonzeroBitCount
            guard ends <= left else { break }
            left &-= ends
            p &+= 8
        }
        while left > 0 {
            guard p < end else { throw RecordDecodingError("truncated record: varint \(field) cut off") }
            if raw[p] < 0x80 { left &-= 1 }
            p &+= 1
        }
        position = p
    }

    /// A column of `count` varints, each made an element by `transform`.
    mutating func column<T>(_ count: Int, _ field: StaticString, _ transform: (UInt64) throws -> T) throws -> [T] {
        try [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count {
                (buffer.baseAddress! + i).initialize(to: try transform(try varint(field)))
                initialized = i + 1
            }
        }
    }

    /// An index into the record's string table of `stringCount` entries.
    @inline(__always)
    mutating func stringIndex(_ field: StaticString, stringCount: Int) throws -> Int {
        let i = try varint(field)
        guard i < UInt64(stringCount) else {
            throw RecordDecodingError("\(field) \(i) is out of the string table (\(stringCount) entries)")
        }
        return Int(i)
    }

    /// A length-prefixed run of bytes, as the range it takes.
    mutating func blob(_ field: StaticString) throws -> Range<Int> {
        let length = try varint(field)
        guard length <= UInt64(remaining) else {
            throw RecordDecodingError("truncated record: \(field) needs \(length) bytes, \(remaining) left")
        }
        defer { position &+= Int(length) }
        return position..<position &+ Int(length)
    }
}

/// Writes a record through a pointer into room sized for its worst case beforehand (a bulk column is
/// most of a batch, and appending to an array byte by byte costs a bounds and uniqueness check per
/// byte). Checked writes verify their own room; a bulk section calls `reserve` for its whole bound once
/// and then uses the unchecked writes, each of which stays inside what it counted for itself.
struct BoundedWriter {
    private let base: UnsafeMutablePointer<UInt8>
    private let capacity: Int
    private(set) var count = 0

    init(_ room: UnsafeMutableBufferPointer<UInt8>) {
        base = room.baseAddress!
        capacity = room.count
    }

    /// How many bytes `v` takes as a varint (1 to 10).
    static func varintLength(_ v: UInt64) -> Int { Varint.length(v) }

    /// The most bytes `string(s)` writes.
    static func stringBound(_ s: String) -> Int { 5 + s.utf8.count }

    /// Checks that `n` more bytes fit; unchecked writes after it must stay within them.
    mutating func reserve(_ n: Int) {
        precondition(count + n <= capacity, "record writer overrun: \(count) + \(n) > \(capacity)")
    }

    mutating func raw(_ byte: UInt8) {
        reserve(1)
        rawUnchecked(byte)
    }

    mutating func varint(_ v: UInt64) {
        reserve(10)
        varintUnchecked(v)
    }

    mutating func varint32(_ v: UInt32) {
        reserve(5)
        varint32Unchecked(v)
    }

    mutating func signed(_ v: Int64) { varint(Varint.zigzag(v)) }

    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            reserve(utf8.count)
            if let source = utf8.baseAddress { (base + count).update(from: source, count: utf8.count) }
            count += utf8.count
        }
    }

    /// Every string of `table`, each as its length and bytes.
    mutating func strings(_ table: StringTable) {
        reserve(5 * table.count + table.utf8.count)
        table.utf8.withUnsafeBufferPointer { utf8 in
            var start = 0
            for end in table.ends {
                let length = Int(end) &- start
                varint32Unchecked(UInt32(truncatingIfNeeded: length))
                if length > 0 { (base + count).update(from: utf8.baseAddress! + start, count: length) }
                count &+= length
                start = Int(end)
            }
        }
    }

    mutating func fixed32(_ v: UInt32) {
        reserve(4)
        UnsafeMutableRawPointer(base + count).storeBytes(of: v.littleEndian, as: UInt32.self)
        count &+= 4
    }

    /// Overwrites four bytes written before (a length known only once what it measures is written).
    mutating func patchFixed32(_ v: UInt32, at offset: Int) {
        precondition(offset >= 0 && offset + 4 <= count, "patch at \(offset) outside the \(count) bytes written")
        UnsafeMutableRawPointer(base + offset).storeBytes(of: v.littleEndian, as: UInt32.self)
    }

    @inline(__always) mutating func rawUnchecked(_ byte: UInt8) {
        base[count] = byte
        count &+= 1
    }

    /// At most 5 bytes. Branches on the length (a branch-free form costs more instructions than the
    /// mispredictions it saves: most columns keep to one or two lengths).
    @inline(__always) mutating func varint32Unchecked(_ v: UInt32) {
        if v < 0x80 {
            base[count] = UInt8(truncatingIfNeeded: v)
            count &+= 1
        } else if v < 0x4000 {
            let pair = UInt16(truncatingIfNeeded: v & 0x7f | 0x80) | UInt16(truncatingIfNeeded: v >> 7) << 8
            UnsafeMutableRawPointer(base + count).storeBytes(of: pair.littleEndian, as: UInt16.self)
            count &+= 2
        } else if v < 0x20_0000 {
            // Frame and stack indices of large profiles: a batch of 16,384 frames or more writes most of
            // its frames this way, and the general loop cost a call and three taken branches each.
            let pair = UInt16(truncatingIfNeeded: v & 0x7f | 0x80) | UInt16(truncatingIfNeeded: (v >> 7) & 0x7f | 0x80) << 8
            UnsafeMutableRawPointer(base + count).storeBytes(of: pair.littleEndian, as: UInt16.self)
            base[count &+ 2] = UInt8(truncatingIfNeeded: v >> 14)
            count &+= 3
        } else {
            varintLoop(UInt64(v))
        }
    }

    /// At most 10 bytes.
    @inline(__always) mutating func varintUnchecked(_ v: UInt64) {
        if v < 0x4000 { varint32Unchecked(UInt32(truncatingIfNeeded: v)) } else { varintLoop(v) }
    }

    private mutating func varintLoop(_ v: UInt64) {
        count &+= Varint.write(v, to: base + count)
    }

    @inline(__always) mutating func fixed64Unchecked(_ v: UInt64) {
        UnsafeMutableRawPointer(base + count).storeBytes(of: v.littleEndian, as: UInt64.self)
        count &+= 8
    }
}

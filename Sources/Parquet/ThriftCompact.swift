import KilnFoundation

// Thrift Compact Protocol, just the parts Parquet's footer and page headers use.
// Written from the protocol description: field headers carry a delta of the field id in the high nibble,
// integers are zigzag ULEB128 varints, binaries are length-prefixed, booleans live in the field type.

/// Compact-protocol wire types.
enum ThriftType: UInt8 {
    case stop = 0
    case boolTrue = 1
    case boolFalse = 2
    case byte = 3
    case i16 = 4
    case i32 = 5
    case i64 = 6
    case double = 7
    case binary = 8
    case list = 9
    case set = 10
    case map = 11
    case structure = 12
}

/// Appends compact-protocol values to a byte buffer. Callers write fields in increasing id order per struct.
struct ThriftWriter {
    var bytes: [UInt8] = []
    private var lastFieldIDs: [Int16] = []
    private var lastFieldID: Int16 = 0

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func varint(_ value: UInt64) { Varint.append(value, to: &bytes) }
    mutating func zigzag(_ value: Int64) { varint(Varint.zigzag(value)) }

    mutating func appendFieldHeader(_ id: Int16, _ type: ThriftType) {
        let delta = Int(id) - Int(lastFieldID)
        if delta > 0 && delta <= 15 {
            bytes.append(UInt8(delta << 4) | type.rawValue)
        } else {
            bytes.append(type.rawValue)
            zigzag(Int64(id))
        }
        lastFieldID = id
    }

    mutating func beginStruct() {
        lastFieldIDs.append(lastFieldID)
        lastFieldID = 0
    }

    mutating func endStruct() {
        bytes.append(ThriftType.stop.rawValue)
        lastFieldID = lastFieldIDs.removeLast()
    }

    mutating func i32(_ id: Int16, _ value: Int32) {
        appendFieldHeader(id, .i32)
        zigzag(Int64(value))
    }

    mutating func i64(_ id: Int16, _ value: Int64) {
        appendFieldHeader(id, .i64)
        zigzag(value)
    }

    mutating func i8(_ id: Int16, _ value: Int8) {
        appendFieldHeader(id, .byte)
        bytes.append(UInt8(bitPattern: value))
    }

    mutating func bool(_ id: Int16, _ value: Bool) {
        appendFieldHeader(id, value ? .boolTrue : .boolFalse)
    }

    mutating func binary(_ id: Int16, _ value: [UInt8]) {
        appendFieldHeader(id, .binary)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func string(_ id: Int16, _ value: String) {
        binary(id, Array(value.utf8))
    }

    /// Starts a struct-typed field; close it with `endStruct()`.
    mutating func structField(_ id: Int16) {
        appendFieldHeader(id, .structure)
        beginStruct()
    }

    /// Starts a list-typed field of `count` elements of `elementType`; then write the elements raw.
    mutating func listField(_ id: Int16, _ elementType: ThriftType, count: Int) {
        appendFieldHeader(id, .list)
        listHeader(elementType, count: count)
    }

    mutating func listHeader(_ elementType: ThriftType, count: Int) {
        if count < 15 {
            bytes.append(UInt8(count << 4) | elementType.rawValue)
        } else {
            bytes.append(0xF0 | elementType.rawValue)
            varint(UInt64(count))
        }
    }

    /// An empty struct as a field (Thrift unions whose variant carries no data, e.g. `StringType`).
    mutating func emptyStructField(_ id: Int16) {
        structField(id)
        endStruct()
    }
}

/// Errors raised while decoding Parquet files.
public enum ParquetError: Error, Equatable, CustomStringConvertible {
    case truncated(String)
    case invalid(String)
    case unsupported(String)
    case schemaMismatch(String)

    public var description: String {
        switch self {
        case .truncated(let s): return "parquet: truncated input: \(s)"
        case .invalid(let s): return "parquet: invalid file: \(s)"
        case .unsupported(let s): return "parquet: unsupported: \(s)"
        case .schemaMismatch(let s): return "parquet: data does not match schema: \(s)"
        }
    }
}

/// Reads compact-protocol values from a byte range. Unknown fields are skipped, so newer writers' extra
/// fields do not break us.
struct ThriftReader {
    let base: UnsafeRawBufferPointer
    var position: Int
    let end: Int
    private var lastFieldIDs: [Int16] = []
    private var lastFieldID: Int16 = 0
    /// Set by `readFieldHeader` for boolean fields, whose value is carried in the type nibble.
    private(set) var pendingBool = false
    private var depth = 0

    init(_ base: UnsafeRawBufferPointer, from: Int, to: Int) {
        self.base = base
        self.position = from
        self.end = to
    }

    mutating func byte() throws -> UInt8 {
        guard position < end else { throw ParquetError.truncated("thrift data ends early") }
        let b = base[position]
        position += 1
        return b
    }

    mutating func varint() throws -> UInt64 {
        do {
            return try Varint.read(base, at: &position, end: end)
        } catch Varint.ReadError.truncated {
            throw ParquetError.truncated("thrift data ends early")
        } catch {
            throw ParquetError.invalid("thrift varint too long")
        }
    }

    mutating func zigzag() throws -> Int64 { Varint.unzigzag(try varint()) }

    mutating func i32() throws -> Int32 {
        let v = try zigzag()
        guard let r = Int32(exactly: v) else { throw ParquetError.invalid("thrift i32 out of range") }
        return r
    }

    mutating func i64() throws -> Int64 { try zigzag() }

    mutating func binary() throws -> [UInt8] {
        let n = Int(truncatingIfNeeded: try varint())
        guard n >= 0, n <= end - position else { throw ParquetError.truncated("thrift binary of \(n) bytes") }
        let r = Array(UnsafeRawBufferPointer(rebasing: base[position..<position + n]))
        position += n
        return r
    }

    mutating func string() throws -> String { String(decoding: try binary(), as: UTF8.self) }

    mutating func beginStruct() throws {
        depth += 1
        if depth > 64 { throw ParquetError.invalid("thrift nesting too deep") }
        lastFieldIDs.append(lastFieldID)
        lastFieldID = 0
    }

    mutating func endStruct() {
        depth -= 1
        lastFieldID = lastFieldIDs.removeLast()
    }

    /// Next field's id and type, or nil at the struct's stop byte (which it consumes and ends the struct).
    mutating func nextField() throws -> (id: Int16, type: ThriftType)? {
        let header = try byte()
        if header == 0 {
            endStruct()
            return nil
        }
        guard let type = ThriftType(rawValue: header & 0x0F) else {
            throw ParquetError.invalid("thrift field type \(header & 0x0F)")
        }
        let delta = header >> 4
        let id: Int16
        if delta != 0 {
            id = lastFieldID &+ Int16(delta)
        } else {
            id = Int16(truncatingIfNeeded: try zigzag())
        }
        lastFieldID = id
        if type == .boolTrue || type == .boolFalse { pendingBool = type == .boolTrue }
        return (id, type)
    }

    /// Boolean field value (already carried by the header).
    func bool() -> Bool { pendingBool }

    mutating func listHeader() throws -> (type: ThriftType, count: Int) {
        let h = try byte()
        guard let type = ThriftType(rawValue: h & 0x0F) else { throw ParquetError.invalid("thrift list type") }
        var count = Int(h >> 4)
        if count == 15 { count = Int(truncatingIfNeeded: try varint()) }
        guard count >= 0, count <= end - position + 1 else { throw ParquetError.invalid("thrift list of \(count)") }
        return (type, count)
    }

    /// Skips a value of `type` (for fields this reader does not know).
    mutating func skip(_ type: ThriftType) throws {
        switch type {
        case .stop: return
        case .boolTrue, .boolFalse: return
        case .byte: _ = try byte()
        case .i16, .i32, .i64: _ = try varint()
        case .double:
            guard end - position >= 8 else { throw ParquetError.truncated("thrift double") }
            position += 8
        case .binary:
            let n = Int(truncatingIfNeeded: try varint())
            guard n <= end - position else { throw ParquetError.truncated("thrift binary") }
            position += n
        case .list, .set:
            let (t, n) = try listHeader()
            for _ in 0..<n {
                // Booleans inside lists take one byte each.
                if t == .boolTrue || t == .boolFalse { _ = try byte() } else { try skip(t) }
            }
        case .map:
            let n = Int(truncatingIfNeeded: try varint())
            if n > 0 {
                let kv = try byte()
                guard let kt = ThriftType(rawValue: kv >> 4), let vt = ThriftType(rawValue: kv & 0x0F) else {
                    throw ParquetError.invalid("thrift map types")
                }
                for _ in 0..<n {
                    try skip(kt)
                    try skip(vt)
                }
            }
        case .structure:
            try beginStruct()
            while let f = try nextField() { try skip(f.type) }
        }
    }
}

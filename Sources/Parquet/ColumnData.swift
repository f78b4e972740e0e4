// Column values in memory: contiguous typed arrays, nulls as a separate validity mask.

/// Variable-length byte strings stored back to back in one buffer (no per-value allocation).
public struct ByteArrays: Sendable, Equatable {
    /// All values concatenated.
    public private(set) var bytes: [UInt8]
    /// `count + 1` offsets into `bytes`; value i is `bytes[offsets[i]..<offsets[i+1]]`.
    public private(set) var offsets: [Int]

    public init() {
        bytes = []
        offsets = [0]
    }

    public init(bytes: [UInt8], offsets: [Int]) {
        precondition(offsets.first == 0 && offsets.last == bytes.count, "offsets must span bytes")
        self.bytes = bytes
        self.offsets = offsets
    }

    public init(_ strings: [String]) {
        self.init()
        offsets.reserveCapacity(strings.count + 1)
        for s in strings { append(s) }
    }

    public init(_ arrays: [[UInt8]]) {
        self.init()
        offsets.reserveCapacity(arrays.count + 1)
        for a in arrays { append(a) }
    }

    public var count: Int { offsets.count - 1 }

    public mutating func reserveCapacity(values: Int, bytes byteCount: Int) {
        offsets.reserveCapacity(values + 1)
        bytes.reserveCapacity(byteCount)
    }

    public mutating func append(_ value: String) {
        var s = value
        s.withUTF8 { bytes.append(contentsOf: $0) }
        offsets.append(bytes.count)
    }

    public mutating func append<C: Collection>(_ value: C) where C.Element == UInt8 {
        bytes.append(contentsOf: value)
        offsets.append(bytes.count)
    }

    mutating func append(_ raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
        offsets.append(bytes.count)
    }

    public subscript(i: Int) -> ArraySlice<UInt8> { bytes[offsets[i]..<offsets[i + 1]] }

    public func string(at i: Int) -> String { String(decoding: self[i], as: UTF8.self) }

    public var strings: [String] { (0..<count).map { string(at: $0) } }

    public var arrays: [[UInt8]] { (0..<count).map { Array(self[$0]) } }

    /// Values `range` as a new column.
    public func slice(_ range: Range<Int>) -> ByteArrays {
        let lo = offsets[range.lowerBound]
        let hi = offsets[range.upperBound]
        return ByteArrays(bytes: Array(bytes[lo..<hi]), offsets: offsets[range.lowerBound...range.upperBound].map { $0 - lo })
    }
}

/// The non-null values of one column, by physical shape.
public enum ColumnValues: Sendable, Equatable {
    case int64([Int64])
    case int32([Int32])
    case boolean([Bool])
    /// BYTE_ARRAY and FIXED_LEN_BYTE_ARRAY values.
    case byteArrays(ByteArrays)
    /// Lists of INT64: `offsets` has one more entry than there are non-null lists.
    case int64Lists(offsets: [Int], values: [Int64])
    case int32Lists(offsets: [Int], values: [Int32])

    /// Number of non-null entries (values, or lists for list columns).
    public var count: Int {
        switch self {
        case .int64(let v): v.count
        case .int32(let v): v.count
        case .boolean(let v): v.count
        case .byteArrays(let v): v.count
        case .int64Lists(let o, _): o.count - 1
        case .int32Lists(let o, _): o.count - 1
        }
    }
}

/// One column's data for a batch of rows: the non-null values, plus which rows are present.
public struct ColumnData: Sendable, Equatable {
    public var values: ColumnValues
    /// One flag per row, true where the row holds a value; nil means every row does.
    public var validity: [Bool]?

    /// A validity mask without nulls is dropped, so equal data compares equal however it was built.
    public init(values: ColumnValues, validity: [Bool]? = nil) {
        var mask = validity
        if let v = validity {
            let present = v.lazy.filter { $0 }.count
            precondition(present == values.count, "validity must mark one row per value")
            if present == v.count { mask = nil }
        }
        self.values = values
        self.validity = mask
    }

    public var rowCount: Int { validity?.count ?? values.count }
    public var nullCount: Int { validity.map { $0.lazy.filter { !$0 }.count } ?? 0 }

    // MARK: Building

    public static func int64(_ v: [Int64]) -> ColumnData { ColumnData(values: .int64(v)) }
    public static func int32(_ v: [Int32]) -> ColumnData { ColumnData(values: .int32(v)) }
    public static func boolean(_ v: [Bool]) -> ColumnData { ColumnData(values: .boolean(v)) }
    public static func strings(_ v: [String]) -> ColumnData { ColumnData(values: .byteArrays(ByteArrays(v))) }
    public static func bytes(_ v: [[UInt8]]) -> ColumnData { ColumnData(values: .byteArrays(ByteArrays(v))) }
    public static func byteArrays(_ v: ByteArrays, validity: [Bool]? = nil) -> ColumnData {
        ColumnData(values: .byteArrays(v), validity: validity)
    }

    public static func int64(_ v: [Int64?]) -> ColumnData {
        ColumnData(values: .int64(v.compactMap { $0 }), validity: v.map { $0 != nil })
    }
    public static func int32(_ v: [Int32?]) -> ColumnData {
        ColumnData(values: .int32(v.compactMap { $0 }), validity: v.map { $0 != nil })
    }
    public static func boolean(_ v: [Bool?]) -> ColumnData {
        ColumnData(values: .boolean(v.compactMap { $0 }), validity: v.map { $0 != nil })
    }
    public static func strings(_ v: [String?]) -> ColumnData {
        ColumnData(values: .byteArrays(ByteArrays(v.compactMap { $0 })), validity: v.map { $0 != nil })
    }
    public static func bytes(_ v: [[UInt8]?]) -> ColumnData {
        ColumnData(values: .byteArrays(ByteArrays(v.compactMap { $0 })), validity: v.map { $0 != nil })
    }

    public static func int64Lists(_ lists: [[Int64]?]) -> ColumnData {
        var offsets = [0]
        var flat: [Int64] = []
        for l in lists {
            if let l {
                flat.append(contentsOf: l)
                offsets.append(flat.count)
            }
        }
        let hasNull = lists.contains { $0 == nil }
        return ColumnData(
            values: .int64Lists(offsets: offsets, values: flat),
            validity: hasNull ? lists.map { $0 != nil } : nil)
    }
    public static func int64Lists(_ lists: [[Int64]]) -> ColumnData { int64Lists(lists.map { Optional($0) }) }

    public static func int32Lists(_ lists: [[Int32]?]) -> ColumnData {
        var offsets = [0]
        var flat: [Int32] = []
        for l in lists {
            if let l {
                flat.append(contentsOf: l)
                offsets.append(flat.count)
            }
        }
        let hasNull = lists.contains { $0 == nil }
        return ColumnData(
            values: .int32Lists(offsets: offsets, values: flat),
            validity: hasNull ? lists.map { $0 != nil } : nil)
    }
    public static func int32Lists(_ lists: [[Int32]]) -> ColumnData { int32Lists(lists.map { Optional($0) }) }

    // MARK: Reading back, one entry per row (nil for null rows)

    private func spread<T>(_ values: [T]) -> [T?] {
        guard let validity else { return values.map { Optional($0) } }
        var out: [T?] = []
        out.reserveCapacity(validity.count)
        var k = 0
        for present in validity {
            if present {
                out.append(values[k])
                k += 1
            } else {
                out.append(nil)
            }
        }
        return out
    }

    public var int64Values: [Int64?]? { if case .int64(let v) = values { spread(v) } else { nil } }
    /// One entry per row with `null` standing for null rows: no optionals for hot loops to unwrap.
    public func int64Values(nullAs null: Int64) -> [Int64]? {
        guard case .int64(let v) = values else { return nil }
        guard let validity else { return v }
        var out = [Int64](repeating: null, count: validity.count)
        out.withUnsafeMutableBufferPointer { out in
            var k = 0
            for row in validity.indices where validity[row] {
                out[row] = v[k]
                k += 1
            }
        }
        return out
    }
    public var int32Values: [Int32?]? { if case .int32(let v) = values { spread(v) } else { nil } }
    public var booleanValues: [Bool?]? { if case .boolean(let v) = values { spread(v) } else { nil } }
    public var stringValues: [String?]? { if case .byteArrays(let v) = values { spread(v.strings) } else { nil } }
    public var bytesValues: [[UInt8]?]? { if case .byteArrays(let v) = values { spread(v.arrays) } else { nil } }
    public var int64ListValues: [[Int64]?]? {
        guard case .int64Lists(let o, let v) = values else { return nil }
        return spread((0..<(o.count - 1)).map { Array(v[o[$0]..<o[$0 + 1]]) })
    }
    public var int32ListValues: [[Int32]?]? {
        guard case .int32Lists(let o, let v) = values else { return nil }
        return spread((0..<(o.count - 1)).map { Array(v[o[$0]..<o[$0 + 1]]) })
    }

    // MARK: Slicing rows (the writer cuts row groups with it)

    /// Rows `range` as a new column.
    public func slice(rows range: Range<Int>) -> ColumnData {
        // Map the row range to the range of non-null entries.
        var lo = range.lowerBound
        var hi = range.upperBound
        var sliceValidity: [Bool]?
        if let validity {
            lo = validity[0..<range.lowerBound].lazy.filter { $0 }.count
            hi = lo + validity[range].lazy.filter { $0 }.count
            sliceValidity = Array(validity[range])
        }
        let v: ColumnValues
        switch values {
        case .int64(let a): v = .int64(Array(a[lo..<hi]))
        case .int32(let a): v = .int32(Array(a[lo..<hi]))
        case .boolean(let a): v = .boolean(Array(a[lo..<hi]))
        case .byteArrays(let b): v = .byteArrays(b.slice(lo..<hi))
        case .int64Lists(let o, let a):
            v = .int64Lists(offsets: o[lo...hi].map { $0 - o[lo] }, values: Array(a[o[lo]..<o[hi]]))
        case .int32Lists(let o, let a):
            v = .int32Lists(offsets: o[lo...hi].map { $0 - o[lo] }, values: Array(a[o[lo]..<o[hi]]))
        }
        return ColumnData(values: v, validity: sliceValidity)
    }
}

// The Parquet footer and page-header structures (parquet.thrift), with their compact-protocol
// encoding and decoding. Only the fields Kiln writes or needs to read are modelled; others are skipped.

public enum PhysicalType: Int32, Sendable, Equatable {
    case boolean = 0
    case int32 = 1
    case int64 = 2
    case int96 = 3
    case float = 4
    case double = 5
    case byteArray = 6
    case fixedLenByteArray = 7
}

public enum Repetition: Int32, Sendable, Equatable {
    case required = 0
    case optional = 1
    case repeated = 2
}

public enum Encoding: Int32, Sendable, Equatable, CustomStringConvertible {
    case plain = 0
    case plainDictionary = 2
    case rle = 3
    case bitPacked = 4
    case deltaBinaryPacked = 5
    case deltaLengthByteArray = 6
    case deltaByteArray = 7
    case rleDictionary = 8
    case byteStreamSplit = 9
    case alp = 10

    public var description: String {
        switch self {
        case .plain: "PLAIN"
        case .plainDictionary: "PLAIN_DICTIONARY"
        case .rle: "RLE"
        case .bitPacked: "BIT_PACKED"
        case .deltaBinaryPacked: "DELTA_BINARY_PACKED"
        case .deltaLengthByteArray: "DELTA_LENGTH_BYTE_ARRAY"
        case .deltaByteArray: "DELTA_BYTE_ARRAY"
        case .rleDictionary: "RLE_DICTIONARY"
        case .byteStreamSplit: "BYTE_STREAM_SPLIT"
        case .alp: "ALP"
        }
    }
}

public enum CompressionCodec: Int32, Sendable, Equatable, CustomStringConvertible {
    case uncompressed = 0
    case snappy = 1
    case gzip = 2
    case lzo = 3
    case brotli = 4
    case lz4 = 5
    case zstd = 6
    case lz4Raw = 7

    public var description: String {
        switch self {
        case .uncompressed: "UNCOMPRESSED"
        case .snappy: "SNAPPY"
        case .gzip: "GZIP"
        case .lzo: "LZO"
        case .brotli: "BROTLI"
        case .lz4: "LZ4"
        case .zstd: "ZSTD"
        case .lz4Raw: "LZ4_RAW"
        }
    }
}

public enum ConvertedType: Int32, Sendable, Equatable {
    case utf8 = 0
    case map = 1
    case mapKeyValue = 2
    case list = 3
    case enumeration = 4
    case decimal = 5
    case date = 6
    case timeMillis = 7
    case timeMicros = 8
    case timestampMillis = 9
    case timestampMicros = 10
    case uint8 = 11
    case uint16 = 12
    case uint32 = 13
    case uint64 = 14
    case int8 = 15
    case int16 = 16
    case int32 = 17
    case int64 = 18
    case json = 19
    case bson = 20
    case interval = 21
}

public enum TimeUnit: Sendable, Equatable { case millis, micros, nanos }

/// The `LogicalType` union, for the variants Kiln uses; anything else is kept as its union field id.
public enum LogicalType: Sendable, Equatable {
    case string
    case list
    case integer(bitWidth: Int8, signed: Bool)
    case timestamp(unit: TimeUnit, adjustedToUTC: Bool)
    case other(fieldID: Int16)
}

public struct SchemaElement: Sendable, Equatable {
    public var name: String
    public var type: PhysicalType?
    public var typeLength: Int32?
    public var repetition: Repetition?
    public var numChildren: Int32?
    public var convertedType: ConvertedType?
    public var logicalType: LogicalType?
    public var fieldID: Int32?

    public init(
        name: String, type: PhysicalType? = nil, typeLength: Int32? = nil, repetition: Repetition? = nil,
        numChildren: Int32? = nil, convertedType: ConvertedType? = nil, logicalType: LogicalType? = nil,
        fieldID: Int32? = nil
    ) {
        self.name = name
        self.type = type
        self.typeLength = typeLength
        self.repetition = repetition
        self.numChildren = numChildren
        self.convertedType = convertedType
        self.logicalType = logicalType
        self.fieldID = fieldID
    }
}

/// Column-chunk statistics as stored: values are PLAIN-encoded (without a length prefix for byte arrays).
public struct Statistics: Sendable, Equatable {
    /// Deprecated fields with signed byte-wise ordering for byte arrays; read, never written.
    public var legacyMax: [UInt8]?
    public var legacyMin: [UInt8]?
    public var nullCount: Int64?
    public var distinctCount: Int64?
    public var maxValue: [UInt8]?
    public var minValue: [UInt8]?
    public var isMaxValueExact: Bool?
    public var isMinValueExact: Bool?

    public init() {}
}

public struct KeyValue: Sendable, Equatable {
    public var key: String
    public var value: String?
    public init(key: String, value: String?) {
        self.key = key
        self.value = value
    }
}

public struct ColumnMetaData: Sendable, Equatable {
    public var type: PhysicalType
    public var encodings: [Encoding]
    public var pathInSchema: [String]
    public var codec: CompressionCodec
    public var numValues: Int64
    public var totalUncompressedSize: Int64
    public var totalCompressedSize: Int64
    public var dataPageOffset: Int64
    public var dictionaryPageOffset: Int64?
    public var statistics: Statistics?
    /// Where the chunk's Bloom filter (header and bitset) is, and its length.
    public var bloomFilterOffset: Int64?
    public var bloomFilterLength: Int32?
}

public struct ColumnChunk: Sendable, Equatable {
    public var filePath: String?
    public var fileOffset: Int64
    public var metaData: ColumnMetaData?
}

public struct RowGroup: Sendable, Equatable {
    public var columns: [ColumnChunk]
    public var totalByteSize: Int64
    public var numRows: Int64
    public var fileOffset: Int64?
    public var totalCompressedSize: Int64?
    public var ordinal: Int16?
}

public struct FileMetaData: Sendable, Equatable {
    public var version: Int32
    public var schema: [SchemaElement]
    public var numRows: Int64
    public var rowGroups: [RowGroup]
    public var keyValueMetadata: [KeyValue]?
    public var createdBy: String?
    /// One entry per leaf column; true = TypeDefinedOrder (min_value/max_value are meaningful).
    public var columnOrders: [Bool]?
}

enum PageType: Int32 {
    case dataPage = 0
    case indexPage = 1
    case dictionaryPage = 2
    case dataPageV2 = 3
}

struct DataPageHeader {
    var numValues: Int32
    var encoding: Encoding
    var definitionLevelEncoding: Encoding
    var repetitionLevelEncoding: Encoding
}

struct DataPageHeaderV2 {
    var numValues: Int32
    var numNulls: Int32
    var numRows: Int32
    var encoding: Encoding
    var definitionLevelsByteLength: Int32
    var repetitionLevelsByteLength: Int32
    var isCompressed: Bool
}

struct DictionaryPageHeader {
    var numValues: Int32
    var encoding: Encoding
}

struct PageHeader {
    var type: PageType
    var uncompressedPageSize: Int32
    var compressedPageSize: Int32
    var dataPage: DataPageHeader?
    var dictionaryPage: DictionaryPageHeader?
    var dataPageV2: DataPageHeaderV2?
}

// MARK: - Encoding

extension ThriftWriter {
    mutating func write(_ e: SchemaElement) {
        beginStruct()
        if let t = e.type { i32(1, t.rawValue) }
        if let l = e.typeLength { i32(2, l) }
        if let r = e.repetition { i32(3, r.rawValue) }
        string(4, e.name)
        if let n = e.numChildren { i32(5, n) }
        if let c = e.convertedType { i32(6, c.rawValue) }
        if let f = e.fieldID { i32(9, f) }
        if let lt = e.logicalType {
            structField(10)
            switch lt {
            case .string: emptyStructField(1)
            case .list: emptyStructField(3)
            case .timestamp(let unit, let utc):
                structField(8)
                bool(1, utc)
                structField(2)
                switch unit {
                case .millis: emptyStructField(1)
                case .micros: emptyStructField(2)
                case .nanos: emptyStructField(3)
                }
                endStruct()
                endStruct()
            case .integer(let width, let signed):
                structField(10)
                i8(1, width)
                bool(2, signed)
                endStruct()
            case .other(let id): emptyStructField(id)
            }
            endStruct()
        }
        endStruct()
    }

    /// Writes the statistics fields into an already-open struct, then closes it.
    fileprivate mutating func endStructAfter(_ body: (inout ThriftWriter) -> Void) {
        body(&self)
        endStruct()
    }

    fileprivate mutating func writeStatisticsFields(_ s: Statistics) {
        if let v = s.legacyMax { binary(1, v) }
        if let v = s.legacyMin { binary(2, v) }
        if let v = s.nullCount { i64(3, v) }
        if let v = s.distinctCount { i64(4, v) }
        if let v = s.maxValue { binary(5, v) }
        if let v = s.minValue { binary(6, v) }
        if let v = s.isMaxValueExact { bool(7, v) }
        if let v = s.isMinValueExact { bool(8, v) }
    }

    mutating func write(_ f: FileMetaData) {
        beginStruct()
        i32(1, f.version)
        listField(2, .structure, count: f.schema.count)
        for e in f.schema { write(e) }
        i64(3, f.numRows)
        listField(4, .structure, count: f.rowGroups.count)
        for rg in f.rowGroups {
            beginStruct()
            listField(1, .structure, count: rg.columns.count)
            for c in rg.columns {
                beginStruct()
                if let p = c.filePath { string(1, p) }
                i64(2, c.fileOffset)
                if let m = c.metaData {
                    structField(3)
                    endStructAfter { w in w.writeColumnMetaDataFields(m) }
                }
                endStruct()
            }
            i64(2, rg.totalByteSize)
            i64(3, rg.numRows)
            if let o = rg.fileOffset { i64(5, o) }
            if let t = rg.totalCompressedSize { i64(6, t) }
            if let o = rg.ordinal {
                // i16 field: compact protocol type 4, zigzag varint.
                writeI16(7, o)
            }
            endStruct()
        }
        if let kv = f.keyValueMetadata {
            listField(5, .structure, count: kv.count)
            for e in kv {
                beginStruct()
                string(1, e.key)
                if let v = e.value { string(2, v) }
                endStruct()
            }
        }
        if let c = f.createdBy { string(6, c) }
        if let orders = f.columnOrders {
            listField(7, .structure, count: orders.count)
            for typeDefined in orders {
                beginStruct()
                if typeDefined { emptyStructField(1) }
                endStruct()
            }
        }
        endStruct()
    }

    fileprivate mutating func writeColumnMetaDataFields(_ m: ColumnMetaData) {
        i32(1, m.type.rawValue)
        listField(2, .i32, count: m.encodings.count)
        for e in m.encodings { zigzag(Int64(e.rawValue)) }
        listField(3, .binary, count: m.pathInSchema.count)
        for p in m.pathInSchema {
            let u = Array(p.utf8)
            varint(UInt64(u.count))
            bytes.append(contentsOf: u)
        }
        i32(4, m.codec.rawValue)
        i64(5, m.numValues)
        i64(6, m.totalUncompressedSize)
        i64(7, m.totalCompressedSize)
        i64(9, m.dataPageOffset)
        if let d = m.dictionaryPageOffset { i64(11, d) }
        if let s = m.statistics {
            structField(12)
            endStructAfter { $0.writeStatisticsFields(s) }
        }
        if let o = m.bloomFilterOffset { i64(14, o) }
        if let l = m.bloomFilterLength { i32(15, l) }
    }

    /// A Bloom filter's header: its size, and the only algorithm, hash and compression the format has
    /// (split blocks, xxHash64, none), each an empty struct in a union.
    mutating func writeBloomFilterHeader(numBytes: Int32) {
        beginStruct()
        i32(1, numBytes)
        for field: Int16 in [2, 3, 4] {
            structField(field)
            emptyStructField(1)
            endStruct()
        }
        endStruct()
    }

    mutating func write(_ h: PageHeader) {
        beginStruct()
        i32(1, h.type.rawValue)
        i32(2, h.uncompressedPageSize)
        i32(3, h.compressedPageSize)
        if let d = h.dataPage {
            structField(5)
            i32(1, d.numValues)
            i32(2, d.encoding.rawValue)
            i32(3, d.definitionLevelEncoding.rawValue)
            i32(4, d.repetitionLevelEncoding.rawValue)
            endStruct()
        }
        if let d = h.dictionaryPage {
            structField(7)
            i32(1, d.numValues)
            i32(2, d.encoding.rawValue)
            endStruct()
        }
        if let d = h.dataPageV2 {
            structField(8)
            i32(1, d.numValues)
            i32(2, d.numNulls)
            i32(3, d.numRows)
            i32(4, d.encoding.rawValue)
            i32(5, d.definitionLevelsByteLength)
            i32(6, d.repetitionLevelsByteLength)
            bool(7, d.isCompressed)
            endStruct()
        }
        endStruct()
    }
}

extension ThriftWriter {
    mutating func writeI16(_ id: Int16, _ value: Int16) {
        // Same header scheme as other fields; only the type nibble differs.
        appendFieldHeader(id, .i16)
        zigzag(Int64(value))
    }
}

// MARK: - Decoding

private func enumValue<E: RawRepresentable>(_ raw: Int32, _ what: String) throws -> E where E.RawValue == Int32 {
    guard let v = E(rawValue: raw) else { throw ParquetError.unsupported("\(what) \(raw)") }
    return v
}

extension ThriftReader {
    mutating func readStatistics() throws -> Statistics {
        var s = Statistics()
        try beginStruct()
        while let f = try nextField() {
            switch (f.id, f.type) {
            case (1, .binary): s.legacyMax = try binary()
            case (2, .binary): s.legacyMin = try binary()
            case (3, .i64): s.nullCount = try i64()
            case (4, .i64): s.distinctCount = try i64()
            case (5, .binary): s.maxValue = try binary()
            case (6, .binary): s.minValue = try binary()
            case (7, .boolTrue), (7, .boolFalse): s.isMaxValueExact = bool()
            case (8, .boolTrue), (8, .boolFalse): s.isMinValueExact = bool()
            default: try skip(f.type)
            }
        }
        return s
    }

    /// Reads a union and returns the id of its (single) set field, skipping the field's body.
    mutating func readUnionFieldID() throws -> Int16? {
        var id: Int16?
        try beginStruct()
        while let f = try nextField() {
            id = f.id
            try skip(f.type)
        }
        return id
    }

    mutating func readLogicalType() throws -> LogicalType? {
        var result: LogicalType?
        try beginStruct()
        while let f = try nextField() {
            switch (f.id, f.type) {
            case (1, .structure):
                try skip(f.type)
                result = .string
            case (3, .structure):
                try skip(f.type)
                result = .list
            case (8, .structure):
                var utc = false
                var unit = TimeUnit.micros
                try beginStruct()
                while let g = try nextField() {
                    switch (g.id, g.type) {
                    case (1, .boolTrue), (1, .boolFalse): utc = bool()
                    case (2, .structure):
                        switch try readUnionFieldID() {
                        case 1: unit = .millis
                        case 3: unit = .nanos
                        default: unit = .micros
                        }
                    default: try skip(g.type)
                    }
                }
                result = .timestamp(unit: unit, adjustedToUTC: utc)
            case (10, .structure):
                var width: Int8 = 64
                var signed = true
                try beginStruct()
                while let g = try nextField() {
                    switch (g.id, g.type) {
                    case (1, .byte): width = Int8(bitPattern: try byte())
                    case (2, .boolTrue), (2, .boolFalse): signed = bool()
                    default: try skip(g.type)
                    }
                }
                result = .integer(bitWidth: width, signed: signed)
            default:
                try skip(f.type)
                result = .other(fieldID: f.id)
            }
        }
        return result
    }

    mutating func readSchemaElement() throws -> SchemaElement {
        var e = SchemaElement(name: "")
        try beginStruct()
        while let f = try nextField() {
            switch (f.id, f.type) {
            case (1, .i32): e.type = try enumValue(try i32(), "physical type")
            case (2, .i32): e.typeLength = try i32()
            case (3, .i32): e.repetition = try enumValue(try i32(), "repetition")
            case (4, .binary): e.name = try string()
            case (5, .i32): e.numChildren = try i32()
            case (6, .i32): e.convertedType = ConvertedType(rawValue: try i32())
            case (9, .i32): e.fieldID = try i32()
            case (10, .structure): e.logicalType = try readLogicalType()
            default: try skip(f.type)
            }
        }
        return e
    }

    mutating func readColumnMetaData() throws -> ColumnMetaData {
        var m = ColumnMetaData(
            type: .int64, encodings: [], pathInSchema: [], codec: .uncompressed, numValues: 0,
            totalUncompressedSize: 0, totalCompressedSize: 0, dataPageOffset: 0)
        try beginStruct()
        while let f = try nextField() {
            switch (f.id, f.type) {
            case (1, .i32): m.type = try enumValue(try i32(), "physical type")
            case (2, .list):
                let (_, n) = try listHeader()
                for _ in 0..<n {
                    // Unknown encodings are listed by newer writers; keep the ones we know.
                    if let e = Encoding(rawValue: try i32()) { m.encodings.append(e) }
                }
            case (3, .list):
                let (_, n) = try listHeader()
                for _ in 0..<n { m.pathInSchema.append(try string()) }
            case (4, .i32): m.codec = try enumValue(try i32(), "compression codec")
            case (5, .i64): m.numValues = try i64()
            case (6, .i64): m.totalUncompressedSize = try i64()
            case (7, .i64): m.totalCompressedSize = try i64()
            case (9, .i64): m.dataPageOffset = try i64()
            case (11, .i64): m.dictionaryPageOffset = try i64()
            case (12, .structure): m.statistics = try readStatistics()
            case (14, .i64): m.bloomFilterOffset = try i64()
            case (15, .i32): m.bloomFilterLength = try i32()
            default: try skip(f.type)
            }
        }
        return m
    }

    /// A Bloom filter header: the bitset's size, or nil when the algorithm, hash or compression is not
    /// the one kind Kiln reads (a newer writer's).
    mutating func readBloomFilterHeader() throws -> Int? {
        var numBytes: Int32?
        var known = Set<Int16>()
        try beginStruct()
        while let f = try nextField() {
            switch (f.id, f.type) {
            case (1, .i32): numBytes = try i32()
            case (2, .structure), (3, .structure), (4, .structure):
                // A union: split blocks, xxHash64 and uncompressed are each its field 1.
                try beginStruct()
                while let variant = try nextField() {
                    if variant.id == 1 { known.insert(f.id) }
                    try skip(variant.type)
                }
            default: try skip(f.type)
            }
        }
        guard let numBytes, known == [2, 3, 4] else { return nil }
        return Int(numBytes)
    }

    mutating func readRowGroup() throws -> RowGroup {
        var rg = RowGroup(columns: [], totalByteSize: 0, numRows: 0)
        try beginStruct()
        while let f = try nextField() {
            switch (f.id, f.type) {
            case (1, .list):
                let (_, n) = try listHeader()
                for _ in 0..<n {
                    var c = ColumnChunk(fileOffset: 0)
                    try beginStruct()
                    while let g = try nextField() {
                        switch (g.id, g.type) {
                        case (1, .binary): c.filePath = try string()
                        case (2, .i64): c.fileOffset = try i64()
                        case (3, .structure): c.metaData = try readColumnMetaData()
                        default: try skip(g.type)
                        }
                    }
                    rg.columns.append(c)
                }
            case (2, .i64): rg.totalByteSize = try i64()
            case (3, .i64): rg.numRows = try i64()
            case (5, .i64): rg.fileOffset = try i64()
            case (6, .i64): rg.totalCompressedSize = try i64()
            case (7, .i16): rg.ordinal = Int16(truncatingIfNeeded: try zigzag())
            default: try skip(f.type)
            }
        }
        return rg
    }

    mutating func readFileMetaData() throws -> FileMetaData {
        var fm = FileMetaData(version: 1, schema: [], numRows: 0, rowGroups: [])
        try beginStruct()
        while let f = try nextField() {
            switch (f.id, f.type) {
            case (1, .i32): fm.version = try i32()
            case (2, .list):
                let (_, n) = try listHeader()
                for _ in 0..<n { fm.schema.append(try readSchemaElement()) }
            case (3, .i64): fm.numRows = try i64()
            case (4, .list):
                let (_, n) = try listHeader()
                for _ in 0..<n { fm.rowGroups.append(try readRowGroup()) }
            case (5, .list):
                let (_, n) = try listHeader()
                var kvs: [KeyValue] = []
                for _ in 0..<n {
                    var kv = KeyValue(key: "", value: nil)
                    try beginStruct()
                    while let g = try nextField() {
                        switch (g.id, g.type) {
                        case (1, .binary): kv.key = try string()
                        case (2, .binary): kv.value = try string()
                        default: try skip(g.type)
                        }
                    }
                    kvs.append(kv)
                }
                fm.keyValueMetadata = kvs
            case (6, .binary): fm.createdBy = try string()
            case (7, .list):
                let (_, n) = try listHeader()
                var orders: [Bool] = []
                for _ in 0..<n { orders.append(try readUnionFieldID() == 1) }
                fm.columnOrders = orders
            case (8, _), (9, _):
                throw ParquetError.unsupported("encrypted parquet files")
            default: try skip(f.type)
            }
        }
        return fm
    }

    mutating func readPageHeader() throws -> PageHeader {
        var h = PageHeader(type: .dataPage, uncompressedPageSize: 0, compressedPageSize: 0)
        var sawType = false
        try beginStruct()
        while let f = try nextField() {
            switch (f.id, f.type) {
            case (1, .i32):
                let raw = try i32()
                guard let t = PageType(rawValue: raw) else { throw ParquetError.unsupported("page type \(raw)") }
                h.type = t
                sawType = true
            case (2, .i32): h.uncompressedPageSize = try i32()
            case (3, .i32): h.compressedPageSize = try i32()
            case (5, .structure):
                var d = DataPageHeader(
                    numValues: 0, encoding: .plain, definitionLevelEncoding: .rle,
                    repetitionLevelEncoding: .rle)
                try beginStruct()
                while let g = try nextField() {
                    switch (g.id, g.type) {
                    case (1, .i32): d.numValues = try i32()
                    case (2, .i32): d.encoding = try enumValue(try i32(), "encoding")
                    case (3, .i32): d.definitionLevelEncoding = try enumValue(try i32(), "encoding")
                    case (4, .i32): d.repetitionLevelEncoding = try enumValue(try i32(), "encoding")
                    default: try skip(g.type)
                    }
                }
                h.dataPage = d
            case (7, .structure):
                var d = DictionaryPageHeader(numValues: 0, encoding: .plain)
                try beginStruct()
                while let g = try nextField() {
                    switch (g.id, g.type) {
                    case (1, .i32): d.numValues = try i32()
                    case (2, .i32): d.encoding = try enumValue(try i32(), "encoding")
                    default: try skip(g.type)
                    }
                }
                h.dictionaryPage = d
            case (8, .structure):
                var d = DataPageHeaderV2(
                    numValues: 0, numNulls: 0, numRows: 0, encoding: .plain,
                    definitionLevelsByteLength: 0, repetitionLevelsByteLength: 0,
                    isCompressed: true)
                try beginStruct()
                while let g = try nextField() {
                    switch (g.id, g.type) {
                    case (1, .i32): d.numValues = try i32()
                    case (2, .i32): d.numNulls = try i32()
                    case (3, .i32): d.numRows = try i32()
                    case (4, .i32): d.encoding = try enumValue(try i32(), "encoding")
                    case (5, .i32): d.definitionLevelsByteLength = try i32()
                    case (6, .i32): d.repetitionLevelsByteLength = try i32()
                    case (7, .boolTrue), (7, .boolFalse): d.isCompressed = bool()
                    default: try skip(g.type)
                    }
                }
                h.dataPageV2 = d
            default: try skip(f.type)
            }
        }
        guard sawType else { throw ParquetError.invalid("page header without type") }
        return h
    }
}

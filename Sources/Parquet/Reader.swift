// The Parquet reader: footer, schema and row-group metadata (for pruning by statistics), and whole
// columns or selected row groups decoded back into `ColumnData`.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A leaf column of the file's schema.
public struct LeafColumn: Sendable, Equatable {
    public var path: [String]
    public var element: SchemaElement
    public var physicalType: PhysicalType
    public var maxDefinitionLevel: Int
    public var maxRepetitionLevel: Int
    /// The top-level column as Kiln models it, or nil when its shape or type is not one Kiln reads.
    public var column: ColumnSchema?
    /// For lists: definition level at which the list itself is present.
    var listPresentLevel = 0
}

public enum StatisticValue: Sendable, Equatable {
    case int64(Int64)
    case int32(Int32)
    case boolean(Bool)
    case bytes([UInt8])
}

/// Decoded column-chunk statistics.
public struct ColumnStatistics: Sendable, Equatable {
    public var min: StatisticValue?
    public var max: StatisticValue?
    public var nullCount: Int64?
    public var isMinExact: Bool
    public var isMaxExact: Bool
}

public struct ParquetFileReader: Sendable {
    public let metadata: FileMetaData
    public let leaves: [LeafColumn]
    private let file: [UInt8]

    /// Parses the footer of a complete file held in memory.
    public init(bytes: [UInt8]) throws {
        guard bytes.count >= 12 else { throw ParquetError.truncated("file of \(bytes.count) bytes") }
        guard bytes[0..<4].elementsEqual("PAR1".utf8) else { throw ParquetError.invalid("no PAR1 header") }
        let tail = bytes.count - 4
        if bytes[tail..<bytes.count].elementsEqual("PARE".utf8) {
            throw ParquetError.unsupported("encrypted parquet files")
        }
        guard bytes[tail..<bytes.count].elementsEqual("PAR1".utf8) else { throw ParquetError.invalid("no PAR1 trailer") }
        let footerLength = Int(
            UInt32(bytes[tail - 4]) | UInt32(bytes[tail - 3]) << 8
                | UInt32(bytes[tail - 2]) << 16 | UInt32(bytes[tail - 1]) << 24)
        let footerStart = tail - 4 - footerLength
        guard footerStart >= 4 else { throw ParquetError.invalid("footer length \(footerLength)") }
        metadata = try bytes.withUnsafeBytes { raw in
            var r = ThriftReader(raw, from: footerStart, to: tail - 4)
            return try r.readFileMetaData()
        }
        leaves = try Self.leaves(of: metadata.schema)
        for rg in metadata.rowGroups where rg.columns.count != leaves.count {
            throw ParquetError.invalid("row group has \(rg.columns.count) column chunks for \(leaves.count) leaves")
        }
        file = bytes
    }

    public var numRows: Int { Int(metadata.numRows) }
    /// The size of the whole file: what decoding it may cost, to decide where to run that.
    public var byteCount: Int { file.count }
    public var rowGroupCount: Int { metadata.rowGroups.count }
    public var createdBy: String? { metadata.createdBy }
    public var keyValueMetadata: [KeyValue] { metadata.keyValueMetadata ?? [] }

    /// The readable top-level columns, in leaf order.
    public var schema: ParquetSchema { ParquetSchema(leaves.compactMap(\.column)) }

    public func leafIndex(named name: String) -> Int? { leaves.firstIndex { $0.path.first == name } }

    public func rowCount(rowGroup: Int) -> Int { Int(metadata.rowGroups[rowGroup].numRows) }

    public func columnMetaData(rowGroup: Int, column: Int) -> ColumnMetaData? {
        metadata.rowGroups[rowGroup].columns[column].metaData
    }

    /// The column chunk's Bloom filter, or nil when it has none (or one of a kind Kiln does not read).
    public func bloomFilter(rowGroup: Int, column: Int) throws -> SplitBlockBloomFilter? {
        guard let meta = metadata.rowGroups[rowGroup].columns[column].metaData, let offset = meta.bloomFilterOffset else { return nil }
        guard offset >= 0, offset < Int64(file.count) else {
            throw ParquetError.invalid("bloom filter offset \(offset) is outside the file")
        }
        return try file.withUnsafeBytes { raw in
            var r = ThriftReader(raw, from: Int(offset), to: raw.count)
            guard let numBytes = try r.readBloomFilterHeader() else { return nil }
            guard numBytes >= 0, r.position + numBytes <= raw.count else {
                throw ParquetError.truncated("bloom filter of \(numBytes) bytes at \(r.position)")
            }
            guard let filter = SplitBlockBloomFilter(bytes: UnsafeRawBufferPointer(rebasing: raw[r.position..<r.position + numBytes]))
            else {
                throw ParquetError.invalid("bloom filter of \(numBytes) bytes is not a whole number of 32-byte blocks")
            }
            return filter
        }
    }

    /// Min/max/null count of a column chunk, decoded by the column's type. Uses `min_value`/`max_value`;
    /// the deprecated `min`/`max` only for integers and booleans, where their order was always right.
    public func statistics(rowGroup: Int, column: Int) -> ColumnStatistics? {
        guard let s = metadata.rowGroups[rowGroup].columns[column].metaData?.statistics else { return nil }
        let leaf = leaves[column]
        var minRaw = s.minValue
        var maxRaw = s.maxValue
        var minExact = s.isMinValueExact ?? true
        var maxExact = s.isMaxValueExact ?? true
        if minRaw == nil && maxRaw == nil && leaf.physicalType != .byteArray && leaf.physicalType != .fixedLenByteArray {
            minRaw = s.legacyMin
            maxRaw = s.legacyMax
            minExact = true
            maxExact = true
        }
        func decode(_ b: [UInt8]?) -> StatisticValue? {
            guard let b else { return nil }
            switch leaf.physicalType {
            case .int64:
                guard b.count == 8 else { return nil }
                return .int64(b.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) })
            case .int32:
                guard b.count == 4 else { return nil }
                return .int32(b.withUnsafeBytes { Int32(littleEndian: $0.loadUnaligned(as: Int32.self)) })
            case .boolean:
                guard b.count == 1 else { return nil }
                return .boolean(b[0] != 0)
            case .byteArray, .fixedLenByteArray:
                return .bytes(b)
            default:
                return nil
            }
        }
        return ColumnStatistics(
            min: decode(minRaw), max: decode(maxRaw), nullCount: s.nullCount,
            isMinExact: minExact, isMaxExact: maxExact)
    }

    public func readColumn(named name: String, rowGroups: [Int]? = nil) throws -> ColumnData {
        guard let i = leafIndex(named: name) else { throw ParquetError.schemaMismatch("no column \(name)") }
        return try readColumn(i, rowGroups: rowGroups)
    }

    /// Decodes leaf column `column` from the given row groups (all by default), concatenated in order.
    public func readColumn(_ column: Int, rowGroups: [Int]? = nil) throws -> ColumnData {
        guard column >= 0, column < leaves.count else { throw ParquetError.schemaMismatch("no column \(column)") }
        let leaf = leaves[column]
        guard let kind = leaf.column?.kind else {
            throw ParquetError.unsupported("column \(leaf.path.joined(separator: ".")) of type \(leaf.physicalType) in this shape")
        }
        var decoder = ChunkDecoder(leaf: leaf)
        for rg in rowGroups ?? Array(0..<metadata.rowGroups.count) {
            guard rg >= 0, rg < metadata.rowGroups.count else { throw ParquetError.schemaMismatch("no row group \(rg)") }
            guard let meta = metadata.rowGroups[rg].columns[column].metaData else {
                throw ParquetError.unsupported("column chunk without inline metadata")
            }
            try file.withUnsafeBytes { raw in try decoder.decodeChunk(meta, file: raw) }
        }
        return try decoder.finish(kind: kind)
    }

    // MARK: - Schema

    private static func leaves(of elements: [SchemaElement]) throws -> [LeafColumn] {
        guard let root = elements.first else { throw ParquetError.invalid("empty schema") }
        var result: [LeafColumn] = []
        var index = 1
        for _ in 0..<Int(root.numChildren ?? 0) {
            index = try walkTopLevel(elements, index, into: &result)
        }
        guard index == elements.count else { throw ParquetError.invalid("schema tree does not cover its elements") }
        return result
    }

    /// Walks one top-level field and its subtree; recognises flat leaves and 3-level lists of integers.
    private static func walkTopLevel(
        _ elements: [SchemaElement], _ start: Int,
        into result: inout [LeafColumn]
    ) throws -> Int {
        guard start < elements.count else { throw ParquetError.invalid("schema ends early") }
        let top = elements[start]
        let optional = top.repetition == .optional
        if top.numChildren == nil || top.numChildren == 0 {
            guard let type = top.type else { throw ParquetError.invalid("leaf \(top.name) without type") }
            let repeated = top.repetition == .repeated
            var column: ColumnSchema?
            if !repeated, let kind = flatKind(top) { column = ColumnSchema(top.name, kind, optional: optional) }
            result.append(
                LeafColumn(
                    path: [top.name], element: top, physicalType: type,
                    maxDefinitionLevel: (optional || repeated) ? 1 : 0,
                    maxRepetitionLevel: repeated ? 1 : 0, column: column))
            return start + 1
        }
        // A group: record every leaf beneath it, and recognise LIST<int>.
        var leaves: [(path: [String], element: SchemaElement, def: Int, rep: Int)] = []
        func walk(_ i: Int, path: [String], def: Int, rep: Int) throws -> Int {
            guard i < elements.count else { throw ParquetError.invalid("schema ends early") }
            let e = elements[i]
            let d = def + (e.repetition == .optional || e.repetition == .repeated ? 1 : 0)
            let r = rep + (e.repetition == .repeated ? 1 : 0)
            if e.numChildren == nil || e.numChildren == 0 {
                leaves.append((path + [e.name], e, d, r))
                return i + 1
            }
            var next = i + 1
            for _ in 0..<Int(e.numChildren!) { next = try walk(next, path: path + [e.name], def: d, rep: r) }
            return next
        }
        let end = try walk(start, path: [], def: 0, rep: 0)
        var listKind: ColumnSchema.Kind?
        let isListAnnotated = top.logicalType == .list || top.convertedType == .list
        if isListAnnotated, top.numChildren == 1, leaves.count == 1, end - start == 3,
            elements[start + 1].repetition == .repeated, elements[start + 1].numChildren == 1
        {
            switch leaves[0].element.type {
            case .int64: listKind = .int64List
            case .int32: listKind = .int32List
            default: listKind = nil
            }
        }
        for l in leaves {
            guard let type = l.element.type else { throw ParquetError.invalid("leaf \(l.element.name) without type") }
            var leaf = LeafColumn(
                path: l.path, element: l.element, physicalType: type, maxDefinitionLevel: l.def,
                maxRepetitionLevel: l.rep,
                column: listKind.map { ColumnSchema(top.name, $0, optional: optional) })
            leaf.listPresentLevel = optional ? 1 : 0
            result.append(leaf)
        }
        return end
    }

    private static func flatKind(_ e: SchemaElement) -> ColumnSchema.Kind? {
        switch e.type {
        case .int64:
            if case .timestamp(.nanos, _) = e.logicalType { return .timestampNanos }
            return .int64
        case .int32: return .int32
        case .boolean: return .boolean
        case .byteArray:
            if e.logicalType == .string || e.convertedType == .utf8 || e.convertedType == .enumeration
                || e.convertedType == .json
            {
                return .string
            }
            return .bytes
        case .fixedLenByteArray:
            guard let n = e.typeLength, n > 0 else { return nil }
            return .fixedBytes(length: Int(n))
        default: return nil
        }
    }
}

/// Decodes the pages of column chunks, accumulating levels and values across chunks.
private struct ChunkDecoder {
    let leaf: LeafColumn
    var defLevels: [UInt8] = []
    var repLevels: [UInt8] = []
    var int64s: [Int64] = []
    var int32s: [Int32] = []
    var bools: [Bool] = []
    var bytes = ByteArrays()
    // The current chunk's dictionary.
    var dictInt64: [Int64] = []
    var dictInt32: [Int32] = []
    var dictBytes = ByteArrays()
    var hasDictionary = false
    var levelScratch: [UInt32] = []
    var indexScratch: [UInt32] = []

    init(leaf: LeafColumn) { self.leaf = leaf }

    var fixedLength: Int { Int(leaf.element.typeLength ?? 0) }

    mutating func decodeChunk(_ meta: ColumnMetaData, file: UnsafeRawBufferPointer) throws {
        var start = Int(meta.dataPageOffset)
        if let d = meta.dictionaryPageOffset, d > 0, d < start { start = Int(d) }
        let end = start + Int(meta.totalCompressedSize)
        guard start >= 4, end <= file.count, start <= end else {
            throw ParquetError.invalid("column chunk \(meta.pathInSchema) outside the file")
        }
        hasDictionary = false
        var levelsRead: Int64 = 0
        var pos = start
        while pos < end && levelsRead < meta.numValues {
            var tr = ThriftReader(file, from: pos, to: end)
            let header = try tr.readPageHeader()
            pos = tr.position
            let size = Int(header.compressedPageSize)
            guard size >= 0, size <= end - pos else { throw ParquetError.truncated("page of \(size) bytes") }
            guard header.uncompressedPageSize >= 0, header.uncompressedPageSize <= 1 << 30 else {
                throw ParquetError.invalid("page size \(header.uncompressedPageSize)")
            }
            if let n = header.dictionaryPage?.numValues, n < 0 { throw ParquetError.invalid("dictionary of \(n) values") }
            if let n = header.dataPage?.numValues ?? header.dataPageV2?.numValues,
                n < 0 || Int64(n) > meta.numValues - levelsRead
            {
                throw ParquetError.invalid("page value count \(n)")
            }
            let body = UnsafeRawBufferPointer(rebasing: file[pos..<(pos + size)])
            pos += size
            switch header.type {
            case .dictionaryPage:
                guard let d = header.dictionaryPage else { throw ParquetError.invalid("dictionary page without header") }
                let page = try PageDecompressor.decompress(meta.codec, body, uncompressedSize: Int(header.uncompressedPageSize))
                try page.withUnsafeBytes { try readDictionary($0, count: Int(d.numValues), encoding: d.encoding) }
            case .dataPage:
                guard let d = header.dataPage else { throw ParquetError.invalid("data page without header") }
                let page = try PageDecompressor.decompress(meta.codec, body, uncompressedSize: Int(header.uncompressedPageSize))
                try page.withUnsafeBytes { raw in
                    var c = ByteCursor(raw)
                    let n = Int(d.numValues)
                    if leaf.maxRepetitionLevel > 0 {
                        try Self.readLevels(
                            &c, count: n, max: leaf.maxRepetitionLevel, encoding: d.repetitionLevelEncoding,
                            lengthPrefixed: true, scratch: &levelScratch, into: &repLevels)
                    }
                    var nonNull = n
                    if leaf.maxDefinitionLevel > 0 {
                        nonNull = try Self.readLevels(
                            &c, count: n, max: leaf.maxDefinitionLevel,
                            encoding: d.definitionLevelEncoding, lengthPrefixed: true, scratch: &levelScratch, into: &defLevels)
                    }
                    try readValues(&c, count: nonNull, encoding: d.encoding)
                }
                levelsRead += Int64(d.numValues)
            case .dataPageV2:
                guard let d = header.dataPageV2 else { throw ParquetError.invalid("data page v2 without header") }
                let repLen = Int(d.repetitionLevelsByteLength)
                let defLen = Int(d.definitionLevelsByteLength)
                guard repLen >= 0, defLen >= 0, repLen + defLen <= body.count else {
                    throw ParquetError.invalid("v2 level lengths")
                }
                let n = Int(d.numValues)
                if leaf.maxRepetitionLevel > 0 {
                    var c = ByteCursor(body, from: 0, to: repLen)
                    try Self.readLevels(
                        &c, count: n, max: leaf.maxRepetitionLevel, encoding: .rle, lengthPrefixed: false, scratch: &levelScratch,
                        into: &repLevels)
                }
                var nonNull = n
                if leaf.maxDefinitionLevel > 0 {
                    var c = ByteCursor(body, from: repLen, to: repLen + defLen)
                    nonNull = try Self.readLevels(
                        &c, count: n, max: leaf.maxDefinitionLevel, encoding: .rle,
                        lengthPrefixed: false, scratch: &levelScratch, into: &defLevels)
                }
                let valuesRaw = UnsafeRawBufferPointer(rebasing: body[(repLen + defLen)...])
                let uncompressedValues = Int(header.uncompressedPageSize) - repLen - defLen
                let values =
                    d.isCompressed
                    ? try PageDecompressor.decompress(meta.codec, valuesRaw, uncompressedSize: uncompressedValues)
                    : Array(valuesRaw)
                try values.withUnsafeBytes { raw in
                    var c = ByteCursor(raw)
                    try readValues(&c, count: nonNull, encoding: d.encoding)
                }
                levelsRead += Int64(d.numValues)
            case .indexPage:
                continue
            }
        }
        guard levelsRead == meta.numValues else {
            throw ParquetError.invalid("column chunk \(meta.pathInSchema) holds \(levelsRead) of \(meta.numValues) values")
        }
    }

    /// Appends `count` levels; returns how many equal the maximum (values present).
    @discardableResult
    private static func readLevels(
        _ c: inout ByteCursor, count: Int, max: Int, encoding: Encoding,
        lengthPrefixed: Bool, scratch levelScratch: inout [UInt32],
        into levels: inout [UInt8]
    ) throws -> Int {
        guard encoding == .rle else { throw ParquetError.unsupported("level encoding \(encoding)") }
        var sub = c
        if lengthPrefixed {
            let length = Int(try c.uint32LE())
            guard length <= c.remaining else { throw ParquetError.truncated("levels of \(length) bytes") }
            sub = ByteCursor(c.base, from: c.position, to: c.position + length)
            c.position += length
        }
        if levelScratch.count < count { levelScratch = [UInt32](repeating: 0, count: count) }
        try levelScratch.withUnsafeMutableBufferPointer { p in
            try RLEHybrid.decode(&sub, width: bitWidth(of: UInt64(max)), count: count, into: p.baseAddress!)
        }
        var full = 0
        levels.reserve(appending: count)
        let m = UInt32(max)
        for i in 0..<count {
            let l = levelScratch[i]
            guard l <= m else { throw ParquetError.invalid("level \(l) above maximum \(max)") }
            if l == m { full += 1 }
            levels.append(UInt8(l))
        }
        return full
    }

    private mutating func readDictionary(_ raw: UnsafeRawBufferPointer, count: Int, encoding: Encoding) throws {
        guard encoding == .plain || encoding == .plainDictionary else {
            throw ParquetError.unsupported("dictionary page encoding \(encoding)")
        }
        var c = ByteCursor(raw)
        hasDictionary = true
        switch leaf.physicalType {
        case .int64:
            dictInt64 = []
            try Self.plainFixed(&c, count: count, into: &dictInt64)
        case .int32:
            dictInt32 = []
            try Self.plainFixed(&c, count: count, into: &dictInt32)
        case .byteArray, .fixedLenByteArray:
            dictBytes = ByteArrays()
            try plainBytes(&c, count: count, into: &dictBytes)
        default:
            throw ParquetError.unsupported("dictionary for \(leaf.physicalType)")
        }
    }

    private static func plainFixed<T: FixedWidthInteger>(_ c: inout ByteCursor, count: Int, into out: inout [T]) throws {
        guard count >= 0, count <= c.remaining else { throw ParquetError.truncated("\(count) plain values") }
        let size = count * MemoryLayout<T>.size
        guard size <= c.remaining else { throw ParquetError.truncated("\(count) plain values") }
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: count))
        out.withUnsafeMutableBytes { dst in
            dst.baseAddress!.advanced(by: start * MemoryLayout<T>.size)
                .copyMemory(from: c.base.baseAddress! + c.position, byteCount: size)
        }
        c.position += size
    }

    private func plainBytes(_ c: inout ByteCursor, count: Int, into out: inout ByteArrays) throws {
        guard count >= 0, count <= c.remaining else { throw ParquetError.truncated("\(count) byte arrays") }
        if leaf.physicalType == .fixedLenByteArray {
            let n = fixedLength
            guard count >= 0, count <= c.remaining, count * n <= c.remaining else { throw ParquetError.truncated("fixed-length values") }
            for _ in 0..<count {
                out.append(UnsafeRawBufferPointer(rebasing: c.base[c.position..<(c.position + n)]))
                c.position += n
            }
            return
        }
        for _ in 0..<count {
            let n = Int(try c.uint32LE())
            guard n <= c.remaining else { throw ParquetError.truncated("byte array of \(n) bytes") }
            out.append(UnsafeRawBufferPointer(rebasing: c.base[c.position..<(c.position + n)]))
            c.position += n
        }
    }

    private mutating func readValues(_ c: inout ByteCursor, count: Int, encoding: Encoding) throws {
        if count == 0 { return }
        guard count > 0 else { throw ParquetError.invalid("negative value count") }
        switch encoding {
        case .plain:
            switch leaf.physicalType {
            case .int64: try Self.plainFixed(&c, count: count, into: &int64s)
            case .int32: try Self.plainFixed(&c, count: count, into: &int32s)
            case .boolean:
                guard (count + 7) / 8 <= c.remaining else { throw ParquetError.truncated("booleans") }
                bools.reserve(appending: count)
                for i in 0..<count { bools.append(c.base[c.position + i / 8] & (1 << (i % 8)) != 0) }
                c.position += (count + 7) / 8
            case .byteArray, .fixedLenByteArray: try plainBytes(&c, count: count, into: &bytes)
            default: throw ParquetError.unsupported("physical type \(leaf.physicalType)")
            }
        case .rleDictionary, .plainDictionary:
            guard hasDictionary else { throw ParquetError.invalid("dictionary-encoded page without dictionary") }
            let width = Int(try c.byte())
            if indexScratch.count < count { indexScratch = [UInt32](repeating: 0, count: count) }
            try indexScratch.withUnsafeMutableBufferPointer { p in
                try RLEHybrid.decode(&c, width: width, count: count, into: p.baseAddress!)
            }
            try gather(count: count)
        case .deltaBinaryPacked:
            switch leaf.physicalType {
            case .int64:
                let int64sBefore = int64s.count
                try DeltaBinaryPacked.decode(&c, width32: false, expected: count, into: &int64s)
                // A stream holding more values than the page's non-null count would be invalid.
                guard int64s.count <= int64sBefore + count else { throw ParquetError.invalid("delta value count") }
            case .int32:
                var tmp: [Int64] = []
                try DeltaBinaryPacked.decode(&c, width32: true, expected: count, into: &tmp)
                int32s.append(contentsOf: tmp.prefix(count).map { Int32(truncatingIfNeeded: $0) })
            default: throw ParquetError.unsupported("DELTA_BINARY_PACKED for \(leaf.physicalType)")
            }
        case .deltaLengthByteArray:
            guard leaf.physicalType == .byteArray else { throw ParquetError.unsupported("DELTA_LENGTH_BYTE_ARRAY here") }
            var lengths: [Int64] = []
            try DeltaBinaryPacked.decode(&c, width32: true, expected: count, into: &lengths)
            for i in 0..<count {
                let n = Int(lengths[i])
                guard n >= 0, n <= c.remaining else { throw ParquetError.truncated("delta-length value") }
                bytes.append(UnsafeRawBufferPointer(rebasing: c.base[c.position..<(c.position + n)]))
                c.position += n
            }
        case .deltaByteArray:
            var prefixes: [Int64] = []
            try DeltaBinaryPacked.decode(&c, width32: true, expected: count, into: &prefixes)
            var suffixLengths: [Int64] = []
            try DeltaBinaryPacked.decode(&c, width32: true, expected: count, into: &suffixLengths)
            var previous: [UInt8] = []
            for i in 0..<count {
                let p = Int(prefixes[i])
                let n = Int(suffixLengths[i])
                guard p >= 0, p <= previous.count, n >= 0, n <= c.remaining else {
                    throw ParquetError.invalid("delta byte array value \(i)")
                }
                var value = Array(previous[0..<p])
                value.append(contentsOf: UnsafeRawBufferPointer(rebasing: c.base[c.position..<(c.position + n)]))
                c.position += n
                bytes.append(value)
                previous = value
            }
        case .rle:
            guard leaf.physicalType == .boolean else { throw ParquetError.unsupported("RLE values for \(leaf.physicalType)") }
            let length = Int(try c.uint32LE())
            guard length <= c.remaining else { throw ParquetError.truncated("RLE booleans") }
            var sub = ByteCursor(c.base, from: c.position, to: c.position + length)
            if indexScratch.count < count { indexScratch = [UInt32](repeating: 0, count: count) }
            try indexScratch.withUnsafeMutableBufferPointer { p in
                try RLEHybrid.decode(&sub, width: 1, count: count, into: p.baseAddress!)
            }
            for i in 0..<count { bools.append(indexScratch[i] != 0) }
            c.position += length
        default:
            throw ParquetError.unsupported("encoding \(encoding)")
        }
    }

    private mutating func gather(count: Int) throws {
        switch leaf.physicalType {
        case .int64: try Self.gather(indexScratch, count: count, from: dictInt64, into: &int64s)
        case .int32: try Self.gather(indexScratch, count: count, from: dictInt32, into: &int32s)
        case .byteArray, .fixedLenByteArray:
            let n = UInt32(dictBytes.count)
            try dictBytes.bytes.withUnsafeBytes { raw in
                for i in 0..<count {
                    let k = indexScratch[i]
                    guard k < n else { throw ParquetError.invalid("dictionary index \(k) of \(n)") }
                    let lo = dictBytes.offsets[Int(k)]
                    let hi = dictBytes.offsets[Int(k) + 1]
                    bytes.append(UnsafeRawBufferPointer(rebasing: raw[lo..<hi]))
                }
            }
        default:
            throw ParquetError.unsupported("dictionary for \(leaf.physicalType)")
        }
    }

    /// Appends `dictionary[indices[i]]` for the first `count` indices. Written through buffer pointers: an
    /// `append` per value checked the array's uniqueness and capacity each time, a tenth of a query's decode.
    private static func gather<T: FixedWidthInteger>(_ indices: [UInt32], count: Int, from dictionary: [T], into out: inout [T]) throws {
        let start = out.count
        out.reserve(appending: count)
        out.append(contentsOf: repeatElement(0, count: count))
        try indices.withUnsafeBufferPointer { idx in
            try dictionary.withUnsafeBufferPointer { dict in
                try out.withUnsafeMutableBufferPointer { dst in
                    let n = UInt32(dict.count)
                    for i in 0..<count {
                        let k = idx[i]
                        guard k < n else { throw ParquetError.invalid("dictionary index \(k) of \(n)") }
                        dst[start &+ i] = dict[Int(k)]
                    }
                }
            }
        }
    }

    /// Builds the column from everything decoded.
    func finish(kind: ColumnSchema.Kind) throws -> ColumnData {
        if kind.isList {
            return try finishList(kind: kind)
        }
        let values: ColumnValues
        switch kind {
        case .int64, .timestampNanos: values = .int64(int64s)
        case .int32: values = .int32(int32s)
        case .boolean: values = .boolean(bools)
        case .string, .bytes, .fixedBytes: values = .byteArrays(bytes)
        case .int64List, .int32List: fatalError("handled above")
        }
        var validity: [Bool]?
        if leaf.maxDefinitionLevel > 0 {
            let m = UInt8(leaf.maxDefinitionLevel)
            validity = defLevels.map { $0 == m }
        }
        guard values.count == (validity?.lazy.filter { $0 }.count ?? values.count) else {
            throw ParquetError.invalid("column \(leaf.path) has \(values.count) values for its levels")
        }
        return ColumnData(values: values, validity: validity)
    }

    private func finishList(kind: ColumnSchema.Kind) throws -> ColumnData {
        let maxDef = UInt8(leaf.maxDefinitionLevel)
        let present = UInt8(leaf.listPresentLevel)
        let hasEntry = present + 1
        guard repLevels.count == defLevels.count else { throw ParquetError.invalid("level counts differ") }
        var offsets: [Int] = [0]
        var validity: [Bool] = []
        var elements = 0
        for i in 0..<defLevels.count {
            let d = defLevels[i]
            if repLevels[i] == 0 {
                if i > 0 && validity.last == true { offsets.append(elements) }
                validity.append(d >= present)
            }
            if d >= hasEntry {
                guard d == maxDef else { throw ParquetError.unsupported("null list elements in \(leaf.path)") }
                elements += 1
            }
        }
        if validity.last == true { offsets.append(elements) }
        let values: ColumnValues
        switch kind {
        case .int64List:
            guard int64s.count == elements else { throw ParquetError.invalid("list element count") }
            values = .int64Lists(offsets: offsets, values: int64s)
        default:
            guard int32s.count == elements else { throw ParquetError.invalid("list element count") }
            values = .int32Lists(offsets: offsets, values: int32s)
        }
        return ColumnData(values: values, validity: validity)
    }
}

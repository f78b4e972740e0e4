// The Parquet writer: row groups of column chunks, each a dictionary page (optional) and V1 data pages,
// then the Thrift footer. The whole file is built in memory, since blocks are uploaded as whole objects.
#if _endian(big)
    #error("Parquet plain encoding here assumes a little-endian host")
#endif

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

public struct ParquetWriterOptions: Sendable {
    /// Codec for columns that do not choose their own.
    public var codec: CompressionCodec = .zstd
    /// zstd level (1 is the fast setting pyarrow also defaults to).
    public var zstdLevel: Int32 = 1
    public var maxRowsPerRowGroup: Int = 1 << 20
    /// Upper bound on a row group's estimated uncompressed size; larger batches are split.
    public var maxRowGroupBytes: Int = 128 << 20
    /// Target uncompressed size of one data page.
    public var dataPageSize: Int = 1 << 20
    /// Dictionaries whose PLAIN size would exceed this fall back to PLAIN (or DELTA for automatic ints).
    public var dictionaryPageSizeLimit: Int = 1 << 20
    /// Byte-array min/max statistics longer than this are truncated (and marked inexact).
    public var statisticsTruncateLength: Int = 64
    /// Parsed by readers as `<app> version <x.y.z> (build <b>)`.
    public var createdBy: String = "kiln version 0.1.0 (build kiln)"
    public var keyValueMetadata: [KeyValue] = []

    public init() {}
}

/// Non-null leaf values of a column chunk (list elements for list columns).
private enum LeafValues {
    case int64([Int64])
    case int32([Int32])
    case boolean([Bool])
    case bytes(ByteArrays)

    var count: Int {
        switch self {
        case .int64(let v): v.count
        case .int32(let v): v.count
        case .boolean(let v): v.count
        case .bytes(let v): v.count
        }
    }
}

private enum ValuePlan {
    case plain
    case delta
    case dictionary(indices: [UInt32], page: [UInt8], count: Int, bitWidth: Int)

    var encoding: Encoding {
        switch self {
        case .plain: .plain
        case .delta: .deltaBinaryPacked
        case .dictionary: .rleDictionary
        }
    }
}

public final class ParquetWriter {
    public let schema: ParquetSchema
    public let options: ParquetWriterOptions
    private var out: [UInt8] = Array("PAR1".utf8)
    private var rowGroups: [RowGroup] = []
    private var totalRows: Int64 = 0
    private var compressors: [CompressionCodec: PageCompressor] = [:]
    private var finished = false
    private var pageBody: [UInt8] = []
    private var compressed: [UInt8] = []

    public init(schema: ParquetSchema, options: ParquetWriterOptions = ParquetWriterOptions()) throws {
        var seen = Set<String>()
        for c in schema.columns {
            guard !c.name.isEmpty, seen.insert(c.name).inserted else {
                throw ParquetError.schemaMismatch("column names must be unique and non-empty: '\(c.name)'")
            }
            if case .fixedBytes(let n) = c.kind, n <= 0 {
                throw ParquetError.schemaMismatch("fixed length of \(c.name) must be positive")
            }
            if c.encoding == .deltaBinaryPacked && ![.int64, .int32, .timestampNanos, .int64List, .int32List].contains(c.kind) {
                throw ParquetError.schemaMismatch("DELTA_BINARY_PACKED needs an integer column: \(c.name)")
            }
        }
        self.schema = schema
        self.options = options
        for c in schema.columns { _ = try compressor(for: c.codec ?? options.codec) }
    }

    /// Bytes produced so far (the file grows as row groups are written).
    public var bytesWritten: Int { out.count }

    /// Writes one batch of rows (one `ColumnData` per schema column, equal row counts). Batches larger than
    /// `maxRowsPerRowGroup` or `maxRowGroupBytes` become several row groups.
    public func writeRowGroup(_ columns: [ColumnData]) throws {
        guard !finished else { throw ParquetError.invalid("writer already finished") }
        guard columns.count == schema.columns.count else {
            throw ParquetError.schemaMismatch("\(columns.count) columns given, schema has \(schema.columns.count)")
        }
        let rows = columns.first?.rowCount ?? 0
        var checked: [ColumnData] = []
        checked.reserveCapacity(columns.count)
        var estimatedBytes = 0
        for (col, data) in zip(schema.columns, columns) {
            checked.append(try Self.validate(data, for: col, rows: rows))
            estimatedBytes += Self.estimatedPlainSize(data)
        }
        guard rows > 0 else { return }
        let byRows = (rows + options.maxRowsPerRowGroup - 1) / max(1, options.maxRowsPerRowGroup)
        let byBytes = (estimatedBytes + options.maxRowGroupBytes - 1) / max(1, options.maxRowGroupBytes)
        let groups = min(rows, max(1, byRows, byBytes))
        if groups == 1 {
            try writeGroup(checked, rows: rows)
        } else {
            let per = (rows + groups - 1) / groups
            var start = 0
            while start < rows {
                let end = min(rows, start + per)
                try writeGroup(checked.map { $0.slice(rows: start..<end) }, rows: end - start)
                start = end
            }
        }
    }

    /// Writes the footer and returns the complete file. The writer accepts nothing afterwards.
    public func finish() throws -> [UInt8] {
        guard !finished else { throw ParquetError.invalid("writer already finished") }
        finished = true
        var elements = [SchemaElement(name: "schema", numChildren: Int32(schema.columns.count))]
        for c in schema.columns { elements.append(contentsOf: c.schemaElements) }
        let meta = FileMetaData(
            version: 2, schema: elements, numRows: totalRows, rowGroups: rowGroups,
            keyValueMetadata: options.keyValueMetadata.isEmpty ? nil : options.keyValueMetadata,
            createdBy: options.createdBy,
            columnOrders: Array(repeating: true, count: schema.columns.count))
        var w = ThriftWriter(capacity: 1024 + rowGroups.count * schema.columns.count * 96)
        w.write(meta)
        out.append(contentsOf: w.bytes)
        out.appendLE(UInt32(w.bytes.count))
        out.append(contentsOf: Array("PAR1".utf8))
        let file = out
        out = []
        return file
    }

    // MARK: - Validation

    private static func validate(_ data: ColumnData, for col: ColumnSchema, rows: Int) throws -> ColumnData {
        guard data.rowCount == rows else {
            throw ParquetError.schemaMismatch("column \(col.name) has \(data.rowCount) rows, expected \(rows)")
        }
        let ok: Bool
        switch (col.kind, data.values) {
        case (.int64, .int64), (.timestampNanos, .int64), (.int32, .int32), (.boolean, .boolean),
            (.string, .byteArrays), (.bytes, .byteArrays), (.int64List, .int64Lists), (.int32List, .int32Lists):
            ok = true
        case (.fixedBytes(let n), .byteArrays(let b)):
            for i in 0..<b.count where b.offsets[i + 1] - b.offsets[i] != n {
                throw ParquetError.schemaMismatch("column \(col.name): value \(i) is not \(n) bytes long")
            }
            ok = true
        default:
            ok = false
        }
        guard ok else { throw ParquetError.schemaMismatch("column \(col.name) of kind \(col.kind) given \(data.values)") }
        var d = data
        if let v = data.validity, !col.optional {
            guard !v.contains(false) else { throw ParquetError.schemaMismatch("required column \(col.name) has nulls") }
            d.validity = nil
        }
        return d
    }

    private static func estimatedPlainSize(_ data: ColumnData) -> Int {
        let levels = data.validity == nil ? 0 : data.rowCount / 8
        switch data.values {
        case .int64(let v): return levels + v.count * 8
        case .int32(let v): return levels + v.count * 4
        case .boolean(let v): return levels + v.count / 8
        case .byteArrays(let b): return levels + b.bytes.count + 4 * b.count
        case .int64Lists(let o, let v): return levels + o.count / 4 + v.count * 8
        case .int32Lists(let o, let v): return levels + o.count / 4 + v.count * 4
        }
    }

    private func compressor(for codec: CompressionCodec) throws -> PageCompressor {
        if let c = compressors[codec] { return c }
        let c = try PageCompressor(codec: codec, zstdLevel: options.zstdLevel)
        compressors[codec] = c
        return c
    }

    // MARK: - Row groups and column chunks

    private func writeGroup(_ columns: [ColumnData], rows: Int) throws {
        let start = out.count
        var chunks: [ColumnChunk] = []
        var uncompressed: Int64 = 0
        for (col, data) in zip(schema.columns, columns) {
            let chunk = try writeChunk(col, data)
            uncompressed += chunk.metaData!.totalUncompressedSize
            chunks.append(chunk)
        }
        rowGroups.append(
            RowGroup(
                columns: chunks, totalByteSize: uncompressed, numRows: Int64(rows),
                fileOffset: Int64(start), totalCompressedSize: Int64(out.count - start),
                ordinal: Int16(truncatingIfNeeded: rowGroups.count)))
        totalRows += Int64(rows)
    }

    private func writeChunk(_ col: ColumnSchema, _ data: ColumnData) throws -> ColumnChunk {
        let codec = col.codec ?? options.codec
        let compressor = try compressor(for: codec)
        let rows = data.rowCount
        let maxDef = col.maxDefinitionLevel
        let maxRep = col.maxRepetitionLevel

        let leaf: LeafValues
        var listOffsets: [Int] = []
        switch data.values {
        case .int64(let v): leaf = .int64(v)
        case .int32(let v): leaf = .int32(v)
        case .boolean(let v): leaf = .boolean(v)
        case .byteArrays(let b): leaf = .bytes(b)
        case .int64Lists(let o, let v):
            leaf = .int64(v)
            listOffsets = o
        case .int32Lists(let o, let v):
            leaf = .int32(v)
            listOffsets = o
        }

        // Levels. Flat required columns have none; flat optional ones one per row; lists one per element,
        // or one per null or empty list.
        var def: [UInt32] = []
        var rep: [UInt32] = []
        var rowLevelStart: [Int] = []
        if col.kind.isList {
            def.reserveCapacity(max(rows, leaf.count))
            rep.reserveCapacity(max(rows, leaf.count))
            rowLevelStart.reserveCapacity(rows + 1)
            var present = 0
            for r in 0..<rows {
                rowLevelStart.append(def.count)
                if let v = data.validity, !v[r] {
                    def.append(0)
                    rep.append(0)
                    continue
                }
                let lo = listOffsets[present]
                let hi = listOffsets[present + 1]
                present += 1
                if lo == hi {
                    def.append(UInt32(maxDef - 1))
                    rep.append(0)
                } else {
                    def.append(UInt32(maxDef))
                    rep.append(0)
                    for _ in (lo + 1)..<hi {
                        def.append(UInt32(maxDef))
                        rep.append(1)
                    }
                }
            }
            rowLevelStart.append(def.count)
        } else if col.optional {
            if let v = data.validity {
                def = v.map { $0 ? 1 : 0 }
            } else {
                def = [UInt32](repeating: 1, count: rows)
            }
        }
        let levelCount = col.kind.isList ? def.count : rows
        let nullCount = levelCount - leaf.count

        let plan = try choosePlan(col, leaf)
        var stats = statistics(leaf, plan: plan, fixedLength: { if case .fixedBytes = col.kind { true } else { false } }())
        stats.nullCount = Int64(nullCount)

        let chunkStart = out.count
        var dictionaryOffset: Int64?
        var uncompressedTotal = 0
        var encodings: [Encoding] = []

        if case .dictionary(_, let page, let count, _) = plan {
            dictionaryOffset = Int64(out.count)
            uncompressedTotal += try writePage(page, compressor: compressor) { size, csize in
                PageHeader(
                    type: .dictionaryPage, uncompressedPageSize: size, compressedPageSize: csize,
                    dictionaryPage: DictionaryPageHeader(numValues: Int32(count), encoding: .plain))
            }
            encodings.append(.plain)
        }
        encodings.append(.rle)
        encodings.append(plan.encoding)
        if case .plain = plan { encodings = [.plain, .rle] }

        // Pages cut by estimated size.
        let bytesPerValue: Double
        switch (plan, leaf) {
        case (.dictionary(_, _, _, let w), _): bytesPerValue = Double(max(w, 1)) / 8
        case (_, .int64): bytesPerValue = 8
        case (_, .int32): bytesPerValue = 4
        case (_, .boolean): bytesPerValue = 0.125
        case (_, .bytes(let b)): bytesPerValue = 4 + Double(b.bytes.count) / Double(max(1, b.count))
        }
        let perRow = (Double(leaf.count) * bytesPerValue + Double(levelCount) * 0.25) / Double(max(1, rows))
        let pageRows = max(1, min(rows, Int(Double(options.dataPageSize) / max(perRow, 0.01))))

        let dataPageOffset = Int64(out.count)
        var row = 0
        var leafIndex = 0
        let defWidth = bitWidth(of: UInt64(maxDef))
        let repWidth = bitWidth(of: UInt64(maxRep))
        while row < rows {
            let rowEnd = min(rows, row + pageRows)
            let l0 = col.kind.isList ? rowLevelStart[row] : row
            let l1 = col.kind.isList ? rowLevelStart[rowEnd] : rowEnd
            var valuesInPage = l1 - l0
            if maxDef > 0 {
                valuesInPage = 0
                for k in l0..<l1 where def[k] == UInt32(maxDef) { valuesInPage += 1 }
            }
            let v0 = leafIndex
            let v1 = leafIndex + valuesInPage
            leafIndex = v1

            pageBody.removeAll(keepingCapacity: true)
            if maxRep > 0 { Self.appendLevels(rep, l0..<l1, width: repWidth, into: &pageBody) }
            if maxDef > 0 { Self.appendLevels(def, l0..<l1, width: defWidth, into: &pageBody) }
            try Self.appendValues(leaf, v0..<v1, plan: plan, kind: col.kind, into: &pageBody)

            let numValues = Int32(l1 - l0)
            let enc = plan.encoding
            uncompressedTotal += try writePage(pageBody, compressor: compressor) { size, csize in
                PageHeader(
                    type: .dataPage, uncompressedPageSize: size, compressedPageSize: csize,
                    dataPage: DataPageHeader(
                        numValues: numValues, encoding: enc,
                        definitionLevelEncoding: .rle, repetitionLevelEncoding: .rle))
            }
            row = rowEnd
        }

        var meta = ColumnMetaData(
            type: col.kind.physicalType, encodings: encodings, pathInSchema: col.path,
            codec: codec, numValues: Int64(levelCount),
            totalUncompressedSize: Int64(uncompressedTotal),
            totalCompressedSize: Int64(out.count - chunkStart),
            dataPageOffset: dataPageOffset, dictionaryPageOffset: dictionaryOffset,
            statistics: stats)
        // The Bloom filter right after its chunk's pages (the format allows it anywhere before the footer).
        if col.bloomFilter, case .int64(let values) = leaf {
            let distinct = Set(values)
            var filter = SplitBlockBloomFilter(distinctValues: distinct.count)
            for v in distinct { filter.insert(hash: SplitBlockBloomFilter.hash(v)) }
            var header = ThriftWriter()
            header.writeBloomFilterHeader(numBytes: Int32(filter.byteCount))
            meta.bloomFilterOffset = Int64(out.count)
            meta.bloomFilterLength = Int32(header.bytes.count + filter.byteCount)
            out.append(contentsOf: header.bytes)
            out.append(contentsOf: filter.bytes)
        }
        return ColumnChunk(filePath: nil, fileOffset: 0, metaData: meta)
    }

    /// Compresses `body`, appends header and body; returns the uncompressed size including the header.
    private func writePage(
        _ body: [UInt8], compressor: PageCompressor,
        header: (Int32, Int32) -> PageHeader
    ) throws -> Int {
        compressed.removeAll(keepingCapacity: true)
        try compressor.compress(body, into: &compressed)
        guard body.count <= Int32.max, compressed.count <= Int32.max else {
            throw ParquetError.unsupported("page over 2 GiB")
        }
        var w = ThriftWriter(capacity: 64)
        w.write(header(Int32(body.count), Int32(compressed.count)))
        out.append(contentsOf: w.bytes)
        out.append(contentsOf: compressed)
        return w.bytes.count + body.count
    }

    private static func appendLevels(_ levels: [UInt32], _ range: Range<Int>, width: Int, into out: inout [UInt8]) {
        let lengthAt = out.count
        out.appendLE(UInt32(0))
        levels.withUnsafeBufferPointer { p in
            RLEHybrid.encode(p.baseAddress! + range.lowerBound, count: range.count, width: width, into: &out)
        }
        let length = UInt32(out.count - lengthAt - 4)
        withUnsafeBytes(of: length.littleEndian) { b in
            for k in 0..<4 { out[lengthAt + k] = b[k] }
        }
    }

    // MARK: - Encoding choice

    private func choosePlan(_ col: ColumnSchema, _ leaf: LeafValues) throws -> ValuePlan {
        let isInteger: Bool
        switch leaf {
        case .int64, .int32: isInteger = true
        default: isInteger = false
        }
        switch col.encoding {
        case .plain: return .plain
        case .deltaBinaryPacked:
            guard isInteger else { throw ParquetError.schemaMismatch("DELTA_BINARY_PACKED on \(col.name)") }
            return .delta
        case .dictionary:
            return buildDictionary(leaf, fixed: Self.isFixed(col), requireWorthwhile: false) ?? .plain
        case .automatic:
            if case .boolean = leaf { return .plain }
            if isInteger && Self.isNonDecreasing(leaf) && leaf.count > 1 { return .delta }
            if let d = buildDictionary(leaf, fixed: Self.isFixed(col), requireWorthwhile: true) { return d }
            return isInteger ? .delta : .plain
        }
    }

    private static func isFixed(_ col: ColumnSchema) -> Bool {
        if case .fixedBytes = col.kind { return true }
        return false
    }

    private static func isNonDecreasing(_ leaf: LeafValues) -> Bool {
        switch leaf {
        case .int64(let v):
            return v.withUnsafeBufferPointer { p in
                var i = 1
                while i < p.count {
                    if p[i] < p[i - 1] { return false }
                    i += 1
                }
                return true
            }
        case .int32(let v):
            return v.withUnsafeBufferPointer { p in
                var i = 1
                while i < p.count {
                    if p[i] < p[i - 1] { return false }
                    i += 1
                }
                return true
            }
        default: return false
        }
    }

    /// A dictionary plan, or nil when the dictionary would be too large (or, if `requireWorthwhile`, hold
    /// more than half as many entries as values, when it saves little).
    private func buildDictionary(_ leaf: LeafValues, fixed: Bool, requireWorthwhile: Bool) -> ValuePlan? {
        let limit = options.dictionaryPageSizeLimit
        let n = leaf.count
        func worthwhile(_ entries: Int) -> Bool { !requireWorthwhile || n < 16 || entries * 2 <= n }
        switch leaf {
        case .int64(let v):
            guard let (keys, indices) = v.withUnsafeBufferPointer({ IntegerDictionary.build($0, maxEntries: limit / 8) }),
                worthwhile(keys.count)
            else { return nil }
            var page: [UInt8] = []
            keys.withUnsafeBytes { page.append(contentsOf: $0) }
            return .dictionary(
                indices: indices, page: page, count: keys.count,
                bitWidth: bitWidth(of: UInt64(max(keys.count - 1, 0))))
        case .int32(let v):
            let wide = v.map { Int64($0) }
            guard let (keys, indices) = wide.withUnsafeBufferPointer({ IntegerDictionary.build($0, maxEntries: limit / 4) }),
                worthwhile(keys.count)
            else { return nil }
            var page: [UInt8] = []
            page.reserveCapacity(keys.count * 4)
            for k in keys { page.appendLE(UInt32(truncatingIfNeeded: k)) }
            return .dictionary(
                indices: indices, page: page, count: keys.count,
                bitWidth: bitWidth(of: UInt64(max(keys.count - 1, 0))))
        case .bytes(let b):
            guard let (entries, indices) = BytesDictionary.build(b, fixedLength: fixed, maxPlainBytes: limit),
                worthwhile(entries.count)
            else { return nil }
            var page: [UInt8] = []
            for e in entries {
                let s = b[e]
                if !fixed { page.appendLE(UInt32(s.count)) }
                page.append(contentsOf: s)
            }
            return .dictionary(
                indices: indices, page: page, count: entries.count,
                bitWidth: bitWidth(of: UInt64(max(entries.count - 1, 0))))
        case .boolean:
            return nil
        }
    }

    // MARK: - Values

    private static func appendValues(
        _ leaf: LeafValues, _ range: Range<Int>, plan: ValuePlan, kind: ColumnSchema.Kind,
        into out: inout [UInt8]
    ) throws {
        switch plan {
        case .dictionary(let indices, _, _, let width):
            out.append(UInt8(width))
            indices.withUnsafeBufferPointer { p in
                RLEHybrid.encode(p.baseAddress! + range.lowerBound, count: range.count, width: width, into: &out)
            }
        case .delta:
            switch leaf {
            case .int64(let v):
                v.withUnsafeBufferPointer { p in
                    DeltaBinaryPacked.encode(UnsafeBufferPointer(rebasing: p[range]), width32: false, into: &out)
                }
            case .int32(let v):
                let wide = v[range].map { Int64($0) }
                wide.withUnsafeBufferPointer { DeltaBinaryPacked.encode($0, width32: true, into: &out) }
            default:
                throw ParquetError.schemaMismatch("DELTA_BINARY_PACKED on non-integer values")
            }
        case .plain:
            switch leaf {
            case .int64(let v):
                v.withUnsafeBytes {
                    out.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[(range.lowerBound * 8)..<(range.upperBound * 8)]))
                }
            case .int32(let v):
                v.withUnsafeBytes {
                    out.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[(range.lowerBound * 4)..<(range.upperBound * 4)]))
                }
            case .boolean(let v):
                var byte: UInt8 = 0
                var bit = 0
                for i in range {
                    if v[i] { byte |= 1 << bit }
                    bit += 1
                    if bit == 8 {
                        out.append(byte)
                        byte = 0
                        bit = 0
                    }
                }
                if bit > 0 { out.append(byte) }
            case .bytes(let b):
                let fixed: Bool = { if case .fixedBytes = kind { true } else { false } }()
                let lo = b.offsets[range.lowerBound]
                let hi = b.offsets[range.upperBound]
                out.reserveCapacity(out.count + hi - lo + (fixed ? 0 : 4 * range.count))
                b.bytes.withUnsafeBytes { raw in
                    b.offsets.withUnsafeBufferPointer { offs in
                        for i in range {
                            if !fixed { out.appendLE(UInt32(offs[i + 1] - offs[i])) }
                            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[offs[i]..<offs[i + 1]]))
                        }
                    }
                }
            }
        }
    }

    // MARK: - Statistics

    private func statistics(_ leaf: LeafValues, plan: ValuePlan, fixedLength: Bool) -> Statistics {
        var s = Statistics()
        guard leaf.count > 0 else { return s }
        switch leaf {
        case .int64(let v):
            var lo = Int64.max
            var hi = Int64.min
            if case .dictionary(_, let page, let count, _) = plan {
                page.withUnsafeBytes { p in
                    for i in 0..<count {
                        let x = Int64(littleEndian: p.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))
                        lo = min(lo, x)
                        hi = max(hi, x)
                    }
                }
            } else {
                v.withUnsafeBufferPointer { p in
                    for x in p {
                        lo = min(lo, x)
                        hi = max(hi, x)
                    }
                }
            }
            s.minValue = withUnsafeBytes(of: lo.littleEndian) { Array($0) }
            s.maxValue = withUnsafeBytes(of: hi.littleEndian) { Array($0) }
        case .int32(let v):
            var lo = Int32.max
            var hi = Int32.min
            v.withUnsafeBufferPointer { p in
                for x in p {
                    lo = min(lo, x)
                    hi = max(hi, x)
                }
            }
            s.minValue = withUnsafeBytes(of: lo.littleEndian) { Array($0) }
            s.maxValue = withUnsafeBytes(of: hi.littleEndian) { Array($0) }
        case .boolean(let v):
            s.minValue = [v.contains(false) ? 0 : 1]
            s.maxValue = [v.contains(true) ? 1 : 0]
        case .bytes(let b):
            // Candidates: the dictionary entries when there is one, else every value.
            var candidates: [Int] = []
            if case .dictionary(let indices, _, let count, _) = plan {
                var firstSeen = [Int](repeating: -1, count: count)
                for (i, d) in indices.enumerated() where firstSeen[Int(d)] < 0 { firstSeen[Int(d)] = i }
                candidates = firstSeen
            }
            var lo = 0
            var hi = 0
            b.bytes.withUnsafeBytes { raw in
                func cmp(_ x: Int, _ y: Int) -> Int {
                    let a = UnsafeRawBufferPointer(rebasing: raw[b.offsets[x]..<b.offsets[x + 1]])
                    let c = UnsafeRawBufferPointer(rebasing: raw[b.offsets[y]..<b.offsets[y + 1]])
                    let n = min(a.count, c.count)
                    if n > 0 {
                        let r = memcmp(a.baseAddress!, c.baseAddress!, n)
                        if r != 0 { return Int(r) }
                    }
                    return a.count - c.count
                }
                if candidates.isEmpty {
                    for i in 1..<b.count {
                        if cmp(i, lo) < 0 { lo = i }
                        if cmp(i, hi) > 0 { hi = i }
                    }
                } else {
                    lo = candidates[0]
                    hi = candidates[0]
                    for i in candidates.dropFirst() {
                        if cmp(i, lo) < 0 { lo = i }
                        if cmp(i, hi) > 0 { hi = i }
                    }
                }
            }
            let limit = options.statisticsTruncateLength
            let minBytes = Array(b[lo])
            let maxBytes = Array(b[hi])
            if minBytes.count > limit && !fixedLength {
                s.minValue = Array(minBytes.prefix(limit))
                s.isMinValueExact = false
            } else {
                s.minValue = minBytes
                s.isMinValueExact = true
            }
            if maxBytes.count > limit && !fixedLength {
                // The shortest value above every value with this prefix: bump the last byte that can be.
                var p = Array(maxBytes.prefix(limit))
                while let last = p.last, last == 0xFF { p.removeLast() }
                if !p.isEmpty {
                    p[p.count - 1] += 1
                    s.maxValue = p
                    s.isMaxValueExact = false
                }
            } else {
                s.maxValue = maxBytes
                s.isMaxValueExact = true
            }
        }
        return s
    }
}

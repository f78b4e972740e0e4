import Foundation
import Testing

@testable import Parquet

/// Sample data for a column kind: repetitive enough for dictionaries, with extremes that stress
/// wrapping deltas and signed ordering.
func sampleColumn(_ kind: ColumnSchema.Kind, rows: Int, optional: Bool, seed: UInt64) -> ColumnData {
    var r = SeededRandom(seed)
    let int64Pool: [Int64] = [Int64.min, Int64.max, -1, 0, 1, 42, -7_000_000_000] + (0..<40).map { _ in Int64(bitPattern: r.next()) }
    let int32Pool: [Int32] = [Int32.min, Int32.max, -1, 0, 1, 42] + (0..<40).map { _ in Int32(truncatingIfNeeded: r.next()) }
    let stringPool =
        ["", "a", "b", "ab", "über", "日本語", String(repeating: "x", count: 100), "\u{0}nul"]
        + (0..<30).map { "svc-\($0)" }
    func isNull() -> Bool { optional && r.chance(0.2) }
    switch kind {
    case .int64:
        return .int64((0..<rows).map { _ in isNull() ? nil : int64Pool[r.int(0..<int64Pool.count)] })
    case .timestampNanos:
        var t: Int64 = 1_700_000_000_000_000_000
        return .int64(
            (0..<rows).map { _ in
                t += Int64(r.int(0..<10_000_000))
                return isNull() ? nil : t
            })
    case .int32:
        return .int32((0..<rows).map { _ in isNull() ? nil : int32Pool[r.int(0..<int32Pool.count)] })
    case .boolean:
        return .boolean((0..<rows).map { _ in isNull() ? nil : r.chance(0.5) })
    case .string:
        return .strings((0..<rows).map { _ in isNull() ? nil : stringPool[r.int(0..<stringPool.count)] })
    case .bytes:
        return .bytes(
            (0..<rows).map { _ -> [UInt8]? in
                isNull() ? nil : (0..<r.int(0..<12)).map { _ in UInt8(truncatingIfNeeded: r.next() % 4 == 0 ? 0xFF : r.next()) }
            })
    case .fixedBytes(let n):
        return .bytes(
            (0..<rows).map { _ -> [UInt8]? in
                isNull() ? nil : (0..<n).map { _ in UInt8(truncatingIfNeeded: r.next() % 3) }
            })
    case .int64List:
        return .int64Lists(
            (0..<rows).map { _ -> [Int64]? in
                isNull() ? nil : (0..<r.int(0..<5)).map { _ in int64Pool[r.int(0..<int64Pool.count)] }
            })
    case .int32List:
        return .int32Lists(
            (0..<rows).map { _ -> [Int32]? in
                isNull() ? nil : (0..<r.int(0..<5)).map { _ in int32Pool[r.int(0..<int32Pool.count)] }
            })
    }
}

func encodings(for kind: ColumnSchema.Kind) -> [ColumnEncoding] {
    switch kind {
    case .int64, .int32, .timestampNanos, .int64List, .int32List: [.automatic, .plain, .dictionary, .deltaBinaryPacked]
    case .boolean: [.automatic, .plain]
    case .string, .bytes, .fixedBytes: [.automatic, .plain, .dictionary]
    }
}

let allKinds: [ColumnSchema.Kind] = [
    .int64, .timestampNanos, .int32, .boolean, .string, .bytes,
    .fixedBytes(length: 16), .int64List, .int32List,
]
let writtenCodecs: [CompressionCodec] = [.uncompressed, .lz4Raw, .zstd]

struct RoundTripCase: Sendable, CustomStringConvertible {
    var kind: ColumnSchema.Kind
    var encoding: ColumnEncoding
    var codec: CompressionCodec
    var optional: Bool
    var description: String { "\(kind) \(encoding) \(codec) \(optional ? "optional" : "required")" }

    static var all: [RoundTripCase] {
        var cases: [RoundTripCase] = []
        for kind in allKinds {
            for encoding in encodings(for: kind) {
                for codec in writtenCodecs {
                    for optional in [false, true] {
                        cases.append(RoundTripCase(kind: kind, encoding: encoding, codec: codec, optional: optional))
                    }
                }
            }
        }
        return cases
    }
}

/// Min/max of the non-null values (list elements for lists) of rows `range`, as stored statistics.
func expectedStatistics(_ data: ColumnData, kind: ColumnSchema.Kind) -> (min: StatisticValue?, max: StatisticValue?, nulls: Int) {
    switch data.values {
    case .int64(let v):
        return (v.min().map { .int64($0) }, v.max().map { .int64($0) }, data.nullCount)
    case .int32(let v):
        return (v.min().map { .int32($0) }, v.max().map { .int32($0) }, data.nullCount)
    case .boolean(let v):
        return (v.isEmpty ? nil : .boolean(!v.contains(false)), v.isEmpty ? nil : .boolean(v.contains(true)), data.nullCount)
    case .byteArrays(let b):
        let all = b.arrays
        let lo = all.min { $0.lexicographicallyPrecedes($1) }
        let hi = all.max { $0.lexicographicallyPrecedes($1) }
        return (lo.map { .bytes($0) }, hi.map { .bytes($0) }, data.nullCount)
    case .int64Lists(let o, let v):
        let empties = (0..<(o.count - 1)).filter { o[$0] == o[$0 + 1] }.count
        return (v.min().map { .int64($0) }, v.max().map { .int64($0) }, data.nullCount + empties)
    case .int32Lists(let o, let v):
        let empties = (0..<(o.count - 1)).filter { o[$0] == o[$0 + 1] }.count
        return (v.min().map { .int32($0) }, v.max().map { .int32($0) }, data.nullCount + empties)
    }
}

@Suite struct RoundTripTests {
    @Test(arguments: RoundTripCase.all)
    func roundTrip(_ c: RoundTripCase) throws {
        let rows = 2500
        let data = sampleColumn(c.kind, rows: rows, optional: c.optional, seed: 7)
        var options = ParquetWriterOptions()
        options.codec = c.codec
        options.maxRowsPerRowGroup = 1000
        options.dataPageSize = 2048  // several pages per chunk
        let schema = ParquetSchema([ColumnSchema("col", c.kind, optional: c.optional, encoding: c.encoding)])
        let writer = try ParquetWriter(schema: schema, options: options)
        try writer.writeRowGroup([data])
        let file = try writer.finish()

        let reader = try ParquetFileReader(bytes: file)
        #expect(reader.numRows == rows)
        #expect(reader.rowGroupCount == 3)
        #expect(reader.schema == ParquetSchema([ColumnSchema("col", c.kind, optional: c.optional)]))
        let back = try reader.readColumn(named: "col")
        #expect(back == data)

        var start = 0
        for rg in 0..<reader.rowGroupCount {
            let meta = try #require(reader.columnMetaData(rowGroup: rg, column: 0))
            #expect(meta.codec == c.codec)
            switch c.encoding {
            case .plain: #expect(meta.encodings.contains(.plain) && !meta.encodings.contains(.rleDictionary))
            case .dictionary: #expect(meta.encodings.contains(.rleDictionary) && meta.dictionaryPageOffset != nil)
            case .deltaBinaryPacked: #expect(meta.encodings.contains(.deltaBinaryPacked))
            case .automatic: break
            }
            let n = reader.rowCount(rowGroup: rg)
            let part = data.slice(rows: start..<(start + n))
            #expect(try reader.readColumn(0, rowGroups: [rg]) == part)
            let want = expectedStatistics(part, kind: c.kind)
            let got = try #require(reader.statistics(rowGroup: rg, column: 0))
            #expect(got.min == want.min && got.max == want.max, "row group \(rg)")
            #expect(got.nullCount == Int64(want.nulls))
            start += n
        }
    }

    @Test func emptyTable() throws {
        let schema = ParquetSchema([ColumnSchema("a", .int64), ColumnSchema("s", .string, optional: true)])
        let writer = try ParquetWriter(schema: schema)
        try writer.writeRowGroup([.int64([Int64]()), .strings([String?]())])
        let file = try writer.finish()
        let reader = try ParquetFileReader(bytes: file)
        #expect(reader.numRows == 0)
        #expect(reader.rowGroupCount == 0)
        #expect(reader.schema == schema)
        #expect(try reader.readColumn(named: "a") == .int64([Int64]()))
        #expect(try reader.readColumn(named: "s").rowCount == 0)
    }

    @Test func largeStringsAndTruncatedStatistics() throws {
        var r = SeededRandom(3)
        let values: [String] = (0..<50).map { i in
            String(repeating: Character(UnicodeScalar(UInt8(97 + i % 26))), count: 100_000 + r.int(0..<1000))
        }
        var options = ParquetWriterOptions()
        options.codec = .lz4Raw
        let writer = try ParquetWriter(schema: ParquetSchema([ColumnSchema("big", .string)]), options: options)
        try writer.writeRowGroup([.strings(values)])
        let reader = try ParquetFileReader(bytes: try writer.finish())
        #expect(try reader.readColumn(named: "big").stringValues == values)
        let stats = try #require(reader.statistics(rowGroup: 0, column: 0))
        // Truncated bounds must still enclose every value.
        guard case .bytes(let lo)? = stats.min, case .bytes(let hi)? = stats.max else {
            Issue.record("no byte statistics")
            return
        }
        #expect(lo.count <= 64 && hi.count <= 64)
        #expect(!stats.isMinExact && !stats.isMaxExact)
        for v in values {
            #expect(!Array(v.utf8).lexicographicallyPrecedes(lo))
            #expect(Array(v.utf8).lexicographicallyPrecedes(hi))
        }
    }

    @Test func dictionaryFallsBackToPlainWhenTooLarge() throws {
        var options = ParquetWriterOptions()
        options.dictionaryPageSizeLimit = 1024
        let values = (0..<5000).map { Int64($0 * 7919 % 5003) }
        let writer = try ParquetWriter(
            schema: ParquetSchema([ColumnSchema("v", .int64, encoding: .dictionary)]),
            options: options)
        try writer.writeRowGroup([.int64(values)])
        let reader = try ParquetFileReader(bytes: try writer.finish())
        let meta = try #require(reader.columnMetaData(rowGroup: 0, column: 0))
        #expect(!meta.encodings.contains(.rleDictionary))
        #expect(meta.dictionaryPageOffset == nil)
        #expect(try reader.readColumn(named: "v") == .int64(values))
    }

    @Test func automaticEncodingChoices() throws {
        let rows = 10_000
        let sorted = (0..<rows).map { Int64(1_700_000_000_000_000_000 + $0 * 1000) }
        let lowCardinality = (0..<rows).map { Int64($0 % 7) }
        let names = (0..<rows).map { "series-\($0 % 5)" }
        let unique = (0..<rows).map { "unique-\($0 * 7919)" }
        let schema = ParquetSchema([
            ColumnSchema("t", .timestampNanos), ColumnSchema("v", .int64),
            ColumnSchema("n", .string), ColumnSchema("u", .string),
        ])
        let writer = try ParquetWriter(schema: schema)
        try writer.writeRowGroup([.int64(sorted), .int64(lowCardinality), .strings(names), .strings(unique)])
        let reader = try ParquetFileReader(bytes: try writer.finish())
        #expect(reader.columnMetaData(rowGroup: 0, column: 0)?.encodings.contains(.deltaBinaryPacked) == true)
        #expect(reader.columnMetaData(rowGroup: 0, column: 1)?.encodings.contains(.rleDictionary) == true)
        #expect(reader.columnMetaData(rowGroup: 0, column: 2)?.encodings.contains(.rleDictionary) == true)
        #expect(reader.columnMetaData(rowGroup: 0, column: 3)?.encodings == [.plain, .rle])
    }

    @Test func rowGroupsSplitByBytesAndBatches() throws {
        var options = ParquetWriterOptions()
        options.maxRowGroupBytes = 8 * 1000  // 1000 int64 rows
        let writer = try ParquetWriter(schema: ParquetSchema([ColumnSchema("v", .int64, encoding: .plain)]), options: options)
        let a = (0..<3500).map { Int64($0) }
        let b = (3500..<3600).map { Int64($0) }
        try writer.writeRowGroup([.int64(a)])
        try writer.writeRowGroup([.int64(b)])
        let reader = try ParquetFileReader(bytes: try writer.finish())
        #expect(reader.rowGroupCount == 5)
        #expect((0..<reader.rowGroupCount).map { reader.rowCount(rowGroup: $0) }.reduce(0, +) == 3600)
        #expect(try reader.readColumn(named: "v") == .int64(a + b))
        #expect(try reader.readColumn(0, rowGroups: [4]) == .int64(b))
    }

    @Test func footerCarriesCreatedByAndKeyValues() throws {
        var options = ParquetWriterOptions()
        options.keyValueMetadata = [KeyValue(key: "kiln.table", value: "samples"), KeyValue(key: "empty", value: nil)]
        let writer = try ParquetWriter(schema: ParquetSchema([ColumnSchema("v", .int32)]), options: options)
        try writer.writeRowGroup([.int32([1, 2, 3])])
        let reader = try ParquetFileReader(bytes: try writer.finish())
        #expect(reader.createdBy == options.createdBy)
        #expect(reader.keyValueMetadata == options.keyValueMetadata)
    }

    @Test func mismatchedDataIsRejected() throws {
        let writer = try ParquetWriter(schema: ParquetSchema([ColumnSchema("a", .int64), ColumnSchema("f", .fixedBytes(length: 4))]))
        #expect(throws: ParquetError.self) { try writer.writeRowGroup([.int32([1]), .bytes([[1, 2, 3, 4]])]) }
        #expect(throws: ParquetError.self) { try writer.writeRowGroup([.int64([1]), .bytes([[1, 2, 3]])]) }
        #expect(throws: ParquetError.self) { try writer.writeRowGroup([.int64([1, 2]), .bytes([[1, 2, 3, 4]])]) }
        #expect(throws: ParquetError.self) { try writer.writeRowGroup([.int64([1, nil]), .bytes([[1, 2, 3, 4], [1, 2, 3, 4]])]) }
    }

    @Test func corruptFilesThrowInsteadOfCrashing() throws {
        let writer = try ParquetWriter(schema: ParquetSchema([ColumnSchema("s", .string, optional: true)]))
        try writer.writeRowGroup([.strings((0..<300).map { $0 % 3 == 0 ? nil : "v\($0 % 11)" })])
        let file = try writer.finish()
        var r = SeededRandom(11)
        var failures = 0
        for _ in 0..<300 {
            var bad = file
            for _ in 0..<3 { bad[4 + r.int(0..<(bad.count - 12))] ^= UInt8(truncatingIfNeeded: 1 + r.next() % 255) }
            do {
                let reader = try ParquetFileReader(bytes: bad)
                _ = try reader.readColumn(0)
            } catch {
                failures += 1
            }
        }
        // Most flips hit data and must be reported; none may crash the process.
        #expect(failures > 0)
    }
}

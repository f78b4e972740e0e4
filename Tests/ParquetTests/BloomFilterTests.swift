import Foundation
import TestSupport
import Testing

@testable import Parquet

/// Split-block Bloom filters on INT64 columns: the hash, the filter, and the file layout DuckDB reads.
struct BloomFilterTests {
    /// XXH64 (seed 0) from the reference C library (the `xxhash` Python binding): short inputs, both
    /// sides of the 32-byte stripe loop, and the plain encodings of INT64 values.
    @Test func xxHash64MatchesTheReference() {
        func hash(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { XXHash64.hash($0) } }
        #expect(hash([]) == 0xef46_db37_51d8_e999)
        #expect(hash(Array("a".utf8)) == 0xd24e_c4f1_a98c_6e5b)
        #expect(hash(Array("abc".utf8)) == 0x44bc_2cf5_ad77_0999)
        #expect(hash((0..<40).map { UInt8($0) }) == 0xf5da_40f1_b117_41e9)
        #expect(hash((0..<100).map { UInt8($0) }) == 0x6ac1_e580_3216_6597)
        #expect(SplitBlockBloomFilter.hash(0) == 0x34c9_6acd_cadb_1bbb)
        #expect(SplitBlockBloomFilter.hash(-1) == 0x85d1_36ad_b773_c6c9)
        #expect(SplitBlockBloomFilter.hash(0x00f0_67aa_0ba9_02b7) == 0xe84b_97e2_eecb_a15a)
    }

    /// Four row groups of distinct random values (and nulls): each group's filter holds every value of
    /// its own and few of the others' (sized for 1 % false positives).
    static func file(rowGroups: Int = 4, rows: Int = 5_000) throws -> (file: [UInt8], groups: [[Int64]]) {
        var random = SeededRandom(20_261_207)
        let schema = ParquetSchema([ColumnSchema("id", .int64, optional: true, bloomFilter: true), ColumnSchema("v", .int64)])
        var options = ParquetWriterOptions()
        options.maxRowsPerRowGroup = rows
        let writer = try ParquetWriter(schema: schema, options: options)
        var groups: [[Int64]] = []
        for _ in 0..<rowGroups {
            let ids: [Int64?] = (0..<rows).map { _ in random.chance(0.2) ? nil : Int64(bitPattern: random.next()) }
            groups.append(ids.compactMap { $0 })
            try writer.writeRowGroup([.int64(ids), .int64((0..<rows).map { Int64($0) })])
        }
        return (try writer.finish(), groups)
    }

    @Test func eachRowGroupsFilterHoldsItsValues() throws {
        let (file, groups) = try Self.file()
        let reader = try ParquetFileReader(bytes: file)
        let column = try #require(reader.leafIndex(named: "id"))
        #expect(try reader.bloomFilter(rowGroup: 0, column: try #require(reader.leafIndex(named: "v"))) == nil)
        var falsePositives = 0
        var absentChecks = 0
        for (rg, values) in groups.enumerated() {
            let filter = try #require(try reader.bloomFilter(rowGroup: rg, column: column))
            #expect(values.allSatisfy { filter.mightContain(hash: SplitBlockBloomFilter.hash($0)) })
            for (other, otherValues) in groups.enumerated() where other != rg {
                absentChecks += otherValues.count
                falsePositives += otherValues.filter { filter.mightContain(hash: SplitBlockBloomFilter.hash($0)) }.count
            }
        }
        #expect(Double(falsePositives) / Double(absentChecks) < 0.02, "\(falsePositives) of \(absentChecks)")
    }

    /// DuckDB's own reader of the filters (`parquet_bloom_probe`) agrees with Kiln's for every row group,
    /// on values present in one group and on values present nowhere, and answers an equality filter.
    @Test(.requires(.python("duckdb")))
    func duckdbReadsTheFilters() throws {
        let (file, groups) = try Self.file()
        let path = temporaryFile("bloom.parquet")
        try Data(file).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }
        let reader = try ParquetFileReader(bytes: file)
        let column = try #require(reader.leafIndex(named: "id"))
        let filters = try (0..<groups.count).map { try #require(try reader.bloomFilter(rowGroup: $0, column: column)) }
        var random = SeededRandom(7)
        let probes = groups.map { $0[$0.count / 2] } + (0..<20).map { _ in Int64(bitPattern: random.next()) }
        let script = """
            import duckdb, json, sys
            path, values = sys.argv[1], [int(v) for v in sys.argv[2:]]
            out = []
            for v in values:
                rows = duckdb.sql(f"SELECT row_group_id, bloom_filter_excludes FROM parquet_bloom_probe('{path}', 'id', {v}::BIGINT) ORDER BY 1").fetchall()
                count = duckdb.sql(f"SELECT count(*) FROM '{path}' WHERE id = {v}").fetchall()[0][0]
                out.append({"excludes": [bool(r[1]) for r in rows], "count": count})
            print(json.dumps(out))
            """
        let answers = try #require(try PythonTools.json(script, [path.path] + probes.map { String($0) }) as? [[String: Any]])
        try #require(answers.count == probes.count)
        for (value, answer) in zip(probes, answers) {
            let kiln = filters.map { !$0.mightContain(hash: SplitBlockBloomFilter.hash(value)) }
            #expect(answer["excludes"] as? [Bool] == kiln, "\(value)")
            #expect(answer["count"] as? Int == groups.reduce(0) { $0 + $1.filter { $0 == value }.count }, "\(value)")
        }
        // Some values present nowhere are excluded from every group: the filters do not pass everything.
        #expect(probes.suffix(20).contains { value in filters.allSatisfy { !$0.mightContain(hash: SplitBlockBloomFilter.hash(value)) } })
    }
}

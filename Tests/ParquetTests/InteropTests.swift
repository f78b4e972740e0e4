import Foundation
import TestSupport
import Testing

@testable import Parquet

/// Files Kiln writes, read by the real pyarrow and DuckDB; files pyarrow writes, read by Kiln.
@Suite(.requires(.python("pyarrow", "duckdb")))
struct InteropTests {
    /// Every kind × encoding × optional, as one wide table of several row groups.
    static func wideTable(rows: Int) -> (ParquetSchema, [ColumnData]) {
        var columns: [ColumnSchema] = []
        var data: [ColumnData] = []
        var seed: UInt64 = 100
        for kind in allKinds {
            for encoding in encodings(for: kind) {
                for optional in [false, true] {
                    let name = "c\(columns.count)"
                    columns.append(ColumnSchema(name, kind, optional: optional, encoding: encoding))
                    data.append(sampleColumn(kind, rows: rows, optional: optional, seed: seed))
                    seed += 1
                }
            }
        }
        return (ParquetSchema(columns), data)
    }

    @Test(arguments: writtenCodecs)
    func pyarrowReadsKilnFiles(codec: CompressionCodec) throws {
        let rows = 3000
        let (schema, data) = Self.wideTable(rows: rows)
        var options = ParquetWriterOptions()
        options.codec = codec
        options.maxRowsPerRowGroup = 1000
        options.dataPageSize = 4096
        options.keyValueMetadata = [KeyValue(key: "kiln.table", value: "interop")]
        let writer = try ParquetWriter(schema: schema, options: options)
        try writer.writeRowGroup([ColumnData](data))
        let file = try writer.finish()
        let path = temporaryFile("kiln.parquet")
        try Data(file).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }

        let script =
            canonicalPython + """

                import sys, json
                import pyarrow.parquet as pq
                f = pq.ParquetFile(sys.argv[1])
                t = f.read()
                md = f.metadata
                out = {"num_rows": md.num_rows, "row_groups": md.num_row_groups, "created_by": md.created_by,
                       "kv": {k.decode(): v.decode() for k, v in (md.metadata or {}).items()},
                       "columns": {}, "stats": []}
                for name in t.column_names:
                    out["columns"][name] = canon(t.column(name).combine_chunks())
                for i in range(md.num_row_groups):
                    rg = []
                    for j in range(md.num_columns):
                        c = md.row_group(i).column(j)
                        s = c.statistics
                        if s is None or not s.has_min_max:
                            rg.append({"codec": c.compression, "null_count": None if s is None else s.null_count})
                            continue
                        def enc(v):
                            if isinstance(v, bool): return "true" if v else "false"
                            if isinstance(v, (bytes, bytearray)): return v.hex()
                            if isinstance(v, str): return v.encode().hex()
                            return str(v)
                        rg.append({"codec": c.compression, "min": enc(s.min_raw), "max": enc(s.max_raw), "null_count": s.null_count})
                    out["stats"].append(rg)
                print(json.dumps(out))
                """
        let result = try #require(try PythonTools.json(script, [path.path]) as? [String: Any])
        #expect(result["num_rows"] as? Int == rows)
        #expect(result["row_groups"] as? Int == 3)
        #expect(result["created_by"] as? String == options.createdBy)
        #expect((result["kv"] as? [String: String])?["kiln.table"] == "interop")
        let columns = try #require(result["columns"] as? [String: [Any]])
        for (col, d) in zip(schema.columns, data) {
            let theirs = try #require(columns[col.name], "pyarrow lacks \(col.name)").map { $0 as? String }
            #expect(theirs == canonical(d, kind: col.kind), "column \(col.name) \(col.kind) \(col.encoding)")
        }

        // Statistics as pyarrow sees them, against the values written.
        let stats = try #require(result["stats"] as? [[[String: Any]]])
        // pyarrow's Python API names codec 7 (LZ4_RAW) "LZ4"; the footer's codec id is checked by our own reader.
        let codecName = codec == .lz4Raw ? "LZ4" : codec == .zstd ? "ZSTD" : "UNCOMPRESSED"
        for (rg, rgStats) in stats.enumerated() {
            for (j, (col, d)) in zip(schema.columns, data).enumerated() {
                let s = rgStats[j]
                #expect(s["codec"] as? String == codecName)
                let part = d.slice(rows: (rg * 1000)..<((rg + 1) * 1000))
                let want = expectedStatistics(part, kind: col.kind)
                #expect(s["null_count"] as? Int == want.nulls, "null count \(col.name) rg \(rg)")
                func str(_ v: StatisticValue?) -> String? {
                    switch v {
                    case .int64(let x)?: String(x)
                    case .int32(let x)?: String(x)
                    case .boolean(let b)?: b ? "true" : "false"
                    case .bytes(let b)?: hex(b)
                    case nil: nil
                    }
                }
                #expect(s["min"] as? String == str(want.min), "min \(col.name) \(col.kind) rg \(rg)")
                #expect(s["max"] as? String == str(want.max), "max \(col.name) \(col.kind) rg \(rg)")
            }
        }
    }

    @Test func duckdbAggregatesAndStatisticsMatch() throws {
        let rows = 5000
        var r = SeededRandom(77)
        var t: Int64 = 1_700_000_000_000_000_000
        let time = (0..<rows).map { _ -> Int64 in
            t += Int64(r.int(1..<1_000_000))
            return t
        }
        let series = (0..<rows).map { _ in Int64(r.int(0..<8)) }
        let value = (0..<rows).map { _ -> Int64? in r.chance(0.1) ? nil : Int64(r.int(-1000..<100_000)) }
        let small = (0..<rows).map { _ in Int32(r.int(-50..<50)) }
        let names = (0..<rows).map { _ -> String? in r.chance(0.05) ? nil : "svc-\(r.int(0..<20))" }
        let schema = ParquetSchema([
            ColumnSchema("time_nanos", .timestampNanos),
            ColumnSchema("series_id", .int64),
            ColumnSchema("value", .int64, optional: true),
            ColumnSchema("small", .int32, encoding: .deltaBinaryPacked),
            ColumnSchema("name", .string, optional: true),
        ])
        var options = ParquetWriterOptions()
        options.maxRowsPerRowGroup = 2000
        options.codec = .lz4Raw
        let writer = try ParquetWriter(schema: schema, options: options)
        try writer.writeRowGroup([.int64(time), .int64(series), .int64(value), .int32(small), .strings(names)])
        let path = temporaryFile("duck.parquet")
        try Data(try writer.finish()).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }

        let script = """
            import sys, json, duckdb
            p = sys.argv[1]
            con = duckdb.connect()
            agg = con.execute(f"select count(*), epoch_ns(min(time_nanos)), epoch_ns(max(time_nanos)), sum(series_id), "
                              f"sum(value), min(value), max(value), count(value), sum(small), min(small), max(small), "
                              f"min(name), max(name), count(name) from read_parquet('{p}')").fetchone()
            meta = con.execute(f"select row_group_id, path_in_schema, stats_min_value, stats_max_value, stats_null_count "
                               f"from parquet_metadata('{p}') order by row_group_id, column_id").fetchall()
            print(json.dumps({"agg": [None if v is None else str(v) for v in agg],
                              "meta": [[str(x) if x is not None else None for x in row] for row in meta]}))
            """
        let result = try #require(try PythonTools.json(script, [path.path]) as? [String: Any])
        let agg = try #require(result["agg"] as? [String?])
        let present = value.compactMap { $0 }
        let presentNames = names.compactMap { $0 }
        let expected: [String?] = [
            String(rows), String(time.min()!), String(time.max()!), String(series.reduce(0, +)),
            String(present.reduce(0, +)), String(present.min()!), String(present.max()!), String(present.count),
            String(small.reduce(0) { $0 + Int64($1) }), String(small.min()!), String(small.max()!),
            presentNames.min(), presentNames.max(), String(presentNames.count),
        ]
        #expect(agg == expected)

        // DuckDB's view of the footer statistics: per row group, the value column's min/max/null count.
        let meta = try #require(result["meta"] as? [[String?]])
        #expect(meta.count == 3 * 5)
        let reader = try ParquetFileReader(bytes: Array(try Data(contentsOf: path)))
        var starts = [0]
        for rg in 0..<reader.rowGroupCount { starts.append(starts.last! + reader.rowCount(rowGroup: rg)) }
        for row in meta where row[1] == "value" {
            let rg = Int(row[0]!)!
            let slice = value[starts[rg]..<starts[rg + 1]]
            let vals = slice.compactMap { $0 }
            #expect(row[2] == String(vals.min()!))
            #expect(row[3] == String(vals.max()!))
            #expect(row[4] == String(slice.count - vals.count))
        }
    }

    @Test(arguments: ["none", "zstd", "lz4", "snappy"], ["1.0", "2.0"])
    func kilnReadsPyarrowFiles(compression: String, pageVersion: String) throws {
        let path = temporaryFile("pyarrow.parquet")
        defer { try? FileManager.default.removeItem(at: path) }
        let script =
            canonicalPython + """

                import sys, json, random
                import pyarrow.parquet as pq
                random.seed(9)
                n = 20000
                def maybe(v): return None if random.random() < 0.1 else v
                t = pa.table({
                    "series_id": pa.array([random.randrange(5) for _ in range(n)], pa.int64()),
                    "time_nanos": pa.array(sorted(random.randrange(1 << 60) for _ in range(n)), pa.timestamp("ns", tz="UTC")),
                    "value": pa.array([maybe(random.randrange(-100, 1 << 40)) for _ in range(n)], pa.int64()),
                    "small": pa.array([random.randrange(-(1 << 31), 1 << 31) for _ in range(n)], pa.int32()),
                    "flag": pa.array([maybe(random.random() < 0.5) for _ in range(n)], pa.bool_()),
                    "name": pa.array([maybe("name-%d" % random.randrange(100)) for _ in range(n)], pa.string()),
                    "blob": pa.array([maybe(bytes(random.randrange(256) for _ in range(random.randrange(9)))) for _ in range(n)], pa.binary()),
                    "stack": pa.array([maybe([random.randrange(1000) for _ in range(random.randrange(6))]) for _ in range(n)], pa.list_(pa.int64())),
                })
                pq.write_table(t, sys.argv[1], compression=sys.argv[2], data_page_version=sys.argv[3], row_group_size=7000)
                print(json.dumps({name: canon(t.column(name).combine_chunks()) for name in t.column_names}))
                """
        let expected = try #require(try PythonTools.json(script, [path.path, compression, pageVersion]) as? [String: [Any]])
        let reader = try ParquetFileReader(bytes: Array(try Data(contentsOf: path)))
        #expect(reader.rowGroupCount == 3)
        let kinds: [String: ColumnSchema.Kind] = [
            "series_id": .int64, "time_nanos": .timestampNanos, "value": .int64,
            "small": .int32, "flag": .boolean, "name": .string, "blob": .bytes,
            "stack": .int64List,
        ]
        var snappyRefusals = 0
        for (name, kind) in kinds {
            #expect(reader.schema.columns.first { $0.name == name }?.kind == kind, "schema of \(name)")
            if compression == "snappy" {
                // Pages pyarrow left uncompressed (V2 may) decode; every other page must fail clearly.
                do {
                    let got = canonical(try reader.readColumn(named: name), kind: kind)
                    #expect(got == expected[name]!.map { $0 as? String }, "column \(name) snappy v\(pageVersion)")
                } catch let e as ParquetError {
                    #expect(e.description.contains("unsupported codec SNAPPY"), "\(e)")
                    snappyRefusals += 1
                }
                continue
            }
            let got = canonical(try reader.readColumn(named: name), kind: kind)
            #expect(got == expected[name]!.map { $0 as? String }, "column \(name) \(compression) v\(pageVersion)")
        }
        if compression == "snappy" { #expect(snappyRefusals >= kinds.count - 1) }
    }
}

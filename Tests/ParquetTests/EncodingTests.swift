import Testing

@testable import Parquet

@Suite struct EncodingTests {
    @Test func bitPackingMatchesSpecExample() {
        // Encodings.md: 0..7 at bit width 3 packs to 10001000 11000110 11111010.
        let values: [UInt32] = [0, 1, 2, 3, 4, 5, 6, 7]
        var out: [UInt8] = []
        values.withUnsafeBufferPointer { bitPack($0.baseAddress!, count: 8, width: 3, into: &out) }
        #expect(out == [0b1000_1000, 0b1100_0110, 0b1111_1010])
    }

    @Test(arguments: [0, 1, 2, 3, 7, 8, 13, 20, 31, 32])
    func rleHybridRoundTrip(width: Int) throws {
        var r = SeededRandom(UInt64(width) + 1)
        let maxValue = width == 0 ? 0 : (width == 32 ? UInt64(UInt32.max) : (UInt64(1) << UInt64(width)) - 1)
        // Runs and noise mixed, odd lengths so the last bit-packed run is padded.
        var values: [UInt32] = []
        while values.count < 5001 {
            let v = UInt32(r.next() % (maxValue + 1))
            let n = r.chance(0.3) ? r.int(8..<40) : 1
            values.append(contentsOf: repeatElement(v, count: min(n, 5001 - values.count)))
        }
        var out: [UInt8] = []
        values.withUnsafeBufferPointer { RLEHybrid.encode($0.baseAddress!, count: $0.count, width: width, into: &out) }
        var back = [UInt32](repeating: 99, count: values.count)
        try out.withUnsafeBytes { raw in
            var c = ByteCursor(raw)
            try back.withUnsafeMutableBufferPointer { try RLEHybrid.decode(&c, width: width, count: values.count, into: $0.baseAddress!) }
            #expect(c.position == raw.count)
        }
        #expect(back == values)
    }

    @Test func rleUsesRunsForRepeats() {
        let values = [UInt32](repeating: 1, count: 1000)
        var out: [UInt8] = []
        values.withUnsafeBufferPointer { RLEHybrid.encode($0.baseAddress!, count: $0.count, width: 1, into: &out) }
        // One RLE run: varint(1000 << 1) then one value byte.
        #expect(out == [0xD0, 0x0F, 0x01])
    }

    @Test func deltaMatchesSpecExampleHeader() throws {
        let values: [Int64] = [1, 2, 3, 4, 5]
        var out: [UInt8] = []
        values.withUnsafeBufferPointer { DeltaBinaryPacked.encode($0, width32: false, into: &out) }
        // Header: block 128, 4 miniblocks, 5 values, first value zigzag(1) = 2; block: min delta zigzag(1) = 2,
        // widths all 0, no miniblock data.
        #expect(out == [0x80, 0x01, 0x04, 0x05, 0x02, 0x02, 0, 0, 0, 0])
    }

    @Test(arguments: [false, true])
    func deltaRoundTripWithWrapping(width32: Bool) throws {
        var r = SeededRandom(5)
        var values: [Int64] = [0, Int64.max, Int64.min, -1, 1]
        for _ in 0..<1000 { values.append(width32 ? Int64(Int32(truncatingIfNeeded: r.next())) : Int64(bitPattern: r.next())) }
        values.append(contentsOf: (0..<300).map { Int64($0) })
        if width32 { values = values.map { Int64(Int32(truncatingIfNeeded: $0)) } }
        var out: [UInt8] = []
        values.withUnsafeBufferPointer { DeltaBinaryPacked.encode($0, width32: width32, into: &out) }
        var back: [Int64] = []
        try out.withUnsafeBytes { raw in
            var c = ByteCursor(raw)
            try DeltaBinaryPacked.decode(&c, width32: width32, into: &back)
            #expect(c.position == raw.count)
        }
        #expect(back == values)
    }

    @Test func thriftRoundTripOfFooter() throws {
        let meta = FileMetaData(
            version: 2,
            schema: [SchemaElement(name: "schema", numChildren: 2)] + ColumnSchema("t", .timestampNanos).schemaElements
                + ColumnSchema("l", .int32List, optional: true).schemaElements,
            numRows: 1 << 40, rowGroups: [], keyValueMetadata: [KeyValue(key: "k", value: "v")],
            createdBy: "kiln", columnOrders: [true, true])
        var w = ThriftWriter()
        w.write(meta)
        let back = try w.bytes.withUnsafeBytes { raw in
            var r = ThriftReader(raw, from: 0, to: raw.count)
            return try r.readFileMetaData()
        }
        #expect(back == meta)
    }

    @Test func thriftUsesLongFieldHeadersForLargeDeltas() throws {
        var w = ThriftWriter()
        w.beginStruct()
        w.i32(1, -3)
        w.i64(20, 1 << 40)  // delta 19 > 15: long form
        w.endStruct()
        #expect(w.bytes[0] == 0x15 && w.bytes[1] == 0x05)  // delta 1, i32; zigzag(-3) = 5
        #expect(w.bytes[2] == 0x06 && w.bytes[3] == 40)  // type i64, zigzag field id 20 = 40
        try w.bytes.withUnsafeBytes { raw in
            var r = ThriftReader(raw, from: 0, to: raw.count)
            try r.beginStruct()
            let f1 = try #require(try r.nextField())
            let v1 = try r.i32()
            #expect(f1.id == 1 && v1 == -3)
            let f2 = try #require(try r.nextField())
            let v2 = try r.i64()
            #expect(f2.id == 20 && v2 == 1 << 40)
            #expect(try r.nextField() == nil)
        }
    }
}

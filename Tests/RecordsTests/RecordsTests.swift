import KilnFoundation
import ProfileModel
import TestSupport
import Testing

@testable import Records

@Suite struct RawEnvelopeTests {
    let envelope = RawEnvelope(
        tenant: "team-a",
        labels: LabelSet(["service_name": "checkout", "__name__": "memory", "instance": "10.0.0.1:6060"]),
        source: .scrape, format: .pprof, startNanos: 1_700_000_000_000_000_000, endNanos: 1_700_000_015_000_000_000,
        cumulative: true, attributes: ["sampleRate": "100"], payload: [0x1f, 0x8b, 0, 1, 2, 3])

    @Test func roundTrips() throws {
        #expect(try RawEnvelope(decoding: envelope.encoded()) == envelope)
    }

    @Test func keyIsStableAndSeparatesTenants() throws {
        var other = envelope
        other.tenant = "team-b"
        #expect(try envelope.key == RawEnvelope(decoding: envelope.encoded()).key)
        #expect(envelope.key != other.key)
        #expect(String(decoding: envelope.key, as: UTF8.self).hasPrefix("team-a/"))
    }

    @Test func everyTruncationIsAnErrorNotACrash() {
        let bytes = envelope.encoded()
        for cut in 0..<bytes.count {
            #expect(throws: RecordDecodingError.self) { try RawEnvelope(decoding: Array(bytes[..<cut])) }
        }
    }

    @Test func foreignBytesAreNamed() {
        #expect(throws: RecordDecodingError("not a Kiln raw envelope (missing \"KR\" magic)")) {
            try RawEnvelope(decoding: [0x1f, 0x8b, 8, 0])
        }
        var future = envelope.encoded()
        future[2] = 9
        #expect(throws: RecordDecodingError("raw envelope version 9 is not supported (this build reads version 1)")) {
            try RawEnvelope(decoding: future)
        }
    }
}

@Suite struct BatchCodecTests {
    static func sampleBatch() -> SampleBatch {
        let cpu = ProfileTypeID(parsing: "process_cpu:cpu:nanoseconds:cpu:nanoseconds")!
        var stacks = StackTable()
        stacks.append([0, 1])
        stacks.append([1])
        return SampleBatch(
            tenant: "anonymous",
            provenance: Provenance(topic: "kiln.profiles.raw", partition: 3, offset: 41),
            series: [BatchSeries(labels: LabelSet(["service_name": "api", "__profile_type__": cpu.id]), profileType: cpu)],
            symbols: SymbolTable(
                strings: ["", "main.work", "main.main", "main.go"],
                functions: [
                    FunctionSymbol(name: 1, systemName: 1, filename: 3, startLine: 10),
                    FunctionSymbol(name: 2, systemName: 2, filename: 3, startLine: 3),
                ],
                frames: [FrameSymbol(function: 0, line: 12), FrameSymbol(function: 1, line: -1)]),
            stacks: stacks,
            sampleSeries: [0, 0, 0], sampleStacks: [0, 1, 0], sampleValues: [10_000_000, -5, Int64.max / 4],
            sampleTimes: [1_700_000_000_000_000_000, 1_700_000_000_000_000_000, 5], sampleSpans: [0, 0xdead_beef_0000_0001, 0],
            seriesPeriods: [10_000_000], droppedZeroValue: 2, droppedEmptyStack: 1)
    }

    @Test func roundTrips() throws {
        let batch = Self.sampleBatch()
        let decoded = try BatchCodec.decode(BatchCodec.encode(batch))
        // Series label strings are interned into the shared string table, so compare content.
        #expect(decoded.series == batch.series)
        #expect(decoded.stacks == batch.stacks)
        #expect(decoded.sampleValues == batch.sampleValues)
        #expect(decoded.sampleTimes == batch.sampleTimes)
        #expect(decoded.sampleSpans == batch.sampleSpans)
        #expect(decoded.seriesPeriods == [10_000_000])
        #expect(decoded.provenance == batch.provenance)
        #expect(decoded.totalsByProfileType == batch.totalsByProfileType)
        #expect(decoded.symbols.functionName(ofFrame: 1) == "main.main")
        #expect((decoded.droppedZeroValue, decoded.droppedEmptyStack) == (2, 1))
    }

    /// Ids and values on both sides of every varint length (1 to 5 bytes for 32 bits, up to 10 for
    /// 64), so each of the encoder's write paths is read back.
    @Test func varintLengthBoundariesRoundTrip() throws {
        let edges32: [UInt32] = [0, 1, 0x7f, 0x80, 0x3fff, 0x4000, 0x1f_ffff, 0x20_0000, 0xfff_ffff, 0x1000_0000, UInt32.max]
        let frameCount = Int(edges32.filter { $0 < 0x20_0000 }.max()!) + 1
        var batch = Self.sampleBatch()
        // One frame per index up to the largest small edge, so every edge below it is a valid frame id.
        batch.symbols.frames = (0..<frameCount).map { FrameSymbol(function: UInt32($0 % 2), line: Int64($0) - 5) }
        var stacks = StackTable()
        stacks.append(edges32.filter { Int($0) < frameCount })
        stacks.append(edges32.filter { Int($0) < frameCount }.reversed())
        batch.stacks = stacks
        var values: [Int64] = [0, Int64.min, Int64.max, -1]
        for e in edges32 { values += [Int64(e), -Int64(e), Int64(e) << 20, -(Int64(e) << 31)] }
        batch.sampleValues = values
        batch.sampleSeries = values.map { _ in 0 }
        batch.sampleStacks = values.indices.map { UInt32($0 % 2) }
        batch.sampleTimes = values.indices.map { $0 % 3 == 0 ? Int64.max - Int64($0) : Int64($0) << (2 * ($0 % 31)) }
        batch.sampleSpans = values.indices.map { $0 % 2 == 0 ? 0 : UInt64.max - UInt64($0) }
        let decoded = try BatchCodec.decode(BatchCodec.encode(batch))
        #expect(decoded.stacks == batch.stacks)
        #expect(decoded.symbols.frames == batch.symbols.frames)
        #expect(decoded.sampleValues == batch.sampleValues)
        #expect(decoded.sampleTimes == batch.sampleTimes)
        #expect(decoded.sampleSpans == batch.sampleSpans)
        #expect(decoded.sampleStacks == batch.sampleStacks)
    }

    /// Stacks written as their leaf-side frames plus a count of callers shared with the previous stack:
    /// longer, shorter, identical, empty and unrelated neighbours all come back whole, and a table of
    /// stacks that share their callers takes far fewer bytes than its frames.
    @Test func stacksSharingCallersRoundTrip() throws {
        var batch = Self.sampleBatch()
        batch.symbols.frames = (0..<300).map { FrameSymbol(function: UInt32($0 % 2), line: Int64($0)) }
        let shapes: [[UInt32]] = [
            [5, 4, 3, 2, 1], [9, 3, 2, 1], [1], [7, 8, 1], [7, 8, 1], [], [2, 1], [0, 299, 200, 1],
            [6, 200, 1], [2, 1],
        ]
        var stacks = StackTable()
        for shape in shapes { stacks.append(shape) }
        batch.stacks = stacks
        batch.sampleStacks = [0, 9, 4]
        #expect(try BatchCodec.decode(BatchCodec.encode(batch)).stacks == stacks)

        // 200 stacks 100 frames deep (frame ids of two bytes) that differ only in their leaf.
        var deep = StackTable()
        let callers = (0..<99).map { UInt32(200 - $0) }
        for leaf in 0..<200 { deep.append([UInt32(leaf % 100 + 200)] + callers) }
        batch.stacks = deep
        let bytes = BatchCodec.encode(batch)
        // Written whole they would take two bytes a frame; shared, the whole record takes under one.
        #expect(bytes.count < deep.frames.count)
        #expect(try BatchCodec.decode(bytes).stacks == deep)
    }

    /// The shared count is the whole common tail, wherever the first difference falls in a four-frame
    /// step and however near the table's start: with one-byte frame ids each written frame is one byte,
    /// so the record's size against a one-stack table counts exactly the frames written.
    @Test func sharedCallersAreCountedExactly() throws {
        var batch = Self.sampleBatch()
        batch.symbols.frames = (0..<120).map { FrameSymbol(function: UInt32($0 % 2), line: Int64($0)) }
        batch.sampleStacks = [0, 0, 0]
        var single = StackTable()
        single.append([1])
        batch.stacks = single
        let singleBytes = BatchCodec.encode(batch).count

        var stacks = StackTable()
        var rows: [[UInt32]] = [[3], [4, 3]]
        for tail in 0...13 {
            let callers = (0..<tail).map { UInt32(40 - $0) }
            rows += [[UInt32(50 + tail)] + callers, [UInt32(70 + tail), 90] + callers]
            if tail > 0 { rows.append(callers) }
        }
        for row in rows { stacks.append(row) }
        var written = 0
        for (i, row) in rows.enumerated() {
            let previous = i > 0 ? rows[i - 1] : []
            var shared = 0
            while shared < min(row.count, previous.count) && row[row.count - 1 - shared] == previous[previous.count - 1 - shared] {
                shared += 1
            }
            written += row.count - shared
        }
        batch.stacks = stacks
        let bytes = BatchCodec.encode(batch)
        // Per stack a depth and a shared count (one byte each), then its own frames.
        #expect(bytes.count - singleBytes == 2 * rows.count + written - 3)
        #expect(try BatchCodec.decode(bytes).stacks == stacks)
    }

    /// A version 1 record (every frame written, no shared count), written field by field here, still
    /// decodes: records already on the topic survive an upgrade.
    @Test func version1RecordsStillDecode() throws {
        var w = ByteWriter()
        w.bytes = [0x4B, 0x42, 1]
        w.string("acme")
        w.string("kiln.profiles.raw")
        w.signed(2)
        w.signed(17)
        w.signed(0)
        w.signed(0)
        let type = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
        w.varint(3)
        for text in ["", "main.work", type] { w.string(text) }
        w.varint(1)
        for field: Int64 in [1, 1, 0] { w.varint(Int(field)) }
        w.signed(7)
        w.varint(2)
        w.varint(0)
        w.signed(12)
        w.varint(0)
        w.signed(13)
        // Stacks [0, 1] and [1]: version 2 would write a shared count after each depth.
        w.varint(2)
        for field in [2, 0, 1, 1, 1] { w.varint(field) }
        w.varint(1)
        w.varint(0)
        w.varint(2)
        w.varint(1)
        w.varint(0)
        w.varint(1)
        w.signed(5)
        w.signed(1_000)
        w.varint(0)
        let batch = try BatchCodec.decode(w.bytes)
        #expect(try BatchCodec.decodeForRules(w.bytes) { _, _ in ["main.work"] } == RuleBatch(batch, functionNames: ["main.work"]))
        var expected = StackTable()
        expected.append([0, 1])
        expected.append([1])
        #expect(batch.stacks == expected)
        #expect(batch.sampleStacks == [1])
        #expect(batch.sampleValues == [5])
        #expect(batch.sampleTimes == [1_000])
        #expect(batch.provenance == Provenance(topic: "kiln.profiles.raw", partition: 2, offset: 17))
        #expect(batch.series.map(\.profileType.id) == [type])
    }

    /// Shared frames cost no bytes, so a hostile record could ask for unbounded frames: a shared count
    /// beyond the previous stack and a table of more than `maxEntries` frames are errors.
    @Test(arguments: [UInt8(3), BatchCodec.currentVersion])
    func sharedFrameCountsAreBounded(version: UInt8) throws {
        // Version 3 gives no length of the symbols (the ruler steps over them frame by frame), version 4
        // does (one that covers everything after it here, so the ruler reads the stacks to find out).
        func record(stacks: (inout ByteWriter) -> Void) -> [UInt8] {
            var w = ByteWriter()
            w.bytes = [0x4B, 0x42, version]
            w.string("acme")
            w.string("raw")
            for _ in 0..<(version >= 4 ? 5 : 4) { w.signed(0) }
            w.varint(2)
            w.string("")
            w.string("f")
            var symbols = ByteWriter()
            symbols.varint(1)
            for _ in 0..<4 { symbols.varint(0) }
            symbols.varint(1)
            symbols.varint(0)
            symbols.signed(0)
            stacks(&symbols)
            if version >= 4 { w.bytes += withUnsafeBytes(of: UInt32(symbols.bytes.count).littleEndian, Array.init) }
            return w.bytes + symbols.bytes
        }
        let tooManyShared = record { w in
            w.varint(2)
            for field in [1, 0, 0, 2, 2] { w.varint(field) }
        }
        #expect(throws: RecordDecodingError("stack shared frames 2 exceeds the limit 1")) { try BatchCodec.decode(tooManyShared) }
        let depth = 1_000
        let stackCount = BatchCodec.maxEntries / depth + 1
        let frameBomb = record { w in
            w.varint(stackCount)
            w.varint(depth)
            w.varint(0)
            for _ in 0..<depth { w.varint(0) }
            for _ in 1..<stackCount {
                w.varint(depth)
                w.varint(depth)
            }
        }
        #expect(throws: RecordDecodingError("stack frames exceed \(BatchCodec.maxEntries) in all")) { try BatchCodec.decode(frameBomb) }
        if version < 4 {
            #expect(throws: RecordDecodingError("stack shared frames 2 exceeds the limit 1")) {
                try BatchCodec.decodeForRules(tooManyShared) { _, _ in [] }
            }
            #expect(throws: RecordDecodingError("stack frames exceed \(BatchCodec.maxEntries) in all")) {
                try BatchCodec.decodeForRules(frameBomb) { _, _ in ["f"] }
            }
        } else {
            // Nothing follows the symbols: the series count is what is missing for a reader that skips them.
            #expect(throws: RecordDecodingError("truncated record: varint series count cut off")) {
                try BatchCodec.decodeForRules(frameBomb) { _, _ in ["f"] }
            }
        }
    }

    @Test func everyTruncationIsAnErrorNotACrash() {
        let bytes = BatchCodec.encode(Self.sampleBatch())
        // The span column (a flag per sample, 8 bytes for the one span) and the series' period (10 ms: 4
        // varint bytes) are what reading for rules leaves out.
        let unreadForRules = 3 + 8 + 4
        for cut in 0..<bytes.count {
            #expect(throws: RecordDecodingError.self) { try BatchCodec.decode(Array(bytes[..<cut])) }
            if cut < bytes.count - unreadForRules {
                #expect(throws: RecordDecodingError.self) {
                    try BatchCodec.decodeForRules(Array(bytes[..<cut])) { _, _ in ["main.work"] }
                }
            }
        }
    }

    /// Today's record of `batch` as version 3 wrote it: without the latest sample time and the symbols' length.
    static func version3Bytes(_ batch: SampleBatch) throws -> [UInt8] {
        let bytes = BatchCodec.encode(batch)
        #expect(bytes[2] == 4)
        var prefix = ByteWriter()
        prefix.bytes = [0x4B, 0x42, 3]
        prefix.string(batch.tenant)
        prefix.string(batch.provenance.topic)
        for v in [Int64(batch.provenance.partition), batch.provenance.offset, batch.droppedZeroValue, batch.droppedEmptyStack] {
            prefix.signed(v)
        }
        var position = prefix.bytes.count
        _ = try Varint.read(bytes, at: &position)  // the latest sample time
        let stringsStart = position
        let stringCount = try Varint.read(bytes, at: &position)
        for _ in 0..<stringCount { position += Int(try Varint.read(bytes, at: &position)) }
        return prefix.bytes + bytes[stringsStart..<position] + bytes[(position + 4)...]
    }

    /// Version 3 records (no latest time, no symbols' length) still decode, and read for rules as before.
    @Test func version3RecordsStillDecode() throws {
        let batch = Self.sampleBatch()
        let bytes = try Self.version3Bytes(batch)
        let expected = try BatchCodec.decode(BatchCodec.encode(batch))
        #expect(try BatchCodec.decode(bytes) == expected)
        for asked in [["main.work"], [], nil] {
            #expect(try BatchCodec.decodeForRules(bytes) { _, _ in asked } == RuleBatch(batch, functionNames: asked ?? []))
        }
    }

    /// Version 2 wrote no periods: such a record (version 3's without its period, version byte 2) decodes
    /// to the same batch with the periods unknown.
    @Test func version2RecordsDecodeWithoutPeriods() throws {
        let batch = Self.sampleBatch()
        var bytes = try Self.version3Bytes(batch)
        bytes[2] = 2
        bytes.removeLast(4)
        var expected = try BatchCodec.decode(BatchCodec.encode(batch))
        expected.seriesPeriods = []
        let decoded = try BatchCodec.decode(bytes)
        #expect(decoded == expected)
        #expect(decoded.period(ofSeries: 0) == 0)
    }

    /// What recording rules read of a record equals what they would take from the whole batch: stacks
    /// sharing callers (from one random call tree), functions met in the shared and in the own frames,
    /// recursion, names found nowhere, and no names at all.
    @Test func readingForRulesEqualsTheWholeBatch() throws {
        var random = SplitMix(state: 20_261_207)
        var batch = Self.sampleBatch()
        let names = ["", "main", "a", "b", "c", "d", "runtime.goexit"]
        batch.symbols.strings = StringTable(names + ["main.go"])
        batch.symbols.functions = (1..<names.count).map {
            FunctionSymbol(name: UInt32($0), systemName: UInt32($0), filename: 7, startLine: 0)
        }
        batch.symbols.frames = (0..<60).map { FrameSymbol(function: UInt32($0 % 6), line: Int64($0)) }
        var stacks = StackTable()
        var path: [UInt32] = []  // root first
        for _ in 0..<400 {
            path.removeLast(random.below(path.count + 1))
            for _ in 0...random.below(5) { path.append(UInt32(random.below(60))) }
            stacks.append(path.reversed())
        }
        batch.stacks = stacks
        batch.sampleStacks = (0..<400).map { UInt32($0) }
        batch.sampleSeries = batch.sampleStacks.map { _ in 0 }
        batch.sampleValues = batch.sampleStacks.map { Int64($0) }
        batch.sampleTimes = batch.sampleStacks.map { Int64($0) * 1_000_000 }
        batch.sampleSpans = batch.sampleStacks.map { _ in 0 }
        let bytes = BatchCodec.encode(batch)
        for asked in [["a"], ["runtime.goexit", "main", "b"], ["d", "nowhere"], ["nowhere"], []] {
            let read = try BatchCodec.decodeForRules(bytes) { tenant, series in
                #expect(tenant == "anonymous")
                #expect(series == batch.series)
                return asked
            }
            #expect(read == RuleBatch(batch, functionNames: asked))
            if let a = asked.firstIndex(of: "a") {
                #expect(read.stacks(through: a).contains(true) && read.stacks(through: a).contains(false))
            }
        }
    }

    /// A record no rule selects a series of is read without its samples, and still tells the latest
    /// sample time (the ruler's watermark moves on); the full decoder checks that time against the samples.
    @Test func unselectedRecordsGiveTheirLatestTimeWithoutSamples() throws {
        let batch = Self.sampleBatch()
        var bytes = BatchCodec.encode(batch)
        let read = try BatchCodec.decodeForRules(bytes) { _, _ in nil }
        #expect(read.series == batch.series)
        #expect(read.sampleCount == 0)
        #expect(read.latestSampleTime == 1_700_000_000_000_000_000)
        var empty = batch
        (empty.sampleSeries, empty.sampleStacks, empty.sampleValues, empty.sampleTimes, empty.sampleSpans) = ([], [], [], [], [])
        #expect(try BatchCodec.decodeForRules(BatchCodec.encode(empty)) { _, _ in nil }.latestSampleTime == nil)
        // The latest time follows the dropped counts (2 and 1: a byte each) after tenant and provenance.
        let at = 3 + 1 + "anonymous".utf8.count + 1 + "kiln.profiles.raw".utf8.count + 1 + 1 + 1 + 1
        var position = at
        #expect(try Varint.read(bytes, at: &position) == Varint.zigzag(1_700_000_000_000_000_000))
        bytes[at] ^= 2  // a different time of the same length
        #expect(throws: RecordDecodingError.self) { try BatchCodec.decode(bytes) }
        #expect(throws: RecordDecodingError.self) { try BatchCodec.decodeForRules(bytes) { _, _ in [] } }
    }

    @Test func outOfRangeReferencesAreRejected() throws {
        var batch = Self.sampleBatch()
        batch.sampleStacks[1] = 7
        #expect(throws: RecordDecodingError("sample stack 7 is out of the stack table (2 entries)")) {
            try BatchCodec.decode(BatchCodec.encode(batch))
        }
    }
}

/// The byte-packed string table: every string and its bytes come back, non-ASCII and empty ones
/// included; invalid UTF-8 is repaired as `String(decoding:as:)` repairs it.
@Suite struct StringTableTests {
    @Test func keepsEveryStringAndItsBytes() {
        let texts = ["", "main.work", "日本語.関数", "a\u{0}b", String(repeating: "x", count: 300), "", "é"]
        let table = StringTable(texts)
        #expect(table.count == texts.count)
        #expect(Array(table) == texts)
        for (i, text) in texts.enumerated() {
            #expect(table.byteRange(i).count == text.utf8.count)
            #expect(table.withUTF8(i) { Array($0) } == Array(text.utf8))
        }
        #expect(table == StringTable(texts))
        #expect(table != StringTable(texts.dropLast()))
    }

    @Test func invalidUTF8IsRepairedLikeString() {
        // Invalid bytes after and inside the eight-byte ASCII fast path, and a cut-off sequence at the end.
        let cases: [[UInt8]] = [[0xFF], Array("abcdefghij".utf8) + [0x80, 0x41], Array("abc".utf8) + [0xE6, 0x97]]
        for bytes in cases {
            var table = StringTable()
            bytes.withUnsafeBufferPointer { table.appendRepairing($0) }
            #expect(bytes.withUnsafeBufferPointer { StringTable.isValidUTF8($0) } == false)
            #expect(table[0] == String(decoding: bytes, as: UTF8.self))
        }
        let valid = Array("0123456789abcdef✓".utf8)
        #expect(valid.withUnsafeBufferPointer { StringTable.isValidUTF8($0) })
    }

    /// A record whose string table holds invalid UTF-8 (a hostile or foreign producer) decodes to the
    /// repaired strings, as records did when each string was decoded into a `String`.
    @Test func recordStringsWithInvalidUTF8AreRepaired() throws {
        let batch = BatchCodecTests.sampleBatch()
        var bytes = BatchCodec.encode(batch)
        let name = Array("main.work".utf8)
        let at = try #require(bytes.indices.first { bytes[$0...].starts(with: name) })
        bytes[at + 4] = 0xFF
        let decoded = try BatchCodec.decode(bytes)
        #expect(decoded.symbols.strings[1] == String(decoding: [UInt8]("main".utf8) + [0xFF] + [UInt8]("work".utf8), as: UTF8.self))
        #expect(decoded.symbols.strings.withUTF8(1) { StringTable.isValidUTF8($0) })
        #expect(decoded.symbols.strings[2] == "main.main")
    }
}

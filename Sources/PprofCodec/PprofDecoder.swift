import CPrefetch
import CVarint

/// Decodes pprof (`perftools.profiles.Profile`, gzip or raw) into a `PprofProfile`, validating it the way
/// google/pprof's parser does (postDecode + CheckValid) and enforcing `PprofLimits`.
public struct PprofDecoder: Sendable {
    public var limits: PprofLimits

    public init(limits: PprofLimits = .default) {
        self.limits = limits
    }

    public func decode(_ bytes: [UInt8]) throws(PprofError) -> PprofProfile {
        let result: Result<PprofProfile, PprofError> = bytes.withUnsafeBytes { raw in
            do throws(PprofError) {
                if Gzip.isGzip(raw) {
                    return .success(try decodeRaw(Gzip.decompress(raw, limit: sizeCap)))
                }
                return .success(try decodeRaw(bytes))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Largest payload the decoder holds; offsets are stored as UInt32/Int32.
    private var sizeCap: Int { min(limits.maxDecompressedBytes, Int(Int32.max)) }

    /// Decodes an uncompressed protobuf payload; the profile keeps `raw` as its string arena.
    public func decodeRaw(_ raw: [UInt8]) throws(PprofError) -> PprofProfile {
        if raw.isEmpty { throw PprofError(.empty, "empty input (0 bytes)") }
        if raw.count > sizeCap {
            throw PprofError(.limit, "profile size \(raw.count) bytes exceeds the limit of \(sizeCap) bytes")
        }
        let result: Result<PprofProfile, PprofError> = raw.withUnsafeBufferPointer { buf in
            do throws(PprofError) {
                var state = DecodeState(base: buf.baseAddress!, count: buf.count, limits: limits)
                try state.scanTopLevel()
                var profile = try state.finish()
                profile.data = raw
                return .success(profile)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}

/// Maps pprof ids to table indices. Most producers number 1...N in order, which needs no hash table.
struct IDIndex {
    /// N when the ids are exactly 1...N in order, else -1.
    private(set) var denseCount: Int = -1
    private var map: [UInt64: Int32] = [:]

    init(ids: some Collection<UInt64>, what: String) throws(PprofError) {
        var isDense = true
        var i: UInt64 = 1
        for id in ids {
            if id != i {
                isDense = false
                break
            }
            i += 1
        }
        if isDense {
            denseCount = ids.count
            return
        }
        map.reserveCapacity(ids.count)
        var index: Int32 = 0
        for id in ids {
            if id == 0 { throw PprofError(.invalid, "found \(what) with reserved id 0") }
            if map.updateValue(index, forKey: id) != nil {
                throw PprofError(.invalid, "multiple \(what)s with the same id \(id)")
            }
            index += 1
        }
    }

    @inline(__always) func find(_ id: UInt64) -> Int32? {
        if denseCount >= 0 {
            return id >= 1 && id <= UInt64(denseCount) ? Int32(truncatingIfNeeded: id - 1) : nil
        }
        return map[id]
    }
}

/// Two passes over the payload: the first records where every message lives and reads the string table and
/// scalars; the second parses the tables and then the samples, resolving every reference to an index.
struct DecodeState {
    let base: UnsafePointer<UInt8>
    let count: Int
    let limits: PprofLimits

    var sampleSpans: [UInt32] = []  // start, end pairs
    var mappingSpans: [UInt32] = []
    var locationSpans: [UInt32] = []
    var functionSpans: [UInt32] = []
    var stringOffsets: [UInt32] = []
    var stringLengths: [UInt32] = []
    var truncatedStrings = 0
    var rawSampleTypes: [(Int64, Int64)] = []
    var rawPeriodType: (Int64, Int64)?
    var period: Int64 = 0
    var timeNanos: Int64 = 0
    var durationNanos: Int64 = 0
    var dropFrames: Int64 = 0
    var keepFrames: Int64 = 0
    var defaultSampleType: Int64 = 0
    var rawComments: [Int64] = []

    init(base: UnsafePointer<UInt8>, count: Int, limits: PprofLimits) {
        self.base = base
        self.count = count
        self.limits = limits
    }

    mutating func scanTopLevel() throws(PprofError) {
        var r = WireReader(base: base, pos: 0, end: count)
        while !r.atEnd {
            let (field, wire) = try r.key()
            switch field {
            case 1:
                guard wire == 2 else { throw wireMismatch("sample_type", field, got: wire, want: 2) }
                rawSampleTypes.append(try valueType(r.sub(r.lengthDelimited())))
            case 2:
                guard wire == 2 else { throw wireMismatch("sample", field, got: wire, want: 2) }
                let span = try r.lengthDelimited()
                sampleSpans.append(UInt32(span.lowerBound))
                sampleSpans.append(UInt32(span.upperBound))
                if sampleSpans.count / 2 > limits.maxSamples {
                    throw PprofError(.limit, "more than \(limits.maxSamples) samples (limit)")
                }
            case 3, 4, 5:
                guard wire == 2 else {
                    throw wireMismatch(["mapping", "location", "function"][Int(field) - 3], field, got: wire, want: 2)
                }
                let span = try r.lengthDelimited()
                let (start, end) = (UInt32(span.lowerBound), UInt32(span.upperBound))
                if field == 3 {
                    mappingSpans.append(start)
                    mappingSpans.append(end)
                } else if field == 4 {
                    locationSpans.append(start)
                    locationSpans.append(end)
                } else {
                    functionSpans.append(start)
                    functionSpans.append(end)
                }
            case 6:
                guard wire == 2 else { throw wireMismatch("string_table", field, got: wire, want: 2) }
                let span = try r.lengthDelimited()
                if stringOffsets.isEmpty && !span.isEmpty {
                    throw PprofError(.invalid, "string_table[0] must be the empty string")
                }
                var length = span.count
                if limits.maxSymbolLength > 0 && length > limits.maxSymbolLength {
                    length = limits.maxSymbolLength
                    // Cut back to a UTF-8 boundary: never leave a partial multi-byte sequence.
                    while length > 0 && base[span.lowerBound + length] & 0xC0 == 0x80 { length -= 1 }
                    truncatedStrings += 1
                }
                stringOffsets.append(UInt32(span.lowerBound))
                stringLengths.append(UInt32(length))
            case 7: dropFrames = try int64(&r, "drop_frames", field, wire)
            case 8: keepFrames = try int64(&r, "keep_frames", field, wire)
            case 9:
                // A second time_nanos means two profiles were concatenated (pprof rejects this too).
                if timeNanos != 0 { throw PprofError(.malformed, "concatenated profiles detected (time_nanos repeated)") }
                timeNanos = try int64(&r, "time_nanos", field, wire)
            case 10: durationNanos = try int64(&r, "duration_nanos", field, wire)
            case 11:
                guard wire == 2 else { throw wireMismatch("period_type", field, got: wire, want: 2) }
                rawPeriodType = try valueType(r.sub(r.lengthDelimited()))
            case 12: period = try int64(&r, "period", field, wire)
            case 13:
                try repeatedVarints(&r, "comment", field, wire) { rawComments.append(Int64(bitPattern: $0)) }
            case 14: defaultSampleType = try int64(&r, "default_sample_type", field, wire)
            default:
                try r.skip(wire: wire)
            }
        }
    }

    private func int64(_ r: inout WireReader, _ name: String, _ field: UInt64, _ wire: UInt8) throws(PprofError) -> Int64 {
        guard wire == 0 else { throw wireMismatch(name, field, got: wire, want: 0) }
        return Int64(bitPattern: try r.varint())
    }

    /// A repeated scalar, packed (wire type 2) or not (wire type 0).
    @inline(__always)
    private func repeatedVarints(
        _ r: inout WireReader, _ name: String, _ field: UInt64, _ wire: UInt8,
        _ body: (UInt64) throws(PprofError) -> Void
    ) throws(PprofError) {
        if wire == 2 {
            var p = r.sub(try r.lengthDelimited())
            while !p.atEnd { try body(p.varint()) }
        } else if wire == 0 {
            try body(r.varint())
        } else {
            throw wireMismatch(name, field, got: wire, want: 2)
        }
    }

    private func valueType(_ reader: WireReader) throws(PprofError) -> (Int64, Int64) {
        var r = reader
        var t: Int64 = 0
        var u: Int64 = 0
        while !r.atEnd {
            let (field, wire) = try r.key()
            switch field {
            case 1: t = try int64(&r, "ValueType.type", field, wire)
            case 2: u = try int64(&r, "ValueType.unit", field, wire)
            default: try r.skip(wire: wire)
            }
        }
        return (t, u)
    }

    private func str(_ i: Int64, _ what: @autoclosure () -> String) throws(PprofError) -> Int32 {
        guard i >= 0 && i < Int64(stringOffsets.count) else {
            throw PprofError(.invalid, "\(what()) references string \(i), but the string table has \(stringOffsets.count) entries")
        }
        return Int32(truncatingIfNeeded: i)
    }

    // MARK: second pass

    mutating func finish() throws(PprofError) -> PprofProfile {
        if stringOffsets.isEmpty {
            throw PprofError(.malformed, "missing string table (string 0 must be the empty string); not a pprof profile?")
        }
        var p = PprofProfile()
        p.stringOffsets = stringOffsets
        p.stringLengths = stringLengths
        p.truncatedStrings = truncatedStrings
        for (i, st) in rawSampleTypes.enumerated() {
            p.sampleTypes.append(PprofValueType(type: try str(st.0, "sample_type \(i)"), unit: try str(st.1, "sample_type \(i)")))
        }
        if let pt = rawPeriodType {
            p.periodType = PprofValueType(type: try str(pt.0, "period_type"), unit: try str(pt.1, "period_type"))
        }
        p.period = period
        p.timeNanos = timeNanos
        p.durationNanos = durationNanos
        p.dropFrames = try str(dropFrames, "drop_frames")
        p.keepFrames = try str(keepFrames, "keep_frames")
        p.defaultSampleType = try str(defaultSampleType, "default_sample_type")
        for c in rawComments { p.comments.append(try str(c, "comment")) }

        try parseMappings(&p)
        try parseFunctions(&p)
        try parseLocations(&p)
        try parseSamples(&p)
        return p
    }

    private func parseMappings(_ p: inout PprofProfile) throws(PprofError) {
        p.mappings.reserveCapacity(mappingSpans.count / 2)
        for k in stride(from: 0, to: mappingSpans.count, by: 2) {
            var r = WireReader(base: base, pos: Int(mappingSpans[k]), end: Int(mappingSpans[k + 1]))
            var m = PprofMapping(id: 0)
            var file: Int64 = 0
            var build: Int64 = 0
            while !r.atEnd {
                let (field, wire) = try r.key()
                if field >= 1 && field <= 10 {
                    guard wire == 0 else { throw wireMismatch("Mapping field", field, got: wire, want: 0) }
                    let v = try r.varint()
                    switch field {
                    case 1: m.id = v
                    case 2: m.memoryStart = v
                    case 3: m.memoryLimit = v
                    case 4: m.fileOffset = v
                    case 5: file = Int64(bitPattern: v)
                    case 6: build = Int64(bitPattern: v)
                    case 7: m.hasFunctions = v != 0
                    case 8: m.hasFilenames = v != 0
                    case 9: m.hasLineNumbers = v != 0
                    default: m.hasInlineFrames = v != 0
                    }
                } else {
                    try r.skip(wire: wire)
                }
            }
            m.filename = try str(file, "mapping \(m.id) filename")
            m.buildID = try str(build, "mapping \(m.id) build_id")
            p.mappings.append(m)
        }
    }

    private func parseFunctions(_ p: inout PprofProfile) throws(PprofError) {
        p.functions.reserveCapacity(functionSpans.count / 2)
        for k in stride(from: 0, to: functionSpans.count, by: 2) {
            var r = WireReader(base: base, pos: Int(functionSpans[k]), end: Int(functionSpans[k + 1]))
            var f = PprofFunction(id: 0)
            var name: Int64 = 0
            var sys: Int64 = 0
            var file: Int64 = 0
            while !r.atEnd {
                let (field, wire) = try r.key()
                if field >= 1 && field <= 5 {
                    guard wire == 0 else { throw wireMismatch("Function field", field, got: wire, want: 0) }
                    let v = try r.varint()
                    switch field {
                    case 1: f.id = v
                    case 2: name = Int64(bitPattern: v)
                    case 3: sys = Int64(bitPattern: v)
                    case 4: file = Int64(bitPattern: v)
                    default: f.startLine = Int64(bitPattern: v)
                    }
                } else {
                    try r.skip(wire: wire)
                }
            }
            f.name = try str(name, "function \(f.id) name")
            f.systemName = try str(sys, "function \(f.id) system_name")
            f.filename = try str(file, "function \(f.id) filename")
            p.functions.append(f)
        }
    }

    private func parseLocations(_ p: inout PprofProfile) throws(PprofError) {
        let mappingIndex = try IDIndex(ids: p.mappings.lazy.map(\.id), what: "mapping")
        let functionIndex = try IDIndex(ids: p.functions.lazy.map(\.id), what: "function")
        // Built locally and moved into `p` at the end: an append through `p` checks uniqueness each time.
        var locations = p.locations
        var lines = p.lines
        p.locations = []
        p.lines = []
        locations.reserveCapacity(locationSpans.count / 2)
        lines.reserveCapacity(locationSpans.count / 2)
        // Every line's function id, by line index: resolved per location once its id is known.
        var lineFunctionIDs: [UInt64] = []
        lineFunctionIDs.reserveCapacity(locationSpans.count / 2)
        for k in stride(from: 0, to: locationSpans.count, by: 2) {
            var r = WireReader(base: base, pos: Int(locationSpans[k]), end: Int(locationSpans[k + 1]))
            var loc = PprofLocation(id: 0, lineStart: Int32(truncatingIfNeeded: lines.count))
            var mappingID: UInt64 = 0
            while !r.atEnd {
                let (field, wire) = try r.key()
                switch field {
                case 1, 2, 3, 5:
                    guard wire == 0 else { throw wireMismatch("Location field", field, got: wire, want: 0) }
                    let v = try r.varint()
                    if field == 1 {
                        loc.id = v
                    } else if field == 2 {
                        mappingID = v
                    } else if field == 3 {
                        loc.address = v
                    } else {
                        loc.isFolded = v != 0
                    }
                case 4:
                    guard wire == 2 else { throw wireMismatch("Location.line", field, got: wire, want: 2) }
                    var lr = r.sub(try r.lengthDelimited())
                    var line = PprofLine(functionIndex: -1)
                    var fid: UInt64 = 0
                    while !lr.atEnd {
                        let (lf, lw) = try lr.key()
                        if lf >= 1 && lf <= 3 {
                            guard lw == 0 else { throw wireMismatch("Line field", lf, got: lw, want: 0) }
                            let v = try lr.varint()
                            if lf == 1 {
                                fid = v
                            } else if lf == 2 {
                                line.line = Int64(bitPattern: v)
                            } else {
                                line.column = Int64(bitPattern: v)
                            }
                        } else {
                            try lr.skip(wire: lw)
                        }
                    }
                    lineFunctionIDs.append(fid)
                    lines.append(line)
                default:
                    try r.skip(wire: wire)
                }
            }
            // The id is known only once the whole message is read, so references are resolved here.
            let lineStart = Int(loc.lineStart)
            for n in 0..<lines.count - lineStart {
                let fid = lineFunctionIDs[lineStart + n]
                guard fid != 0 else {
                    throw PprofError(.invalid, "location \(loc.id): line \(n + 1) references function 0 (reserved)")
                }
                guard let fi = functionIndex.find(fid) else {
                    throw PprofError(.invalid, "location \(loc.id): line \(n + 1) references unknown function \(fid)")
                }
                lines[lineStart + n].functionIndex = fi
            }
            loc.lineCount = Int32(truncatingIfNeeded: lines.count - lineStart)
            if mappingID != 0 {
                guard let mi = mappingIndex.find(mappingID) else {
                    throw PprofError(.invalid, "location \(loc.id) references unknown mapping \(mappingID)")
                }
                loc.mappingIndex = mi
            }
            locations.append(loc)
        }
        p.locations = locations
        p.lines = lines
    }

    private func parseSamples(_ p: inout PprofProfile) throws(PprofError) {
        let locationIndex = try IDIndex(ids: p.locations.lazy.map(\.id), what: "location")
        let n = sampleSpans.count / 2
        let nTypes = p.sampleTypes.count
        if nTypes == 0 && n > 0 {
            throw PprofError(.invalid, "profile has \(n) samples but no sample types")
        }
        let maxDepth = limits.maxStackDepth > 0 ? limits.maxStackDepth : Int.max
        let maxLabels = limits.maxLabelsPerSample > 0 ? limits.maxLabelsPerSample : Int.max
        let stringCount = Int64(stringOffsets.count)
        let tables = SmallVarints.tables  // once, not per sample: each read of a global checks its initialisation
        // Local arrays, moved into `p` at the end: appends in the loop then need no access through `p`.
        var sampleLocationStarts: [Int32] = []
        var sampleLabelStarts: [Int32] = []
        var values: [Int64] = []
        var labels: [PprofLabel] = []
        // Location indices are written through a pointer into uninitialised room for the worst case
        // (every id takes at least one byte of the samples' span), so nothing is zero-filled, copied
        // or grown; untouched room costs no memory pages.
        let bound = sampleSpans.isEmpty ? 0 : Int(sampleSpans[sampleSpans.count - 1] - sampleSpans[0])
        var locationCount = 0
        var truncated = 0
        var failure: PprofError?
        // Plus four: the vector reader stores four lanes at a time, up to three past its last id.
        let sampleLocations = [Int32](unsafeUninitializedCapacity: bound + 4) { room, initialized in
            let out = room.baseAddress!
            // Outputs of a known size are written through pointers as well: an append per value would
            // check the array's uniqueness and capacity each time.
            let valuesOut = UnsafeMutablePointer<Int64>.allocate(capacity: max(1, n * nTypes))
            let locationStartsOut = UnsafeMutablePointer<Int32>.allocate(capacity: n + 1)
            let labelStartsOut = UnsafeMutablePointer<Int32>.allocate(capacity: n + 1)
            defer {
                valuesOut.deallocate()
                locationStartsOut.deallocate()
                labelStartsOut.deallocate()
            }
            locationStartsOut[0] = 0
            labelStartsOut[0] = 0
            do throws(PprofError) {
                for s in 0..<n {
                    var r = WireReader(base: base, pos: Int(sampleSpans[2 * s]), end: Int(sampleSpans[2 * s + 1]))
                    // The payload is far larger than the core's caches, and waiting for each sample's
                    // bytes was a large part of this loop: a later sample's first two lines are loaded now.
                    if s &+ 8 < n {
                        let ahead: Int = Int(sampleSpans[2 &* (s &+ 8)])
                        kiln_prefetch(base + ahead)
                        kiln_prefetch(base + (ahead &+ 64))
                    }
                    var depth = 0
                    var valueCount = 0
                    var labelCount = 0
                    while !r.atEnd {
                        let (field, wire) = try r.key()
                        switch field {
                        case 1:
                            // The hot loop of decoding: ids read in place, resolved, stored through a pointer.
                            let ids: Range<Int>
                            if wire == 2 {
                                ids = try r.lengthDelimited()
                            } else if wire == 0 {
                                let at = r.pos
                                _ = try r.varint()
                                ids = at..<r.pos
                            } else {
                                throw wireMismatch("Sample.location_id", field, got: wire, want: 2)
                            }
                            if let fault = decodeLocationIDs(
                                ids, index: locationIndex, tables: tables, into: out, count: &locationCount,
                                depth: &depth, maxDepth: maxDepth)
                            {
                                switch fault {
                                case .unknown(let id):
                                    throw PprofError(
                                        .invalid,
                                        id == 0
                                            ? "sample \(s) references location 0 (reserved)"
                                            : "sample \(s) references unknown location \(id)")
                                case .malformed:
                                    // Re-read with the general reader for its exact message.
                                    var p = r.sub(ids)
                                    while !p.atEnd { _ = try p.varint() }
                                    throw PprofError(.malformed, "malformed protobuf: bad varint in Sample.location_id")
                                }
                            }
                        case 2:
                            try repeatedVarints(&r, "Sample.value", field, wire) { (v: UInt64) in
                                // Extra values are counted, not kept: the check after the sample names them.
                                if valueCount < nTypes { valuesOut[s &* nTypes &+ valueCount] = Int64(bitPattern: v) }
                                valueCount &+= 1
                            }
                        case 3:
                            guard wire == 2 else { throw wireMismatch("Sample.label", field, got: wire, want: 2) }
                            var lr = r.sub(try r.lengthDelimited())
                            var key: Int64 = 0
                            var sv: Int64 = 0
                            var num: Int64 = 0
                            var unit: Int64 = 0
                            while !lr.atEnd {
                                let (lf, lw) = try lr.key()
                                if lf >= 1 && lf <= 4 {
                                    guard lw == 0 else { throw wireMismatch("Label field", lf, got: lw, want: 0) }
                                    let v = Int64(bitPattern: try lr.varint())
                                    if lf == 1 { key = v } else if lf == 2 { sv = v } else if lf == 3 { num = v } else { unit = v }
                                } else {
                                    try lr.skip(wire: lw)
                                }
                            }
                            guard key >= 0 && key < stringCount, sv >= 0 && sv < stringCount, unit >= 0 && unit < stringCount else {
                                throw PprofError(
                                    .invalid, "sample \(s): label references a string outside the string table (\(stringCount) entries)")
                            }
                            // pprof ignores a label that carries neither a string nor a number nor a unit.
                            if sv == 0 && num == 0 && unit == 0 { continue }
                            labelCount += 1
                            if labelCount > maxLabels {
                                throw PprofError(.limit, "sample \(s) has more than \(maxLabels) labels (limit)")
                            }
                            labels.append(PprofLabel(key: Int32(key), str: Int32(sv), num: num, numUnit: Int32(unit)))
                        default:
                            try r.skip(wire: wire)
                        }
                    }
                    if valueCount != nTypes {
                        throw PprofError(.invalid, "sample \(s) has \(valueCount) values, but the profile has \(nTypes) sample types")
                    }
                    if depth > maxDepth { truncated += 1 }
                    locationStartsOut[s &+ 1] = Int32(truncatingIfNeeded: locationCount)
                    labelStartsOut[s &+ 1] = Int32(truncatingIfNeeded: labels.count)
                }
                values = Array(UnsafeBufferPointer(start: valuesOut, count: n * nTypes))
                sampleLocationStarts = Array(UnsafeBufferPointer(start: locationStartsOut, count: n + 1))
                sampleLabelStarts = Array(UnsafeBufferPointer(start: labelStartsOut, count: n + 1))
            } catch {
                failure = error
            }
            initialized = locationCount
        }
        if let failure { throw failure }
        p.sampleLocationStarts = sampleLocationStarts
        p.sampleLabelStarts = sampleLabelStarts
        p.sampleLocations = sampleLocations
        p.values = values
        p.labels = labels
        p.truncatedStacks = truncated
    }

    enum LocationIDFault {
        case unknown(UInt64)
        case malformed
    }

    /// Reads the location ids (varints) in `ids`, resolves each to its index and appends it to `out`
    /// at `count` while `depth < maxDepth` (deeper ids are counted, not kept). Returns what was wrong,
    /// if anything; `out` must have room for `ids.count` more entries.
    ///
    /// Every id is written, even past the depth limit (each takes at least one byte of `ids`, so the room
    /// suffices), and the count is clamped afterwards: no limit check per id. Dense ids of up to three
    /// bytes go four at a time through the vector reader (`kiln_small_varints`); the rest, and all ids on
    /// a CPU without it, are read here, those of up to three bytes without a loop.
    @inline(__always)
    private func decodeLocationIDs(
        _ ids: Range<Int>, index: IDIndex, tables: SmallVarints.Tables?, into out: UnsafeMutablePointer<Int32>,
        count: inout Int, depth: inout Int, maxDepth: Int
    ) -> LocationIDFault? {
        var p = base + ids.lowerBound
        let end = base + ids.upperBound
        let first = out + count
        var o = first
        let dense = index.denseCount
        var fault: LocationIDFault?
        if dense >= 0, let tables {
            // Four ids a step, no branch on each one's length; what it leaves the loop below finishes.
            var cursor: UnsafePointer<UInt8>? = p
            o += kiln_small_varints(
                &cursor, end, base + self.count, Int32(min(dense, 1 << 22)), o, tables.keys,
                tables.shuffles)
            p = cursor!
        }
        while p < end {
            var id: UInt64
            let b0 = p[0]
            if b0 < 0x80 {
                id = UInt64(b0)
                p += 1
            } else if p + 1 < end && p[1] < 0x80 {
                id = UInt64(b0 & 0x7f) | UInt64(p[1]) << 7
                p += 2
            } else if p + 2 < end && p[2] < 0x80 {
                id = UInt64(b0 & 0x7f) | UInt64(p[1] & 0x7f) << 7 | UInt64(p[2]) << 14
                p += 3
            } else {
                id = 0
                var shift: UInt64 = 0
                while true {
                    guard p < end, shift < 64 else { return .malformed }
                    let b = p[0]
                    p += 1
                    id |= UInt64(b & 0x7f) << shift
                    if b < 0x80 { break }
                    shift &+= 7
                }
            }
            // Dense ids (1...N) resolve by subtraction; one unsigned compare rejects 0 and ids past N.
            if dense >= 0 {
                let li = id &- 1
                if li >= UInt64(dense) {
                    fault = .unknown(id)
                    break
                }
                o.pointee = Int32(truncatingIfNeeded: li)
            } else {
                guard let li = index.find(id) else {
                    fault = .unknown(id)
                    break
                }
                o.pointee = li
            }
            o += 1
        }
        let read = o - first
        count += max(0, min(read, maxDepth - depth))
        depth += read
        return fault
    }
}

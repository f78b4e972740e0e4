import Foundation

/// Merges profiles the way google/pprof's `profile.Merge` does (what `go tool pprof -proto A B > OUT`
/// writes): samples with the same stack and labels are summed, all-zero samples dropped, and mappings,
/// functions and locations deduplicated by content (only the ones samples reference are kept, renumbered
/// 1...N in order of first use). Profiles are added one at a time, so callers need not hold them all.
///
/// Differences from pprof, on purpose: samples with an empty stack are kept (so totals are exactly the sum
/// of the inputs'), `time_nanos` is the earliest non-zero start, and drop_frames is not applied.
public struct PprofMerger: Sendable {
    private var strings = StringInterner()
    private var sampleTypes: [PprofValueType] = []
    private var periodType: PprofValueType?
    private var period: Int64 = 0
    private var timeNanos: Int64 = 0
    private var durationNanos: Int64 = 0
    private var dropFrames: Int32 = 0
    private var keepFrames: Int32 = 0
    private var comments: [Int32] = []
    private var defaultSampleType: Int32 = 0
    private var inputs = 0

    private var mappings: [PprofMapping] = []
    private var mappingKeys: [MappingKey: Int32] = [:]
    private var functions: [PprofFunction] = []
    private var functionKeys: [PprofFunction: Int32] = [:]
    private var locations: [PprofLocation] = []
    private var lines: [PprofLine] = []
    private var locationKeys: [LocationKey: Int32] = [:]
    private var samples = SampleTable()

    public init() {}

    public var profileCount: Int { inputs }

    private struct MappingKey: Hashable {
        var size: UInt64
        var offset: UInt64
        var buildIDOrFile: Int32
    }

    private struct LocationKey: Hashable {
        var address: UInt64
        var mapping: Int32
        var isFolded: Bool
        var lines: [Int64]
    }

    /// Adds one profile. Throws `.incompatible` if its sample or period types differ from the first's.
    public mutating func add(_ p: PprofProfile) throws(PprofError) {
        // Strings are interned on first use only, so the output holds just what it references.
        var stringMap = [Int32](repeating: -1, count: p.stringCount)
        func s(_ i: Int32) -> Int32 {
            if stringMap[Int(i)] >= 0 { return stringMap[Int(i)] }
            let m = p.data.withUnsafeBufferPointer { d in
                let o = Int(p.stringOffsets[Int(i)])
                return strings.intern(UnsafeBufferPointer(rebasing: d[o..<o + Int(p.stringLengths[Int(i)])]))
            }
            stringMap[Int(i)] = m
            return m
        }
        let types = p.sampleTypes.map { PprofValueType(type: s($0.type), unit: s($0.unit)) }
        let pt = p.periodType.map { PprofValueType(type: s($0.type), unit: s($0.unit)) } ?? PprofValueType(type: 0, unit: 0)
        if inputs == 0 {
            sampleTypes = types
            periodType = p.periodType == nil ? nil : pt
            dropFrames = s(p.dropFrames)
            keepFrames = s(p.keepFrames)
            samples.valuesPerSample = types.count
        } else {
            if pt != (periodType ?? PprofValueType(type: 0, unit: 0)) {
                throw PprofError(
                    .incompatible,
                    "incompatible period types \(describe([periodType ?? PprofValueType(type: 0, unit: 0)])) and \(describe([pt]))")
            }
            if types != sampleTypes {
                throw PprofError(.incompatible, "incompatible sample types \(describe(sampleTypes)) and \(describe(types))")
            }
        }
        inputs += 1
        if p.timeNanos != 0 && (timeNanos == 0 || p.timeNanos < timeNanos) { timeNanos = p.timeNanos }
        durationNanos &+= p.durationNanos
        period = max(period, p.period)
        for c in p.comments where !comments.contains(s(c)) { comments.append(s(c)) }
        if defaultSampleType == 0 { defaultSampleType = s(p.defaultSampleType) }

        var mappingMap = [Int32](repeating: -1, count: p.mappings.count)
        var addressShift = [UInt64](repeating: 0, count: p.mappings.count)
        func mapping(_ i: Int) -> Int32 {
            if mappingMap[i] >= 0 { return mappingMap[i] }
            let src = p.mappings[i]
            var size = src.memoryLimit &- src.memoryStart
            size = size &+ 0xfff
            size -= size % 0x1000
            let key = MappingKey(
                size: size, offset: src.fileOffset,
                buildIDOrFile: src.buildID != 0 && p.stringLengths[Int(src.buildID)] > 0
                    ? s(src.buildID)
                    : src.filename != 0 && p.stringLengths[Int(src.filename)] > 0 ? s(src.filename) : 0)
            if let existing = mappingKeys[key] {
                mappingMap[i] = existing
                addressShift[i] = mappings[Int(existing)].memoryStart &- src.memoryStart
                return existing
            }
            var m = src
            m.id = UInt64(mappings.count + 1)
            m.filename = s(src.filename)
            m.buildID = s(src.buildID)
            let index = Int32(mappings.count)
            mappings.append(m)
            mappingKeys[key] = index
            mappingMap[i] = index
            return index
        }
        // pprof keeps the first profile's first mapping first: it conventionally names the main binary.
        if mappings.isEmpty && !p.mappings.isEmpty { _ = mapping(0) }

        var functionMap = [Int32](repeating: -1, count: p.functions.count)
        func function(_ i: Int32) -> Int32 {
            if functionMap[Int(i)] >= 0 { return functionMap[Int(i)] }
            let src = p.functions[Int(i)]
            let f = PprofFunction(
                id: UInt64(functions.count + 1), name: s(src.name), systemName: s(src.systemName),
                filename: s(src.filename), startLine: src.startLine)
            var key = f
            key.id = 0
            if let existing = functionKeys[key] {
                functionMap[Int(i)] = existing
                return existing
            }
            let index = Int32(functions.count)
            functions.append(f)
            functionKeys[key] = index
            functionMap[Int(i)] = index
            return index
        }

        var locationMap = [Int32](repeating: -1, count: p.locations.count)
        var keyLines: [Int64] = []
        func location(_ i: Int32) -> Int32 {
            if locationMap[Int(i)] >= 0 { return locationMap[Int(i)] }
            let src = p.locations[Int(i)]
            var mi: Int32 = -1
            var address = src.address
            if src.mappingIndex >= 0 {
                mi = mapping(Int(src.mappingIndex))
                address = address &+ addressShift[Int(src.mappingIndex)]
            }
            keyLines.removeAll(keepingCapacity: true)
            let firstLine = lines.count
            for line in p.lines(of: Int(i)) {
                let f = function(line.functionIndex)
                keyLines.append(Int64(f))
                keyLines.append(line.line)
                keyLines.append(line.column)
                lines.append(PprofLine(functionIndex: f, line: line.line, column: line.column))
            }
            let key = LocationKey(
                address: mi >= 0 ? address &- mappings[Int(mi)].memoryStart : address, mapping: mi,
                isFolded: src.isFolded, lines: keyLines)
            if let existing = locationKeys[key] {
                lines.removeSubrange(firstLine...)
                locationMap[Int(i)] = existing
                return existing
            }
            let index = Int32(locations.count)
            locations.append(
                PprofLocation(
                    id: UInt64(index + 1), mappingIndex: mi, address: address,
                    lineStart: Int32(firstLine), lineCount: Int32(lines.count - firstLine),
                    isFolded: src.isFolded))
            locationKeys[key] = index
            locationMap[Int(i)] = index
            return index
        }

        let n = types.count
        var stack: [Int32] = []
        var labels: [PprofLabel] = []
        p.values.withUnsafeBufferPointer { values in
            for si in 0..<p.sampleCount {
                let v = UnsafeBufferPointer(rebasing: values[si * n..<(si + 1) * n])
                if !v.contains(where: { $0 != 0 }) { continue }
                stack.removeAll(keepingCapacity: true)
                for l in p.stack(si) { stack.append(location(l)) }
                labels.removeAll(keepingCapacity: true)
                for l in p.labels(si) {
                    labels.append(PprofLabel(key: s(l.key), str: s(l.str), num: l.num, numUnit: s(l.numUnit)))
                }
                // pprof compares label maps (key -> values in order); a stable sort by (kind, key) is the same.
                if labels.count > 1 {
                    labels = labels.enumerated().sorted { a, b in
                        (a.element.isNumeric ? 1 : 0, a.element.key, a.offset) < (b.element.isNumeric ? 1 : 0, b.element.key, b.offset)
                    }.map(\.element)
                }
                samples.add(stack: stack, labels: labels, values: v)
            }
        }
    }

    private func describe(_ types: [PprofValueType]) -> String {
        "[" + types.map { "\(strings.string($0.type))/\(strings.string($0.unit))" }.joined(separator: " ") + "]"
    }

    /// The merged profile. Merged samples whose values cancel out to all zeros are dropped.
    public func finish() -> PprofProfile {
        var p = PprofProfile(
            data: strings.arena, stringOffsets: strings.offsets, stringLengths: strings.lengths,
            sampleTypes: sampleTypes, periodType: periodType, period: period, timeNanos: timeNanos,
            durationNanos: durationNanos, dropFrames: dropFrames, keepFrames: keepFrames,
            comments: comments, defaultSampleType: defaultSampleType,
            mappings: mappings, locations: locations, lines: lines, functions: functions)
        samples.write(into: &p)
        return p
    }
}

/// Open-addressing string interner over one byte arena (no per-string allocation).
struct StringInterner: Sendable {
    var arena: [UInt8] = []
    var offsets: [UInt32] = []
    var lengths: [UInt32] = []
    private var hashes: [Int] = []
    private var slots = [Int32](repeating: -1, count: 1024)

    init() {
        _ = intern(UnsafeBufferPointer(start: nil, count: 0))
    }

    func string(_ i: Int32) -> String {
        let o = Int(offsets[Int(i)])
        return String(decoding: arena[o..<o + Int(lengths[Int(i)])], as: UTF8.self)
    }

    mutating func intern(_ bytes: UnsafeBufferPointer<UInt8>) -> Int32 {
        var h = Hasher()
        h.combine(bytes: UnsafeRawBufferPointer(bytes))
        let hash = h.finalize()
        let mask = slots.count - 1
        var i = hash & mask
        while true {
            let s = slots[i]
            if s < 0 { break }
            if hashes[Int(s)] == hash && Int(lengths[Int(s)]) == bytes.count {
                let o = Int(offsets[Int(s)])
                let same = arena.withUnsafeBufferPointer { a in
                    bytes.count == 0 || memcmp(a.baseAddress! + o, bytes.baseAddress!, bytes.count) == 0
                }
                if same { return s }
            }
            i = (i + 1) & mask
        }
        let index = Int32(offsets.count)
        offsets.append(UInt32(arena.count))
        lengths.append(UInt32(bytes.count))
        arena.append(contentsOf: bytes)
        hashes.append(hash)
        slots[i] = index
        if offsets.count * 2 > slots.count { rehash() }
        return index
    }

    private mutating func rehash() {
        slots = [Int32](repeating: -1, count: slots.count * 2)
        let mask = slots.count - 1
        for (index, hash) in hashes.enumerated() {
            var i = hash & mask
            while slots[i] >= 0 { i = (i + 1) & mask }
            slots[i] = Int32(index)
        }
    }
}

/// Merged samples keyed by (stack, labels), stored flat; open addressing over stored hashes.
struct SampleTable: Sendable {
    var valuesPerSample = 0
    private var stackStarts: [Int32] = [0]
    private var stacks: [Int32] = []
    private var labelStarts: [Int32] = [0]
    private var labels: [PprofLabel] = []
    private var values: [Int64] = []
    private var hashes: [Int] = []
    private var slots = [Int32](repeating: -1, count: 4096)

    mutating func add(stack: [Int32], labels newLabels: [PprofLabel], values v: UnsafeBufferPointer<Int64>) {
        var h = Hasher()
        stack.withUnsafeBytes { h.combine(bytes: $0) }
        for l in newLabels { h.combine(l) }
        let hash = h.finalize()
        let mask = slots.count - 1
        var i = hash & mask
        while true {
            let s = Int(slots[i])
            if s < 0 { break }
            if hashes[s] == hash
                && stacks[Int(stackStarts[s])..<Int(stackStarts[s + 1])].elementsEqual(stack)
                && labels[Int(labelStarts[s])..<Int(labelStarts[s + 1])].elementsEqual(newLabels)
            {
                let base = s * valuesPerSample
                for t in 0..<valuesPerSample { values[base + t] &+= v[t] }
                return
            }
            i = (i + 1) & mask
        }
        slots[i] = Int32(hashes.count)
        hashes.append(hash)
        stacks.append(contentsOf: stack)
        stackStarts.append(Int32(stacks.count))
        labels.append(contentsOf: newLabels)
        labelStarts.append(Int32(labels.count))
        values.append(contentsOf: v)
        if hashes.count * 2 > slots.count {
            slots = [Int32](repeating: -1, count: slots.count * 2)
            let mask = slots.count - 1
            for (index, hash) in hashes.enumerated() {
                var j = hash & mask
                while slots[j] >= 0 { j = (j + 1) & mask }
                slots[j] = Int32(index)
            }
        }
    }

    func write(into p: inout PprofProfile) {
        let n = valuesPerSample
        let count = hashes.count
        var keep = [Bool](repeating: true, count: count)
        var dropped = 0
        for s in 0..<count where !values[s * n..<(s + 1) * n].contains(where: { $0 != 0 }) {
            keep[s] = false
            dropped += 1
        }
        if dropped == 0 {
            p.sampleLocationStarts = stackStarts
            p.sampleLocations = stacks
            p.sampleLabelStarts = labelStarts
            p.labels = labels
            p.values = values
            return
        }
        p.sampleLocationStarts = [0]
        p.sampleLabelStarts = [0]
        for s in 0..<count where keep[s] {
            p.sampleLocations += stacks[Int(stackStarts[s])..<Int(stackStarts[s + 1])]
            p.sampleLocationStarts.append(Int32(p.sampleLocations.count))
            p.labels += labels[Int(labelStarts[s])..<Int(labelStarts[s + 1])]
            p.sampleLabelStarts.append(Int32(p.labels.count))
            p.values += values[s * n..<(s + 1) * n]
        }
    }
}

import KilnFoundation
import PprofCodec
import ProfileModel

/// What `OTLPProfilesDecoder` gathers into one pprof profile: the OTLP profiles of one scope with the same
/// series labels, time, duration and period, one sample type each (a column), their samples merged by
/// stack, attributes and link — which turns the per-type profiles an exporter makes of one pprof back
/// into that pprof.
struct ProfileUnit {
    struct Key: Hashable {
        var labels: LabelSet
        var start: Int64
        var duration: Int64
        var periodType: OTLPWireRequest.ValueType?
        var period: Int64
    }

    struct Member {
        var profile: Int
        var column: Int
        /// (sample index, value), in sample order.
        var events: [(Int32, Int64)]
    }

    var key: Key
    var columns: [OTLPWireRequest.ValueType] = []
    var members: [Member] = []
}

/// Checks every index an OTLP profile follows, once per dictionary entry per request, so that building
/// pprof afterwards cannot meet a dangling one; and turns attributes into label text.
struct DictionaryCheck {
    let wire: OTLPWireRequest
    /// Per entry: 0 unchecked, 1 valid, 2 invalid (the problem is found again when asked).
    private var stackState: [UInt8]
    private var locationState: [UInt8]
    /// Sample attributes and links as labels, resolved once when first checked (nil: not checked yet), so
    /// building pprof reads them instead of resolving them again for every sample.
    private(set) var sampleLabels: [Label?]
    private(set) var linkLabels: [(span: String, trace: String)?]

    init(_ wire: OTLPWireRequest) {
        self.wire = wire
        stackState = [UInt8](repeating: 0, count: wire.stackCount)
        locationState = [UInt8](repeating: 0, count: wire.locations.count)
        sampleLabels = [Label?](repeating: nil, count: wire.attributes.count)
        linkLabels = [(span: String, trace: String)?](repeating: nil, count: wire.links.count)
    }

    func string(_ index: Int32, _ what: @autoclosure () -> String) throws(OTLPProblem) -> String {
        let bytes = try stringBytes(index, what())
        return String(decoding: bytes, as: UTF8.self)
    }

    func stringBytes(_ index: Int32, _ what: @autoclosure () -> String) throws(OTLPProblem) -> ArraySlice<UInt8> {
        guard index >= 0, Int(index) < wire.strings.count else {
            if index == 0 { return [] }  // an empty string table still has its implied "" at 0
            throw OTLPProblem("\(what()) points at string \(index), beyond string_table (\(wire.strings.count) entries)")
        }
        return wire.bytes(wire.strings[Int(index)])
    }

    /// An attribute value as label text. Arrays and maps have no single text a label could hold.
    func text(_ value: OTLPWireRequest.Value, key: String) throws(OTLPProblem) -> String {
        switch value {
        case .none: return ""
        case .string(let span): return String(decoding: wire.bytes(span), as: UTF8.self)
        case .stringIndex(let i): return try string(i, "the value of attribute \"\(clip(key))\"")
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .bytes(let span): return Hex.string(wire.bytes(span))
        case .composite: throw OTLPProblem("attribute \"\(clip(key))\" has an array or map value, which cannot be a label value")
        }
    }

    /// A resource or scope attribute as (name, text).
    func keyValue(_ kv: OTLPWireRequest.KeyValue) throws(OTLPProblem) -> (String, String) {
        let key =
            kv.key.count > 0 ? String(decoding: wire.bytes(kv.key), as: UTF8.self) : try string(kv.keyIndex, "an attribute's key_strindex")
        return (key, try text(kv.value, key: key))
    }

    /// Attribute `index` of the dictionary as (name, text).
    func attribute(_ index: Int32) throws(OTLPProblem) -> (String, String) {
        guard index >= 0, Int(index) < wire.attributes.count else {
            throw OTLPProblem("attribute index \(index) is beyond attribute_table (\(wire.attributes.count) entries)")
        }
        let entry = wire.attributes[Int(index)]
        let key = try string(entry.key, "attribute_table[\(index)].key_strindex")
        return (key, try text(entry.value, key: key))
    }

    /// A sample attribute as a pprof label: its key a valid label name, a number with a unit kept as a
    /// numeric label.
    enum Label {
        case text(key: String, value: String)
        case number(key: String, value: Int64, unit: Int32)
        case none
    }

    func sampleLabel(_ index: Int32) throws(OTLPProblem) -> Label {
        let (rawKey, text) = try attribute(index)
        guard let key = LabelRules.sanitizedName(rawKey) else {
            throw OTLPProblem("sample attribute \"\(clip(rawKey))\" is not a valid label name")
        }
        let entry = wire.attributes[Int(index)]
        if case .int(let number) = entry.value, entry.unit != 0 {
            _ = try stringBytes(entry.unit, "attribute_table[\(index)].unit_strindex")
            return .number(key: key, value: number, unit: entry.unit)
        }
        return text.isEmpty ? .none : .text(key: key, value: text)
    }

    /// A link's (span ID, trace ID) as hex; empty when absent.
    func link(_ index: Int32) throws(OTLPProblem) -> (span: String, trace: String) {
        guard index > 0, Int(index) < wire.links.count else {
            throw OTLPProblem("a sample's link_index \(index) is beyond link_table (\(wire.links.count) entries)")
        }
        let link = wire.links[Int(index)]
        guard link.spanID.count == 0 || link.spanID.count == 8 else {
            throw OTLPProblem("link_table[\(index)].span_id has \(link.spanID.count) bytes, not 8")
        }
        guard link.traceID.count == 0 || link.traceID.count == 16 else {
            throw OTLPProblem("link_table[\(index)].trace_id has \(link.traceID.count) bytes, not 16")
        }
        return (Hex.string(wire.bytes(link.spanID)), Hex.string(wire.bytes(link.traceID)))
    }

    /// Checks everything profile `p` refers to.
    mutating func check(profile p: Int) throws(OTLPProblem) {
        let profile = wire.profiles[p]
        guard let type = profile.sampleType else { throw OTLPProblem("the profile has no sample_type") }
        _ = try stringBytes(type.type, "sample_type.type_strindex")
        _ = try stringBytes(type.unit, "sample_type.unit_strindex")
        if let period = profile.periodType {
            _ = try stringBytes(period.type, "period_type.type_strindex")
            _ = try stringBytes(period.unit, "period_type.unit_strindex")
        }
        for s in profile.samples.range {
            let sample = wire.samples[s]
            guard sample.stack >= 0, Int(sample.stack) < wire.stackCount || sample.stack == 0 else {
                throw OTLPProblem("a sample's stack_index \(sample.stack) is beyond stack_table (\(wire.stackCount) entries)")
            }
            if Int(sample.stack) < wire.stackCount, stackState[Int(sample.stack)] != 1 {
                for location in wire.stack(Int(sample.stack))
                where location < 0 || Int(location) >= locationState.count || locationState[Int(location)] != 1 {
                    try checkLocation(location)
                }
                stackState[Int(sample.stack)] = 1
            }
            for a in wire.attributeIndices[sample.attributes.range]
            where a < 0 || Int(a) >= sampleLabels.count || sampleLabels[Int(a)] == nil {
                let label = try sampleLabel(a)
                sampleLabels[Int(a)] = label
            }
            if sample.link != 0, sample.link < 0 || Int(sample.link) >= linkLabels.count || linkLabels[Int(sample.link)] == nil {
                let ids = try link(sample.link)
                linkLabels[Int(sample.link)] = ids
            }
        }
    }

    private mutating func checkLocation(_ index: Int32) throws(OTLPProblem) {
        guard index >= 0, Int(index) < wire.locations.count else {
            throw OTLPProblem("location index \(index) is beyond location_table (\(wire.locations.count) entries)")
        }
        guard locationState[Int(index)] != 1 else { return }
        let location = wire.locations[Int(index)]
        if location.mapping != 0 {
            guard location.mapping > 0, Int(location.mapping) < wire.mappings.count else {
                throw OTLPProblem("mapping index \(location.mapping) is beyond mapping_table (\(wire.mappings.count) entries)")
            }
            let mapping = wire.mappings[Int(location.mapping)]
            _ = try stringBytes(mapping.filename, "mapping_table[\(location.mapping)].filename_strindex")
            for a in wire.attributeIndices[mapping.attributes.range] { _ = try attribute(a) }
        }
        for line in wire.lines[location.lines.range] {
            guard line.function >= 0, Int(line.function) < wire.functions.count else {
                throw OTLPProblem("function index \(line.function) is beyond function_table (\(wire.functions.count) entries)")
            }
            let f = wire.functions[Int(line.function)]
            _ = try stringBytes(f.name, "function_table[\(line.function)].name_strindex")
            _ = try stringBytes(f.systemName, "function_table[\(line.function)].system_name_strindex")
            _ = try stringBytes(f.filename, "function_table[\(line.function)].filename_strindex")
        }
        locationState[Int(index)] = 1
    }
}

/// Builds one pprof profile per `ProfileUnit` from a checked request. Only the dictionary entries the
/// unit's samples reach are copied, each once.
struct PprofAssembler {
    let check: DictionaryCheck
    /// The checked request (a stored copy: reaching it through `check` on every access costs a retain per array).
    private let wire: OTLPWireRequest

    /// Dictionary index → index in the profile being built (-1: not copied yet), and what to reset.
    private var stringMap: [Int32]
    private var functionMap: [Int32]
    private var locationMap: [Int32]
    private var mappingMap: [Int32]
    private var touched: [(table: UInt8, index: Int32)] = []

    private var profile = PprofProfile()
    private var extraStrings: [String: Int32] = [:]

    /// Mapping attributes that carry a build ID, most specific first.
    static let buildIDKeys = ["process.executable.build_id.gnu", "process.executable.build_id.go", "process.executable.build_id.htlhash"]

    init(check: DictionaryCheck) {
        self.check = check
        wire = check.wire
        stringMap = [Int32](repeating: -1, count: check.wire.strings.count)
        functionMap = [Int32](repeating: -1, count: check.wire.functions.count)
        locationMap = [Int32](repeating: -1, count: check.wire.locations.count)
        mappingMap = [Int32](repeating: -1, count: check.wire.mappings.count)
    }

    private mutating func begin() {
        for (table, index) in touched {
            switch table {
            case 0: stringMap[Int(index)] = -1
            case 1: functionMap[Int(index)] = -1
            case 2: locationMap[Int(index)] = -1
            default: mappingMap[Int(index)] = -1
            }
        }
        touched.removeAll(keepingCapacity: true)
        profile = PprofProfile()
        extraStrings = [:]
    }

    private mutating func append(_ bytes: some Collection<UInt8>) -> Int32 {
        let i = Int32(profile.stringOffsets.count)
        profile.stringOffsets.append(UInt32(profile.data.count))
        profile.stringLengths.append(UInt32(bytes.count))
        profile.data.append(contentsOf: bytes)
        return i
    }

    /// A string of the dictionary (already checked).
    private mutating func string(_ index: Int32) -> Int32 {
        guard index > 0, Int(index) < stringMap.count else { return 0 }
        let known = stringMap[Int(index)]
        if known >= 0 { return known }
        let out = append(wire.bytes(wire.strings[Int(index)]))
        stringMap[Int(index)] = out
        touched.append((0, index))
        return out
    }

    /// A string made here (label keys, hex IDs, attribute values).
    private mutating func string(_ text: String) -> Int32 {
        if text.isEmpty { return 0 }
        if let i = extraStrings[text] { return i }
        let i = append(text.utf8)
        extraStrings[text] = i
        return i
    }

    private struct RowKey: Hashable {
        var stack: Int32
        var link: Int32
        var attributes: ArraySlice<Int32>
    }

    /// The unit as pprof bytes.
    mutating func build(_ unit: ProfileUnit) throws(OTLPProblem) -> [UInt8] {
        begin()
        let width = unit.columns.count
        profile.sampleTypes = unit.columns.map { PprofValueType(type: string($0.type), unit: string($0.unit)) }
        if let period = unit.key.periodType { profile.periodType = PprofValueType(type: string(period.type), unit: string(period.unit)) }
        profile.period = unit.key.period
        profile.timeNanos = unit.key.start
        profile.durationNanos = unit.key.duration
        var rows: [RowKey: Int] = [:]
        for member in unit.members {
            for (s, value) in member.events {
                let sample = wire.samples[Int(s)]
                if width > 1 {
                    let key = RowKey(stack: sample.stack, link: sample.link, attributes: wire.attributeIndices[sample.attributes.range])
                    if let row = rows[key] {
                        let (sum, overflow) = profile.values[row * width + member.column].addingReportingOverflow(value)
                        guard !overflow else { throw OTLPProblem("samples of one stack add up beyond 64 bits") }
                        profile.values[row * width + member.column] = sum
                        continue
                    }
                    rows[key] = profile.sampleCount
                }
                addRow(sample)
                let at = profile.values.count
                profile.values.append(contentsOf: repeatElement(0, count: width))
                profile.values[at + member.column] = value
            }
        }
        return PprofEncoder.encode(profile)
    }

    /// Adds one sample of a checked profile: its attributes and link are in `check`'s label caches.
    private mutating func addRow(_ sample: OTLPWireRequest.Sample) {
        if Int(sample.stack) < wire.stackCount {
            for index in wire.stack(Int(sample.stack)) { profile.sampleLocations.append(location(index)) }
        }
        profile.sampleLocationStarts.append(Int32(profile.sampleLocations.count))
        for a in wire.attributeIndices[sample.attributes.range] {
            switch check.sampleLabels[Int(a)]! {
            case .text(let key, let value): profile.labels.append(PprofLabel(key: string(key), str: string(value)))
            case .number(let key, let value, let unit):
                profile.labels.append(PprofLabel(key: string(key), str: 0, num: value, numUnit: string(unit)))
            case .none: break
            }
        }
        if sample.link != 0 {
            let (span, trace) = check.linkLabels[Int(sample.link)]!
            if !span.isEmpty { profile.labels.append(PprofLabel(key: string(LabelName.spanID), str: string(span))) }
            if !trace.isEmpty { profile.labels.append(PprofLabel(key: string(LabelName.traceID), str: string(trace))) }
        }
        profile.sampleLabelStarts.append(Int32(profile.labels.count))
    }

    private mutating func location(_ index: Int32) -> Int32 {
        let known = locationMap[Int(index)]
        if known >= 0 { return known }
        let source = wire.locations[Int(index)]
        let mapping: Int32 = source.mapping > 0 ? self.mapping(source.mapping) : -1
        let lineStart = Int32(profile.lines.count)
        for line in wire.lines[source.lines.range] {
            profile.lines.append(PprofLine(functionIndex: function(line.function), line: line.line, column: line.column))
        }
        let out = Int32(profile.locations.count)
        profile.locations.append(
            PprofLocation(
                id: UInt64(out) + 1, mappingIndex: mapping, address: source.address, lineStart: lineStart,
                lineCount: source.lines.count))
        locationMap[Int(index)] = out
        touched.append((2, index))
        return out
    }

    private mutating func function(_ index: Int32) -> Int32 {
        let known = functionMap[Int(index)]
        if known >= 0 { return known }
        let source = wire.functions[Int(index)]
        let out = Int32(profile.functions.count)
        profile.functions.append(
            PprofFunction(
                id: UInt64(out) + 1, name: string(source.name), systemName: string(source.systemName),
                filename: string(source.filename), startLine: source.startLine))
        functionMap[Int(index)] = out
        touched.append((1, index))
        return out
    }

    private mutating func mapping(_ index: Int32) -> Int32 {
        let known = mappingMap[Int(index)]
        if known >= 0 { return known }
        let source = wire.mappings[Int(index)]
        var buildID = ""
        var rank = Self.buildIDKeys.count
        for a in wire.attributeIndices[source.attributes.range] {
            guard let (key, value) = try? check.attribute(a) else { continue }
            if let r = Self.buildIDKeys.firstIndex(of: key), r < rank, !value.isEmpty { (buildID, rank) = (value, r) }
        }
        let out = Int32(profile.mappings.count)
        profile.mappings.append(
            PprofMapping(
                id: UInt64(out) + 1, memoryStart: source.memoryStart, memoryLimit: source.memoryLimit,
                fileOffset: source.fileOffset, filename: string(source.filename), buildID: string(buildID)))
        mappingMap[Int(index)] = out
        touched.append((3, index))
        return out
    }
}

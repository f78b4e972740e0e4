import APICommon
import Foundation
import IngestAPI
import KilnFoundation
import KilnProtos
import PprofCodec
import ProfileModel

/// Builds pprof profiles from samples of an OTLP request, one profile at a time: `begin`, `addSample` for
/// each sample, `finish`. Only the dictionary entries the profile's samples reach are copied, each once;
/// every index is checked before it is followed, so a hostile request ends in an `OTLPProblem`, never a
/// crash.
struct PprofAssembler {
    private let strings: [String]
    private let functionTable: [Opentelemetry_Proto_Profiles_V1development_Function]
    private let locationTable: [Opentelemetry_Proto_Profiles_V1development_Location]
    private let mappingTable: [Opentelemetry_Proto_Profiles_V1development_Mapping]
    private let stackTable: [Opentelemetry_Proto_Profiles_V1development_Stack]
    private let attributeTable: [Opentelemetry_Proto_Profiles_V1development_KeyValueAndUnit]
    private let linkTable: [Opentelemetry_Proto_Profiles_V1development_Link]

    /// Dictionary index → index in the profile being built (-1: not copied yet), and what to reset.
    private var functionMap: [Int32]
    private var locationMap: [Int32]
    private var mappingMap: [Int32]
    private var touched: [(table: UInt8, index: Int32)] = []

    private var profile = PprofProfile()
    private var stringIndex: [String: Int32] = [:]

    /// Mapping attributes that carry a build ID, most specific first.
    static let buildIDKeys = ["process.executable.build_id.gnu", "process.executable.build_id.go", "process.executable.build_id.htlhash"]

    init(dictionary: OTLPDictionary) {
        strings = dictionary.stringTable
        functionTable = dictionary.functionTable
        locationTable = dictionary.locationTable
        mappingTable = dictionary.mappingTable
        stackTable = dictionary.stackTable
        attributeTable = dictionary.attributeTable
        linkTable = dictionary.linkTable
        functionMap = [Int32](repeating: -1, count: functionTable.count)
        locationMap = [Int32](repeating: -1, count: locationTable.count)
        mappingMap = [Int32](repeating: -1, count: mappingTable.count)
    }

    // MARK: Attributes

    func string(_ index: Int32, _ what: @autoclosure () -> String) throws(OTLPProblem) -> String {
        guard index >= 0, Int(index) < strings.count else {
            if index == 0 { return "" }  // an empty string table still has its implied "" at 0
            throw OTLPProblem("\(what()) points at string \(index), beyond string_table (\(strings.count) entries)")
        }
        return strings[Int(index)]
    }

    /// A resource or scope attribute as (name, text).
    func keyValue(_ kv: OTLPKeyValue) throws(OTLPProblem) -> (String, String) {
        let key = kv.key.isEmpty ? try string(kv.keyStrindex, "an attribute's key_strindex") : kv.key
        return (key, try text(kv.value, key: key))
    }

    /// Attribute `index` of the dictionary as (name, text).
    func attribute(_ index: Int32) throws(OTLPProblem) -> (String, String) {
        let entry = try attributeEntry(index)
        let key = try string(entry.keyStrindex, "attribute_table[\(index)].key_strindex")
        return (key, try text(entry.value, key: key))
    }

    private func attributeEntry(_ index: Int32) throws(OTLPProblem) -> Opentelemetry_Proto_Profiles_V1development_KeyValueAndUnit {
        guard index >= 0, Int(index) < attributeTable.count else {
            throw OTLPProblem("attribute index \(index) is beyond attribute_table (\(attributeTable.count) entries)")
        }
        return attributeTable[Int(index)]
    }

    /// An attribute value as label text. Arrays and maps have no single text a label could hold.
    func text(_ value: OTLPAnyValue, key: String) throws(OTLPProblem) -> String {
        switch value.value {
        case nil: return ""
        case .stringValue(let s): return s
        case .stringValueStrindex(let i): return try string(i, "the value of attribute \"\(clip(key))\"")
        case .boolValue(let b): return b ? "true" : "false"
        case .intValue(let i): return String(i)
        case .doubleValue(let d): return String(d)
        case .bytesValue(let bytes): return Hex.string(bytes)
        case .arrayValue, .kvlistValue:
            throw OTLPProblem("attribute \"\(clip(key))\" has an array or map value, which cannot be a label value")
        }
    }

    // MARK: One profile

    mutating func begin() {
        for (table, index) in touched {
            switch table {
            case 0: functionMap[Int(index)] = -1
            case 1: locationMap[Int(index)] = -1
            default: mappingMap[Int(index)] = -1
            }
        }
        touched.removeAll(keepingCapacity: true)
        profile = PprofProfile()
        stringIndex = ["": 0]
    }

    private mutating func intern(_ text: String) -> Int32 {
        if let i = stringIndex[text] { return i }
        let i = Int32(profile.stringOffsets.count)
        profile.stringOffsets.append(UInt32(profile.data.count))
        profile.stringLengths.append(UInt32(text.utf8.count))
        profile.data.append(contentsOf: text.utf8)
        stringIndex[text] = i
        return i
    }

    private mutating func internString(_ index: Int32, _ what: @autoclosure () -> String) throws(OTLPProblem) -> Int32 {
        intern(try string(index, what()))
    }

    mutating func addSample(_ sample: Opentelemetry_Proto_Profiles_V1development_Sample, value: Int64) throws(OTLPProblem) {
        guard sample.stackIndex >= 0, Int(sample.stackIndex) < stackTable.count || sample.stackIndex == 0 else {
            throw OTLPProblem("a sample's stack_index \(sample.stackIndex) is beyond stack_table (\(stackTable.count) entries)")
        }
        if sample.stackIndex != 0 || !stackTable.isEmpty {
            for index in stackTable[Int(sample.stackIndex)].locationIndices {
                profile.sampleLocations.append(try location(index))
            }
        }
        profile.sampleLocationStarts.append(Int32(profile.sampleLocations.count))
        profile.values.append(value)

        for index in sample.attributeIndices {
            let entry = try attributeEntry(index)
            let rawKey = try string(entry.keyStrindex, "attribute_table[\(index)].key_strindex")
            guard let key = LabelRules.sanitizedName(rawKey) else {
                throw OTLPProblem("sample attribute \"\(clip(rawKey))\" is not a valid label name")
            }
            if case .intValue(let number)? = entry.value.value, entry.unitStrindex != 0 {
                let unit = try internString(entry.unitStrindex, "attribute_table[\(index)].unit_strindex")
                profile.labels.append(PprofLabel(key: intern(key), str: 0, num: number, numUnit: unit))
                continue
            }
            let text = try text(entry.value, key: rawKey)
            guard !text.isEmpty else { continue }
            profile.labels.append(PprofLabel(key: intern(key), str: intern(text)))
        }
        if sample.linkIndex != 0 {
            guard sample.linkIndex > 0, Int(sample.linkIndex) < linkTable.count else {
                throw OTLPProblem("a sample's link_index \(sample.linkIndex) is beyond link_table (\(linkTable.count) entries)")
            }
            let link = linkTable[Int(sample.linkIndex)]
            if !link.spanID.isEmpty {
                guard link.spanID.count == 8 else {
                    throw OTLPProblem("link_table[\(sample.linkIndex)].span_id has \(link.spanID.count) bytes, not 8")
                }
                profile.labels.append(PprofLabel(key: intern(LabelName.spanID), str: intern(Hex.string(link.spanID))))
            }
            if !link.traceID.isEmpty {
                guard link.traceID.count == 16 else {
                    throw OTLPProblem("link_table[\(sample.linkIndex)].trace_id has \(link.traceID.count) bytes, not 16")
                }
                profile.labels.append(PprofLabel(key: intern(LabelName.traceID), str: intern(Hex.string(link.traceID))))
            }
        }
        profile.sampleLabelStarts.append(Int32(profile.labels.count))
    }

    private mutating func location(_ index: Int32) throws(OTLPProblem) -> Int32 {
        guard index >= 0, Int(index) < locationTable.count else {
            throw OTLPProblem("location index \(index) is beyond location_table (\(locationTable.count) entries)")
        }
        let known = locationMap[Int(index)]
        if known >= 0 { return known }
        let source = locationTable[Int(index)]
        var mapping: Int32 = -1
        if source.mappingIndex != 0 { mapping = try self.mapping(source.mappingIndex) }
        let lineStart = Int32(profile.lines.count)
        for line in source.lines {
            profile.lines.append(PprofLine(functionIndex: try function(line.functionIndex), line: line.line, column: line.column))
        }
        let out = Int32(profile.locations.count)
        profile.locations.append(
            PprofLocation(
                id: UInt64(out) + 1, mappingIndex: mapping, address: source.address, lineStart: lineStart,
                lineCount: Int32(source.lines.count)))
        locationMap[Int(index)] = out
        touched.append((1, index))
        return out
    }

    private mutating func function(_ index: Int32) throws(OTLPProblem) -> Int32 {
        guard index >= 0, Int(index) < functionTable.count else {
            throw OTLPProblem("function index \(index) is beyond function_table (\(functionTable.count) entries)")
        }
        let known = functionMap[Int(index)]
        if known >= 0 { return known }
        let source = functionTable[Int(index)]
        let out = Int32(profile.functions.count)
        profile.functions.append(
            PprofFunction(
                id: UInt64(out) + 1, name: try internString(source.nameStrindex, "function_table[\(index)].name_strindex"),
                systemName: try internString(source.systemNameStrindex, "function_table[\(index)].system_name_strindex"),
                filename: try internString(source.filenameStrindex, "function_table[\(index)].filename_strindex"),
                startLine: source.startLine))
        functionMap[Int(index)] = out
        touched.append((0, index))
        return out
    }

    private mutating func mapping(_ index: Int32) throws(OTLPProblem) -> Int32 {
        guard index > 0, Int(index) < mappingTable.count else {
            throw OTLPProblem("mapping index \(index) is beyond mapping_table (\(mappingTable.count) entries)")
        }
        let known = mappingMap[Int(index)]
        if known >= 0 { return known }
        let source = mappingTable[Int(index)]
        var buildID = ""
        var rank = Self.buildIDKeys.count
        for a in source.attributeIndices {
            let (key, value) = try attribute(a)
            if let r = Self.buildIDKeys.firstIndex(of: key), r < rank, !value.isEmpty { (buildID, rank) = (value, r) }
        }
        let out = Int32(profile.mappings.count)
        profile.mappings.append(
            PprofMapping(
                id: UInt64(out) + 1, memoryStart: source.memoryStart, memoryLimit: source.memoryLimit,
                fileOffset: source.fileOffset,
                filename: try internString(source.filenameStrindex, "mapping_table[\(index)].filename_strindex"),
                buildID: intern(buildID)))
        mappingMap[Int(index)] = out
        touched.append((2, index))
        return out
    }

    /// The profile built since `begin`, as pprof bytes.
    mutating func finish(profile source: OTLPProfile, timeNanos: Int64, durationNanos: Int64) throws(OTLPProblem) -> [UInt8] {
        let type = PprofValueType(
            type: try internString(source.sampleType.typeStrindex, "sample_type.type_strindex"),
            unit: try internString(source.sampleType.unitStrindex, "sample_type.unit_strindex"))
        profile.sampleTypes = [type]
        if source.hasPeriodType {
            profile.periodType = PprofValueType(
                type: try internString(source.periodType.typeStrindex, "period_type.type_strindex"),
                unit: try internString(source.periodType.unitStrindex, "period_type.unit_strindex"))
        }
        profile.period = source.period
        profile.timeNanos = timeNanos
        profile.durationNanos = durationNanos
        return PprofEncoder.encode(profile)
    }
}

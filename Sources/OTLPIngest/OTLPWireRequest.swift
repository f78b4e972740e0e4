import PprofCodec

/// An `ExportProfilesServiceRequest` decoded straight from its protobuf bytes into flat arrays, as the
/// pprof decoder does: no message value per dictionary entry or sample, strings and IDs left in place as
/// byte ranges of `data`. Indexes are stored as sent and checked where they are followed.
///
/// Every field of Kiln's copy of the protos is read or skipped on purpose; any other field number is
/// refused: in the dictionary, a resource or a scope it refuses the request (`requestProblem`), in a
/// profile or one of its samples that profile (`WireProfile.problem`).
struct OTLPWireRequest {
    var data: [UInt8]

    struct Span: Equatable {
        var start: Int32 = 0
        var count: Int32 = 0
        var range: Range<Int> { Int(start)..<Int(start) + Int(count) }
    }

    enum Value {
        case none
        case string(Span)
        case stringIndex(Int32)
        case bool(Bool)
        case int(Int64)
        case double(Double)
        case bytes(Span)
        /// An array or a key-value list: no label text can hold them.
        case composite
    }

    struct KeyValue {
        var key = Span()
        var keyIndex: Int32 = 0
        var value = Value.none
    }

    struct Function {
        var name: Int32 = 0
        var systemName: Int32 = 0
        var filename: Int32 = 0
        var startLine: Int64 = 0
    }

    struct Location {
        var mapping: Int32 = 0
        var address: UInt64 = 0
        var lines = Span()
    }

    struct Line {
        var function: Int32 = 0
        var line: Int64 = 0
        var column: Int64 = 0
    }

    struct Mapping {
        var memoryStart: UInt64 = 0
        var memoryLimit: UInt64 = 0
        var fileOffset: UInt64 = 0
        var filename: Int32 = 0
        var attributes = Span()
    }

    struct Attribute {
        var key: Int32 = 0
        var unit: Int32 = 0
        var value = Value.none
    }

    struct Link {
        var traceID = Span()
        var spanID = Span()
    }

    struct ValueType: Hashable {
        var type: Int32 = 0
        var unit: Int32 = 0
    }

    struct Sample {
        var stack: Int32 = 0
        var link: Int32 = 0
        var attributes = Span()
        var values = Span()
        var timestamps = Span()
    }

    struct Profile {
        var sampleType: ValueType?
        var periodType: ValueType?
        var period: Int64 = 0
        var timeUnixNano: UInt64 = 0
        var durationNano: UInt64 = 0
        var attributes = Span()
        var samples = Span()
        /// Why this profile cannot be taken, found while decoding it.
        var problem: String?
    }

    struct Scope {
        var attributes: [KeyValue] = []
        var profiles = Span()
    }

    struct Resource {
        var attributes: [KeyValue] = []
        var scopes = Span()
    }

    // The dictionary.
    var strings: [Span] = []
    var functions: [Function] = []
    var locations: [Location] = []
    var lines: [Line] = []
    var mappings: [Mapping] = []
    var attributes: [Attribute] = []
    var links: [Link] = []
    var stackStarts: [Int32] = [0]
    var stackLocations: [Int32] = []
    /// Attribute indexes of mappings, profiles and samples; each owner holds a `Span` of this array.
    var attributeIndices: [Int32] = []

    var resources: [Resource] = []
    var scopes: [Scope] = []
    var profiles: [Profile] = []
    var samples: [Sample] = []
    var values: [Int64] = []
    var timestamps: [UInt64] = []

    /// A field Kiln does not know outside profiles: the whole request is refused.
    var requestProblem: String?

    var stackCount: Int { stackStarts.count - 1 }

    func stack(_ i: Int) -> ArraySlice<Int32> { stackLocations[Int(stackStarts[i])..<Int(stackStarts[i + 1])] }

    func bytes(_ span: Span) -> ArraySlice<UInt8> { data[span.range] }

    init(_ bytes: [UInt8]) throws(PprofError) {
        data = bytes
        let count = bytes.count
        try bytes.withUnsafeBufferPointer { (buffer: UnsafeBufferPointer<UInt8>) throws(PprofError) in
            guard let base = buffer.baseAddress else { return }
            var r = WireReader(base: base, pos: 0, end: count)
            try decodeRequest(&r)
        }
    }

    // MARK: Decoding

    private mutating func unknown(_ message: String, _ field: UInt64) {
        if requestProblem == nil {
            requestProblem = "\(message) field \(field) is not known to Kiln (OTLP profiles 1.10), so it cannot be honoured"
        }
    }

    private func span(_ range: Range<Int>) -> Span { Span(start: Int32(range.lowerBound), count: Int32(range.count)) }

    private mutating func decodeRequest(_ r: inout WireReader) throws(PprofError) {
        while !r.atEnd {
            let (field, wire) = try r.key()
            switch (field, wire) {
            case (1, 2):
                var sub = r.sub(try r.lengthDelimited())
                try decodeResourceProfiles(&sub)
            case (2, 2):
                var sub = r.sub(try r.lengthDelimited())
                try decodeDictionary(&sub)
            default:
                if field <= 2 { throw wireMismatch("ExportProfilesServiceRequest", field, got: wire, want: 2) }
                unknown("ExportProfilesServiceRequest", field)
                try r.skip(wire: wire)
            }
        }
    }

    private mutating func decodeDictionary(_ r: inout WireReader) throws(PprofError) {
        while !r.atEnd {
            let (field, wire) = try r.key()
            guard (1...7).contains(field) else {
                unknown("ProfilesDictionary", field)
                try r.skip(wire: wire)
                continue
            }
            guard wire == 2 else { throw wireMismatch("ProfilesDictionary", field, got: wire, want: 2) }
            let range = try r.lengthDelimited()
            var sub = r.sub(range)
            switch field {
            case 1: mappings.append(try decodeMapping(&sub))
            case 2: locations.append(try decodeLocation(&sub))
            case 3: functions.append(try decodeFunction(&sub))
            case 4: links.append(try decodeLink(&sub))
            case 5: strings.append(span(range))
            case 6: attributes.append(try decodeAttribute(&sub))
            default:
                if let field = try Self.readInt32s(&sub, into: &stackLocations, message: "Stack", field: 1) { unknown("Stack", field) }
                stackStarts.append(Int32(stackLocations.count))
            }
        }
    }

    /// A message holding only repeated int32 field `number` (packed or not); returns a field it does not know.
    private static func readInt32s(_ r: inout WireReader, into out: inout [Int32], message: String, field number: UInt64) throws(PprofError)
        -> UInt64?
    {
        var unknownField: UInt64?
        while !r.atEnd {
            let (field, wire) = try r.key()
            if field == number {
                try appendInt32s(&r, wire: wire, into: &out, message: message, field: field)
            } else {
                unknownField = unknownField ?? field
                try r.skip(wire: wire)
            }
        }
        return unknownField
    }

    private static func appendInt32s(_ r: inout WireReader, wire: UInt8, into out: inout [Int32], message: String, field: UInt64)
        throws(PprofError)
    {
        switch wire {
        case 0: out.append(Int32(truncatingIfNeeded: try r.varint()))
        case 2:
            var packed = r.sub(try r.lengthDelimited())
            while !packed.atEnd { out.append(Int32(truncatingIfNeeded: try packed.varint())) }
        default: throw wireMismatch(message, field, got: wire, want: 2)
        }
    }

    private func varint(_ r: inout WireReader, _ wire: UInt8, _ message: String, _ field: UInt64) throws(PprofError) -> UInt64 {
        guard wire == 0 else { throw wireMismatch(message, field, got: wire, want: 0) }
        return try r.varint()
    }

    private func message(_ r: inout WireReader, _ wire: UInt8, _ message: String, _ field: UInt64) throws(PprofError) -> Range<Int> {
        guard wire == 2 else { throw wireMismatch(message, field, got: wire, want: 2) }
        return try r.lengthDelimited()
    }

    private mutating func decodeMapping(_ r: inout WireReader) throws(PprofError) -> Mapping {
        var m = Mapping()
        m.attributes.start = Int32(attributeIndices.count)
        while !r.atEnd {
            let (field, wire) = try r.key()
            switch field {
            case 1: m.memoryStart = try varint(&r, wire, "Mapping", field)
            case 2: m.memoryLimit = try varint(&r, wire, "Mapping", field)
            case 3: m.fileOffset = try varint(&r, wire, "Mapping", field)
            case 4: m.filename = Int32(truncatingIfNeeded: try varint(&r, wire, "Mapping", field))
            case 5: try Self.appendInt32s(&r, wire: wire, into: &attributeIndices, message: "Mapping", field: field)
            default:
                unknown("Mapping", field)
                try r.skip(wire: wire)
            }
        }
        m.attributes.count = Int32(attributeIndices.count) - m.attributes.start
        return m
    }

    private mutating func decodeLocation(_ r: inout WireReader) throws(PprofError) -> Location {
        var l = Location()
        l.lines.start = Int32(lines.count)
        while !r.atEnd {
            let (field, wire) = try r.key()
            switch field {
            case 1: l.mapping = Int32(truncatingIfNeeded: try varint(&r, wire, "Location", field))
            case 2: l.address = try varint(&r, wire, "Location", field)
            case 3:
                var sub = r.sub(try message(&r, wire, "Location", field))
                var line = Line()
                while !sub.atEnd {
                    let (f, w) = try sub.key()
                    switch f {
                    case 1: line.function = Int32(truncatingIfNeeded: try varint(&sub, w, "Line", f))
                    case 2: line.line = Int64(bitPattern: try varint(&sub, w, "Line", f))
                    case 3: line.column = Int64(bitPattern: try varint(&sub, w, "Line", f))
                    default:
                        unknown("Line", f)
                        try sub.skip(wire: w)
                    }
                }
                lines.append(line)
            case 4:
                // Location attributes (e.g. the eBPF profiler's frame type) have no place in pprof: read, not kept.
                var ignored: [Int32] = []
                try Self.appendInt32s(&r, wire: wire, into: &ignored, message: "Location", field: field)
            default:
                unknown("Location", field)
                try r.skip(wire: wire)
            }
        }
        l.lines.count = Int32(lines.count) - l.lines.start
        return l
    }

    private mutating func decodeFunction(_ r: inout WireReader) throws(PprofError) -> Function {
        var f = Function()
        while !r.atEnd {
            let (field, wire) = try r.key()
            switch field {
            case 1: f.name = Int32(truncatingIfNeeded: try varint(&r, wire, "Function", field))
            case 2: f.systemName = Int32(truncatingIfNeeded: try varint(&r, wire, "Function", field))
            case 3: f.filename = Int32(truncatingIfNeeded: try varint(&r, wire, "Function", field))
            case 4: f.startLine = Int64(bitPattern: try varint(&r, wire, "Function", field))
            default:
                unknown("Function", field)
                try r.skip(wire: wire)
            }
        }
        return f
    }

    private mutating func decodeLink(_ r: inout WireReader) throws(PprofError) -> Link {
        var l = Link()
        while !r.atEnd {
            let (field, wire) = try r.key()
            switch field {
            case 1: l.traceID = span(try message(&r, wire, "Link", field))
            case 2: l.spanID = span(try message(&r, wire, "Link", field))
            default:
                unknown("Link", field)
                try r.skip(wire: wire)
            }
        }
        return l
    }

    private mutating func decodeAttribute(_ r: inout WireReader) throws(PprofError) -> Attribute {
        var a = Attribute()
        while !r.atEnd {
            let (field, wire) = try r.key()
            switch field {
            case 1: a.key = Int32(truncatingIfNeeded: try varint(&r, wire, "KeyValueAndUnit", field))
            case 2:
                var sub = r.sub(try message(&r, wire, "KeyValueAndUnit", field))
                a.value = try decodeValue(&sub)
            case 3: a.unit = Int32(truncatingIfNeeded: try varint(&r, wire, "KeyValueAndUnit", field))
            default:
                unknown("KeyValueAndUnit", field)
                try r.skip(wire: wire)
            }
        }
        return a
    }

    private mutating func decodeValue(_ r: inout WireReader) throws(PprofError) -> Value {
        var v = Value.none
        while !r.atEnd {
            let (field, wire) = try r.key()
            switch field {
            case 1: v = .string(span(try message(&r, wire, "AnyValue", field)))
            case 2: v = .bool(try varint(&r, wire, "AnyValue", field) != 0)
            case 3: v = .int(Int64(bitPattern: try varint(&r, wire, "AnyValue", field)))
            case 4:
                guard wire == 1 else { throw wireMismatch("AnyValue", field, got: wire, want: 1) }
                v = .double(Double(bitPattern: try r.fixed64()))
            case 5, 6:
                _ = try message(&r, wire, "AnyValue", field)
                v = .composite
            case 7: v = .bytes(span(try message(&r, wire, "AnyValue", field)))
            case 8: v = .stringIndex(Int32(truncatingIfNeeded: try varint(&r, wire, "AnyValue", field)))
            default:
                unknown("AnyValue", field)
                try r.skip(wire: wire)
            }
        }
        return v
    }

    private mutating func decodeKeyValue(_ r: inout WireReader) throws(PprofError) -> KeyValue {
        var kv = KeyValue()
        while !r.atEnd {
            let (field, wire) = try r.key()
            switch field {
            case 1: kv.key = span(try message(&r, wire, "KeyValue", field))
            case 2:
                var sub = r.sub(try message(&r, wire, "KeyValue", field))
                kv.value = try decodeValue(&sub)
            case 3: kv.keyIndex = Int32(truncatingIfNeeded: try varint(&r, wire, "KeyValue", field))
            default:
                unknown("KeyValue", field)
                try r.skip(wire: wire)
            }
        }
        return kv
    }

    private mutating func decodeResourceProfiles(_ r: inout WireReader) throws(PprofError) {
        var resource = Resource()
        resource.scopes.start = Int32(scopes.count)
        while !r.atEnd {
            let (field, wire) = try r.key()
            switch field {
            case 1:
                var sub = r.sub(try message(&r, wire, "ResourceProfiles", field))
                while !sub.atEnd {
                    let (f, w) = try sub.key()
                    switch f {
                    case 1:
                        var kv = sub.sub(try message(&sub, w, "Resource", f))
                        resource.attributes.append(try decodeKeyValue(&kv))
                    case 2, 3: try sub.skip(wire: w)  // dropped_attributes_count, entity_refs: nothing to keep
                    default:
                        unknown("Resource", f)
                        try sub.skip(wire: w)
                    }
                }
            case 2:
                var sub = r.sub(try message(&r, wire, "ResourceProfiles", field))
                try decodeScopeProfiles(&sub)
            case 3: try r.skip(wire: wire)  // schema_url
            default:
                unknown("ResourceProfiles", field)
                try r.skip(wire: wire)
            }
        }
        resource.scopes.count = Int32(scopes.count) - resource.scopes.start
        resources.append(resource)
    }

    private mutating func decodeScopeProfiles(_ r: inout WireReader) throws(PprofError) {
        var scope = Scope()
        scope.profiles.start = Int32(profiles.count)
        while !r.atEnd {
            let (field, wire) = try r.key()
            switch field {
            case 1:
                var sub = r.sub(try message(&r, wire, "ScopeProfiles", field))
                while !sub.atEnd {
                    let (f, w) = try sub.key()
                    switch f {
                    case 3:
                        var kv = sub.sub(try message(&sub, w, "InstrumentationScope", f))
                        scope.attributes.append(try decodeKeyValue(&kv))
                    case 1, 2, 4: try sub.skip(wire: w)  // name, version, dropped_attributes_count
                    default:
                        unknown("InstrumentationScope", f)
                        try sub.skip(wire: w)
                    }
                }
            case 2:
                var sub = r.sub(try message(&r, wire, "ScopeProfiles", field))
                profiles.append(try decodeProfile(&sub))
            case 3: try r.skip(wire: wire)  // schema_url
            default:
                unknown("ScopeProfiles", field)
                try r.skip(wire: wire)
            }
        }
        scope.profiles.count = Int32(profiles.count) - scope.profiles.start
        scopes.append(scope)
    }

    private mutating func decodeValueType(_ r: inout WireReader, into t: inout ValueType, problem: inout String?) throws(PprofError) {
        while !r.atEnd {
            let (field, wire) = try r.key()
            switch field {
            case 1: t.type = Int32(truncatingIfNeeded: try varint(&r, wire, "ValueType", field))
            case 2: t.unit = Int32(truncatingIfNeeded: try varint(&r, wire, "ValueType", field))
            default:
                problem = problem ?? "ValueType field \(field) is not known to Kiln (OTLP profiles 1.10), so it cannot be honoured"
                try r.skip(wire: wire)
            }
        }
    }

    private mutating func decodeProfile(_ r: inout WireReader) throws(PprofError) -> Profile {
        var p = Profile()
        var profileAttributes: [Int32] = []
        p.samples.start = Int32(samples.count)
        while !r.atEnd {
            let (field, wire) = try r.key()
            switch field {
            case 1:
                var sub = r.sub(try message(&r, wire, "Profile", field))
                var t = p.sampleType ?? ValueType()
                try decodeValueType(&sub, into: &t, problem: &p.problem)
                p.sampleType = t
            case 2:
                var sub = r.sub(try message(&r, wire, "Profile", field))
                samples.append(try decodeSample(&sub, problem: &p.problem))
            case 3:
                guard wire == 1 else { throw wireMismatch("Profile", field, got: wire, want: 1) }
                p.timeUnixNano = try r.fixed64()
            case 4: p.durationNano = try varint(&r, wire, "Profile", field)
            case 5:
                var sub = r.sub(try message(&r, wire, "Profile", field))
                var t = p.periodType ?? ValueType()
                try decodeValueType(&sub, into: &t, problem: &p.problem)
                p.periodType = t
            case 6: p.period = Int64(bitPattern: try varint(&r, wire, "Profile", field))
            // profile_id, dropped_attributes_count, original_payload_format, original_payload: nothing a
            // query reads (docs/ingest.md).
            case 7, 8, 9, 10: try r.skip(wire: wire)
            case 11: try Self.appendInt32s(&r, wire: wire, into: &profileAttributes, message: "Profile", field: field)
            default:
                p.problem = p.problem ?? "Profile field \(field) is not known to Kiln (OTLP profiles 1.10), so it cannot be honoured"
                try r.skip(wire: wire)
            }
        }
        p.samples.count = Int32(samples.count) - p.samples.start
        p.attributes = Span(start: Int32(attributeIndices.count), count: Int32(profileAttributes.count))
        attributeIndices += profileAttributes
        return p
    }

    private mutating func decodeSample(_ r: inout WireReader, problem: inout String?) throws(PprofError) -> Sample {
        var s = Sample()
        s.attributes.start = Int32(attributeIndices.count)
        s.values.start = Int32(values.count)
        s.timestamps.start = Int32(timestamps.count)
        while !r.atEnd {
            let (field, wire) = try r.key()
            switch field {
            case 1: s.stack = Int32(truncatingIfNeeded: try varint(&r, wire, "Sample", field))
            case 2: try Self.appendInt32s(&r, wire: wire, into: &attributeIndices, message: "Sample", field: field)
            case 3: s.link = Int32(truncatingIfNeeded: try varint(&r, wire, "Sample", field))
            case 4:
                switch wire {
                case 0: values.append(Int64(bitPattern: try r.varint()))
                case 2:
                    var packed = r.sub(try r.lengthDelimited())
                    while !packed.atEnd { values.append(Int64(bitPattern: try packed.varint())) }
                default: throw wireMismatch("Sample", field, got: wire, want: 2)
                }
            case 5:
                switch wire {
                case 1: timestamps.append(try r.fixed64())
                case 2:
                    var packed = r.sub(try r.lengthDelimited())
                    guard (packed.end - packed.pos) % 8 == 0 else {
                        throw PprofError(.malformed, "malformed protobuf: packed fixed64 of \(packed.end - packed.pos) bytes")
                    }
                    while !packed.atEnd { timestamps.append(try packed.fixed64()) }
                default: throw wireMismatch("Sample", field, got: wire, want: 2)
                }
            default:
                problem = problem ?? "Sample field \(field) is not known to Kiln (OTLP profiles 1.10), so it cannot be honoured"
                try r.skip(wire: wire)
            }
        }
        s.attributes.count = Int32(attributeIndices.count) - s.attributes.start
        s.values.count = Int32(values.count) - s.values.start
        s.timestamps.count = Int32(timestamps.count) - s.timestamps.start
        return s
    }
}

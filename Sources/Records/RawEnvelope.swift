import ProfileModel

/// How a raw profile reached Kiln.
public enum ProfileSource: UInt8, Sendable, CaseIterable {
    case scrape = 1
    case push = 2
    case replay = 3
    case loadgen = 4
}

/// The payload's format, exactly as received.
public enum PayloadFormat: UInt8, Sendable, CaseIterable {
    /// pprof protobuf, gzipped or not.
    case pprof = 1
    /// Folded stacks, one `frame;frame;frame value` per line (Pyroscope's `/ingest` default).
    case folded = 2
}

/// A record on `kiln.profiles.raw`: who sent which profile, when, and the bytes as received.
///
/// Encoding (version 1): `"KR"`, version byte, then varint/length-prefixed fields: tenant, labels,
/// source, format, start and end (ns), flags (bit 0 = cumulative), attributes, payload.
public struct RawEnvelope: Sendable, Equatable {
    public static let currentVersion: UInt8 = 1

    public var tenant: String
    /// The target's or push's labels: `service_name`, `__name__`, `job`, `instance`, …
    public var labels: LabelSet
    public var source: ProfileSource
    public var format: PayloadFormat
    public var startNanos: Int64
    public var endNanos: Int64
    /// Values accumulate since process start (Go heap alloc_*, mutex, block): the normaliser makes deltas.
    public var cumulative: Bool
    /// Ingest parameters the normaliser needs for some formats (e.g. `sampleRate`, `units`,
    /// `aggregationType`, `sample_type_config` JSON from `/ingest`).
    public var attributes: [String: String]
    public var payload: [UInt8]

    public init(
        tenant: String, labels: LabelSet, source: ProfileSource, format: PayloadFormat,
        startNanos: Int64, endNanos: Int64, cumulative: Bool, attributes: [String: String] = [:],
        payload: [UInt8]
    ) {
        self.tenant = tenant
        self.labels = labels
        self.source = source
        self.format = format
        self.startNanos = startNanos
        self.endNanos = endNanos
        self.cumulative = cumulative
        self.attributes = attributes
        self.payload = payload
    }

    /// The Kafka key: tenant and the series identity of the target, so one target's profiles stay in
    /// order on one partition (deltas need the previous profile).
    public var key: [UInt8] { RecordKeys.raw(tenant: tenant, labels: labels) }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: payload.count + 256)
        w.bytes.append(contentsOf: [0x4B, 0x52, Self.currentVersion])
        w.string(tenant)
        w.varint(labels.count)
        for l in labels.labels {
            w.string(l.name)
            w.string(l.value)
        }
        w.varint(UInt64(source.rawValue))
        w.varint(UInt64(format.rawValue))
        w.signed(startNanos)
        w.signed(endNanos)
        w.varint(cumulative ? 1 : 0)
        w.varint(attributes.count)
        for (k, v) in attributes.sorted(by: { $0.key < $1.key }) {
            w.string(k)
            w.string(v)
        }
        w.blob(payload)
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes)
        guard bytes.count >= 3, bytes[0] == 0x4B, bytes[1] == 0x52 else {
            throw RecordDecodingError("not a Kiln raw envelope (missing \"KR\" magic)")
        }
        r.position = 2
        let version = try r.byte("version")
        guard version == Self.currentVersion else {
            throw RecordDecodingError("raw envelope version \(version) is not supported (this build reads version \(Self.currentVersion))")
        }
        tenant = try r.string("tenant")
        let labelCount = try r.count("label count", limit: 10_000)
        var labels: [Label] = []
        labels.reserveCapacity(labelCount)
        for _ in 0..<labelCount { labels.append(Label(try r.string("label name"), try r.string("label value"))) }
        self.labels = LabelSet(labels)
        let sourceCode = try r.varint("source")
        guard let source = ProfileSource(rawValue: UInt8(truncatingIfNeeded: sourceCode)), sourceCode < 256 else {
            throw RecordDecodingError("unknown profile source \(sourceCode)")
        }
        self.source = source
        let formatCode = try r.varint("format")
        guard let format = PayloadFormat(rawValue: UInt8(truncatingIfNeeded: formatCode)), formatCode < 256 else {
            throw RecordDecodingError("unknown payload format \(formatCode)")
        }
        self.format = format
        startNanos = try r.signed("start")
        endNanos = try r.signed("end")
        cumulative = try r.varint("flags") & 1 == 1
        let attributeCount = try r.count("attribute count", limit: 1_000)
        var attributes: [String: String] = [:]
        for _ in 0..<attributeCount { attributes[try r.string("attribute name")] = try r.string("attribute value") }
        self.attributes = attributes
        payload = Array(try r.blob("payload"))
    }
}

public enum RecordKeys {
    /// `tenant/` + the labels' fingerprint in hex.
    public static func raw(tenant: String, labels: LabelSet) -> [UInt8] {
        Array("\(tenant)/\(String(labels.fingerprint, radix: 16))".utf8)
    }

    /// `tenant/service_name`: Pyroscope co-locates a service's data, so its batches share a partition.
    public static func normalized(tenant: String, serviceName: String) -> [UInt8] {
        Array("\(tenant)/\(serviceName)".utf8)
    }
}

/// Headers on records in `kiln.profiles.dlq`: the stage that rejected the record, why, and where it came
/// from. The value is the raw record unchanged.
public enum DLQHeader {
    public static let stage = "kiln-dlq-stage"
    public static let reason = "kiln-dlq-reason"
    public static let sourceTopic = "kiln-source-topic"
    public static let sourcePartition = "kiln-source-partition"
    public static let sourceOffset = "kiln-source-offset"

    public static func headers(stage: String, reason: String, source: Provenance) -> [(String, [UInt8])] {
        [
            (Self.stage, Array(stage.utf8)),
            (Self.reason, Array(reason.utf8)),
            (sourceTopic, Array(source.topic.utf8)),
            (sourcePartition, Array(String(source.partition).utf8)),
            (sourceOffset, Array(String(source.offset).utf8)),
        ]
    }
}

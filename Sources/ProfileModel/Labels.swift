/// A label name and value, as on a Pyroscope series.
public struct Label: Hashable, Sendable, Comparable, Codable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    public static func < (a: Label, b: Label) -> Bool { a.name < b.name || (a.name == b.name && a.value < b.value) }
}

/// Well-known label names (Pyroscope's, so Grafana's data source sees what it expects).
public enum LabelName {
    public static let serviceName = "service_name"
    public static let metricName = "__name__"
    public static let profileType = "__profile_type__"
    public static let delta = "__delta__"
    public static let job = "job"
    public static let instance = "instance"
    public static let spanID = "span_id"
    public static let traceID = "trace_id"
    /// The legacy name some SDKs use for the span id.
    public static let profileID = "profile_id"

    /// Prometheus's label name rule, `[a-zA-Z_][a-zA-Z0-9_]*` (relabelling targets, recording rules).
    public static func isValid(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first else { return false }
        let isStart = (first >= "a" && first <= "z") || (first >= "A" && first <= "Z") || first == "_"
        return isStart
            && name.unicodeScalars.allSatisfy {
                ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || $0 == "_"
            }
    }
}

/// A set of labels, sorted by name with one value per name: the identity of a series.
public struct LabelSet: Hashable, Sendable, Codable, CustomStringConvertible {
    public private(set) var labels: [Label]

    public init() { labels = [] }

    /// Later duplicates of a name win.
    public init(_ labels: [Label]) {
        // Labels read back from a block are already sorted and unique.
        if zip(labels, labels.dropFirst()).allSatisfy({ $0.name < $1.name }) {
            self.labels = labels
            return
        }
        var byName: [String: String] = [:]
        for l in labels { byName[l.name] = l.value }
        self.labels = byName.map { Label($0.key, $0.value) }.sorted()
    }

    public init(_ dictionary: [String: String]) {
        labels = dictionary.map { Label($0.key, $0.value) }.sorted()
    }

    public subscript(name: String) -> String? {
        get {
            guard let i = index(of: name) else { return nil }
            return labels[i].value
        }
        set {
            let position = labels.partitionPoint { $0.name < name }
            let present = position < labels.count && labels[position].name == name
            switch (newValue, present) {
            case (let value?, true): labels[position].value = value
            case (let value?, false): labels.insert(Label(name, value), at: position)
            case (nil, true): labels.remove(at: position)
            case (nil, false): break
            }
        }
    }

    private func index(of name: String) -> Int? {
        let position = labels.partitionPoint { $0.name < name }
        return position < labels.count && labels[position].name == name ? position : nil
    }

    public var isEmpty: Bool { labels.isEmpty }
    public var count: Int { labels.count }
    public var dictionary: [String: String] { Dictionary(uniqueKeysWithValues: labels.map { ($0.name, $0.value) }) }

    /// A stable 64-bit fingerprint (FNV-1a over names and values with separators), the same in every
    /// process and every run, for Kafka keys and series ids.
    public var fingerprint: UInt64 {
        var hash = FNV1a()
        for l in labels {
            hash.add(l.name)
            hash.add(byte: 0xff)
            hash.add(l.value)
            hash.add(byte: 0xfe)
        }
        return hash.value
    }

    /// `{name="value", ...}` with Prometheus quoting.
    public var description: String {
        "{" + labels.map { "\($0.name)=\"\(escape($0.value))\"" }.joined(separator: ", ") + "}"
    }

    private func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }
}

/// 64-bit FNV-1a, used where a hash must be stable across processes (Swift's `Hasher` is seeded per run).
public struct FNV1a: Sendable {
    public var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    @inlinable public mutating func add(byte: UInt8) {
        value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
    }

    public mutating func add(_ string: String) {
        var s = string
        s.withUTF8 { for b in $0 { add(byte: b) } }
    }

    public mutating func add<C: Collection>(bytes: C) where C.Element == UInt8 {
        for b in bytes { add(byte: b) }
    }

    public mutating func add(_ v: UInt64) {
        var x = v
        for _ in 0..<8 {
            add(byte: UInt8(truncatingIfNeeded: x))
            x >>= 8
        }
    }
}

extension Array {
    /// The first index whose element fails `belongsBefore` (the array is partitioned by it).
    func partitionPoint(_ belongsBefore: (Element) -> Bool) -> Int {
        var low = 0
        var high = count
        while low < high {
            let mid = (low + high) / 2
            if belongsBefore(self[mid]) { low = mid + 1 } else { high = mid }
        }
        return low
    }
}

/// The one duration grammar of Kiln, wherever a duration is read (flags, environment, Alloy files):
/// Go's `time.ParseDuration` ("15s", "1m30s", "500ms", "1.5h", units ns, us/µs, ms, s, m, h) plus the
/// `d` (24h), `w` (7d) and `y` (365d) that Prometheus and Alloy accept. No sign: no Kiln setting takes a
/// negative duration.
public enum DurationText {
    /// The duration `text` spells, or nil when it is malformed.
    public static func parse(_ text: String) -> Duration? {
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        if rest == "0" { return .zero }
        var totalNanos: Double = 0
        while !rest.isEmpty {
            let numberEnd = rest.firstIndex { !($0.isASCII && ($0.isNumber || $0 == ".")) } ?? rest.endIndex
            guard numberEnd != rest.startIndex, let value = Double(rest[rest.startIndex..<numberEnd]) else { return nil }
            rest = rest[numberEnd...]
            let unitEnd = rest.firstIndex { $0.isASCII && ($0.isNumber || $0 == ".") } ?? rest.endIndex
            let unit = rest[rest.startIndex..<unitEnd]
            rest = rest[unitEnd...]
            guard let scale = nanosPerUnit[unit] else { return nil }
            totalNanos += value * scale
        }
        guard totalNanos < 9e18 else { return nil }
        return .nanoseconds(Int64(totalNanos.rounded()))
    }

    /// `parse`, or an error for the setting `name` that says what was wrong and what to write.
    public static func parse(_ text: String, name: String) throws(DurationTextError) -> Duration {
        guard let d = parse(text) else { throw DurationTextError(name: name, text: text) }
        return d
    }

    /// Example durations for messages.
    public static let examples = "\"500ms\", \"15s\", \"1m30s\", \"6h\", \"30d\" or \"2w\""

    private static let nanosPerUnit: [Substring: Double] = [
        "ns": 1, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9,
        "d": 86_400e9, "w": 604_800e9, "y": 31_536_000e9,
    ]

    /// Renders a duration the way Go prints whole seconds and milliseconds ("15s", "1m30s", "250ms").
    public static func format(_ d: Duration) -> String {
        let totalMillis = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        if totalMillis % 1000 != 0 || totalMillis == 0 { return "\(totalMillis)ms" }
        var seconds = totalMillis / 1000
        var out = ""
        if seconds >= 3600 {
            out += "\(seconds / 3600)h"
            seconds %= 3600
        }
        if seconds >= 60 || (!out.isEmpty && seconds > 0) {
            out += "\(seconds / 60)m"
            seconds %= 60
        }
        if seconds > 0 || out.isEmpty { out += "\(seconds)s" }
        return out
    }
}

public struct DurationTextError: Error, Sendable, CustomStringConvertible {
    public let name: String
    public let text: String

    public init(name: String, text: String) {
        self.name = name
        self.text = text
    }

    public var description: String {
        "\(name): \"\(text)\" is not a duration (write e.g. \(DurationText.examples))"
    }
}

extension Duration {
    /// Whole seconds, rounding down.
    public var wholeSeconds: Int64 { components.seconds }
    /// Whole milliseconds, rounding toward zero.
    public var wholeMilliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
    public var secondsDouble: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

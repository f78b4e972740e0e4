// Durations written as strings, Go style: "15s", "1m30s", "500ms", "1.5h".

enum GoDuration {
    /// Parses a Go duration string; nil when malformed. Negative durations are rejected
    /// because no scrape setting accepts them.
    static func parse(_ text: String) -> Duration? {
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
            let scale: Double
            switch unit {
            case "ns": scale = 1
            case "us", "µs": scale = 1e3
            case "ms": scale = 1e6
            case "s": scale = 1e9
            case "m": scale = 60e9
            case "h": scale = 3600e9
            default: return nil
            }
            totalNanos += value * scale
        }
        guard totalNanos < 1e18 else { return nil }
        return .nanoseconds(Int64(totalNanos.rounded()))
    }

    /// Renders a duration the way Go prints it for whole seconds and milliseconds ("15s", "1m30s", "250ms").
    static func format(_ d: Duration) -> String {
        let totalMillis = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        if totalMillis % 1000 != 0 || totalMillis == 0 { return "\(totalMillis)ms" }
        var seconds = totalMillis / 1000
        var out = ""
        if seconds >= 3600 { out += "\(seconds / 3600)h"; seconds %= 3600 }
        if seconds >= 60 || (!out.isEmpty && seconds > 0) { out += "\(seconds / 60)m"; seconds %= 60 }
        if seconds > 0 || out.isEmpty { out += "\(seconds)s" }
        return out
    }
}

extension Duration {
    /// Whole seconds, rounding down (used for the `seconds=` query parameter).
    var wholeSeconds: Int64 { components.seconds }
    var secondsDouble: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Prometheus text exposition: `name{labels} value` per line. Keeps Kiln's own series (`kiln_` prefix),
/// without histogram buckets, summed over identical keys.
public enum PrometheusText {
    public static func parse(_ text: String, prefix: String = "kiln_") -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix(prefix) {
            guard let space = line.lastIndex(of: " ") else { continue }
            let key = line[..<space].trimmingCharacters(in: .whitespaces)
            if key.contains("_bucket{") || key.hasSuffix("_bucket") { continue }
            guard let value = Double(line[line.index(after: space)...].trimmingCharacters(in: .whitespaces)) else { continue }
            out[key, default: 0] += value
        }
        return out
    }

    /// Whether `key` is a series of metric `name` (any labels).
    static func isSeries(_ key: String, of name: String) -> Bool { key == name || key.hasPrefix(name + "{") }

    /// The sum of every series of metric `name` (any labels), or nil when the exposition has none: a
    /// missing counter is not a zero one.
    public static func value(_ metrics: [String: Double], name: String) -> Double? {
        var found = false
        var sum = 0.0
        for (key, value) in metrics where isSeries(key, of: name) {
            found = true
            sum += value
        }
        return found ? sum : nil
    }

    /// The same from the exposition's text.
    public static func value(in text: String, name: String) -> Double? { value(parse(text, prefix: name), name: name) }
}

/// Label name rules of ingest (push, OTLP).
public enum LabelRules {
    /// `__name__` and `__session_id__` are the only `__` labels a client may set (Pyroscope's
    /// `IsLabelAllowedForIngestion` plus the metric name, which push clients always send).
    public static func allowedForIngestion(_ name: String) -> Bool {
        !name.hasPrefix("__") || name == LabelName.metricName || name == "__session_id__"
    }

    /// A Prometheus label name, with dots turned into underscores as Pyroscope's legacy sanitisation
    /// does; nil when it is not valid even then.
    public static func sanitizedName(_ name: String) -> String? {
        guard !name.isEmpty else { return nil }
        var out = ""
        out.reserveCapacity(name.utf8.count)
        for (i, c) in name.unicodeScalars.enumerated() {
            switch c {
            case "a"..."z", "A"..."Z", "_": out.unicodeScalars.append(c)
            case "0"..."9" where i > 0: out.unicodeScalars.append(c)
            case ".": out.unicodeScalars.append("_")
            default: return nil
            }
        }
        return out
    }

    public static func isValidMetricName(_ name: String) -> Bool {
        guard !name.isEmpty else { return false }
        for (i, c) in name.unicodeScalars.enumerated() {
            switch c {
            case "a"..."z", "A"..."Z", "_", ":": continue
            case "0"..."9" where i > 0: continue
            default: return false
            }
        }
        return true
    }
}

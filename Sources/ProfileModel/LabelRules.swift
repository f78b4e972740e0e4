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

    /// Prometheus's label-name sanitising (discovery's `__meta_*_label_<name>`): every character other
    /// than ASCII letters, digits and `_` becomes `_`.
    public static func underscored(_ name: String) -> String {
        var out = String.UnicodeScalarView()
        for c in name.unicodeScalars {
            switch c {
            case "a"..."z", "A"..."Z", "0"..."9", "_": out.append(c)
            default: out.append("_")  // per character, as Prometheus's regexp replaces runes
            }
        }
        return String(out)
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

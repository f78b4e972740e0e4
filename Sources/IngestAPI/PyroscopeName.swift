import APICommon
import Foundation
import ProfileModel

/// The `name` query parameter of `/ingest`: an application name and optional labels,
/// `my.app.cpu{env=staging,region=us-west-1}`, parsed the way Pyroscope's `labelset.Parse` does:
/// the name is everything before `{`, labels are `key=value` pairs split on `,`, surrounding spaces
/// trimmed, values unquoted; anything after the closing `}` is ignored.
public struct PyroscopeName: Sendable, Equatable {
    /// The full application name, suffix included (`my.app.cpu`).
    public var application: String
    /// The labels inside `{}` in the order written.
    public var labels: [(name: String, value: String)]

    public static func == (a: PyroscopeName, b: PyroscopeName) -> Bool {
        a.application == b.application && a.labels.elementsEqual(b.labels, by: { $0 == $1 })
    }

    public init(parsing text: String) throws(APIError) {
        var application = ""
        var labels: [(String, String)] = []
        var key = ""
        var value = ""
        enum State { case name, key, value, done }
        var state = State.name
        for c in text + "{" {
            switch state {
            case .name:
                if c == "{" {
                    application = application.trimmingSpaces
                    try Self.validateApplication(application)
                    state = .key
                } else {
                    application.append(c)
                }
            case .key:
                switch c {
                case "}": state = .done
                case "=":
                    state = .value
                    value = ""
                default: key.append(c)
                }
            case .value:
                if c == "," || c == "}" {
                    let name = key.trimmingSpaces
                    try Self.validateLabelName(name)
                    labels.append((name, value.trimmingSpaces))
                    key = ""
                    state = c == "}" ? .done : .key
                } else {
                    value.append(c)
                }
            case .done:
                break
            }
        }
        self.application = application
        self.labels = labels
    }

    static func validateApplication(_ name: String) throws(APIError) {
        guard !name.isEmpty else { throw APIError(.invalidArgument, "service name is required") }
        for c in name.unicodeScalars where !(isLabelNameScalar(c) || c == "-" || c == "/") {
            throw APIError(.invalidArgument, "invalid service name: \(name): character is not allowed: \"\(c)\"")
        }
    }

    static func validateLabelName(_ name: String) throws(APIError) {
        guard !name.isEmpty else { throw APIError(.invalidArgument, "label name is required") }
        for c in name.unicodeScalars where !isLabelNameScalar(c) {
            throw APIError(.invalidArgument, "invalid label name: \(name): character is not allowed: \"\(c)\"")
        }
        if name == LabelName.metricName { throw APIError(.invalidArgument, "label name is reserved: \(name)") }
    }

    static func isLabelNameScalar(_ c: Unicode.Scalar) -> Bool {
        (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "_" || c == "."
    }

    /// What the suffix after the last `.` says about a folded profile: `__name__`, sample type and unit
    /// (Pyroscope's `convertMetadata`). A name without a `.` is CPU. The application is the name without
    /// the suffix.
    public struct FoldedType: Sendable, Equatable {
        public var metricName: String
        public var sampleType: String
        public var sampleUnit: String
        public var application: String

        public init(metricName: String, sampleType: String, sampleUnit: String, application: String) {
            self.metricName = metricName
            self.sampleType = sampleType
            self.sampleUnit = sampleUnit
            self.application = application
        }
    }

    public func foldedType() throws(APIError) -> FoldedType {
        guard let dot = application.lastIndex(of: ".") else {
            return FoldedType(metricName: "process_cpu", sampleType: "samples", sampleUnit: "count", application: application)
        }
        let suffix = String(application[application.index(after: dot)...])
        let app = String(application[..<dot])
        let mapped: (String, String, String)? =
            switch suffix {
            case "cpu", "itimer": ("process_cpu", "samples", "count")
            case "wall", "seconds", "nanoseconds", "microseconds", "milliseconds": ("wall", "samples", "count")
            case "inuse_objects", "alloc_objects": ("memory", suffix, "count")
            case "inuse_space", "alloc_space": ("memory", suffix, "bytes")
            case "goroutines": ("goroutine", suffix, "count")
            case "mutex_count": ("mutex", "contentions", "count")
            case "mutex_duration": ("mutex", "delay", "nanoseconds")
            case "block_count", "lock_count": ("block", "contentions", "count")
            case "block_duration", "lock_duration": ("block", "delay", "nanoseconds")
            case "alloc_in_new_tlab_objects", "alloc_outside_tlab_objects", "live": ("memory", suffix, "count")
            case "alloc_in_new_tlab_bytes", "alloc_outside_tlab_bytes": ("memory", suffix, "bytes")
            case "exceptions": ("exceptions", "samples", "count")
            case "bytes": ("memory", "samples", "bytes")
            default: nil
            }
        guard let (metric, type, unit) = mapped else {
            throw APIError(.invalidArgument, "unknown profile type: \(suffix)")
        }
        return FoldedType(metricName: metric, sampleType: type, sampleUnit: unit, application: app)
    }
}

/// Pyroscope's `attime.Parse` for `from`/`until`: Unix seconds, milliseconds (13 digits), microseconds
/// (16) or nanoseconds (19); `YYYYMMDD`; `now`, `now-1h`, `now+30m` (units s, min/m, h, d, w, mon/M, y).
/// `_`, `,` and spaces are ignored. Anything else means now, as in Pyroscope.
public enum PyroscopeTime {
    public static func parse(_ text: String, now: Date = Date()) -> Date {
        let s = String(text.unicodeScalars.filter { $0 != "_" && $0 != "," && $0 != " " && $0 != "\t" }.map(Character.init))
        if !s.isEmpty, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            if s.utf8.count == 8, let date = yyyymmdd(s) { return date }
            guard let v = Int64(s) else { return now }
            switch s.utf8.count {
            case 13: return Date(timeIntervalSince1970: Double(v) / 1e3)
            case 16: return Date(timeIntervalSince1970: Double(v) / 1e6)
            case 19: return Date(timeIntervalSince1970: Double(v / 1_000_000_000) + Double(v % 1_000_000_000) / 1e9)
            default: return Date(timeIntervalSince1970: Double(v))
            }
        }
        var offset = ""
        if let i = s.firstIndex(where: { $0 == "+" || $0 == "-" }) { offset = String(s[i...]) }
        return now.addingTimeInterval(Double(offsetSeconds(offset)))
    }

    /// Nanoseconds since the epoch.
    public static func nanos(_ date: Date) -> Int64 {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        return Int64(seconds) * 1_000_000_000 + Int64(((date.timeIntervalSince1970 - seconds) * 1e9).rounded())
    }

    static func yyyymmdd(_ s: String) -> Date? {
        let digits = s.utf8.map { Int($0) - 48 }
        let year = digits[0] * 1000 + digits[1] * 100 + digits[2] * 10 + digits[3]
        let month = digits[4] * 10 + digits[5]
        let day = digits[6] * 10 + digits[7]
        guard year > 1900, (1...12).contains(month), (1...31).contains(day) else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar.date(from: DateComponents(year: year, month: month, day: day))
    }

    static func offsetSeconds(_ text: String) -> Int {
        var rest = Substring(text)
        guard !rest.isEmpty else { return 0 }
        var sign = 1
        if rest.first == "-" {
            sign = -1
            rest.removeFirst()
        } else if rest.first == "+" {
            rest.removeFirst()
        }
        var total = 0
        while !rest.isEmpty {
            let number = rest.prefix(while: { $0.isASCII && $0.isNumber })
            rest.removeFirst(number.count)
            let unit = rest.prefix(while: { !($0.isASCII && $0.isNumber) })
            rest.removeFirst(unit.count)
            total += (Int(number) ?? 0) * sign * multiplier(String(unit))
        }
        return total
    }

    static func multiplier(_ unit: String) -> Int {
        if unit.hasPrefix("s") { return 1 }
        if unit.hasPrefix("mon") || unit.hasPrefix("M") { return 30 * 86400 }
        if unit.hasPrefix("min") || unit.hasPrefix("m") { return 60 }
        if unit.hasPrefix("h") { return 3600 }
        if unit.hasPrefix("d") { return 86400 }
        if unit.hasPrefix("w") { return 7 * 86400 }
        if unit.hasPrefix("y") { return 365 * 86400 }
        return 0
    }
}

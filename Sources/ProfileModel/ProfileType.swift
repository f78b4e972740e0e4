/// Pyroscope's profile-type ID, `name:sample_type:sample_unit:period_type:period_unit`,
/// e.g. `process_cpu:cpu:nanoseconds:cpu:nanoseconds`.
public struct ProfileTypeID: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    public var name: String
    public var sampleType: String
    public var sampleUnit: String
    public var periodType: String
    public var periodUnit: String

    public init(name: String, sampleType: String, sampleUnit: String, periodType: String, periodUnit: String) {
        self.name = name
        self.sampleType = sampleType
        self.sampleUnit = sampleUnit
        self.periodType = periodType
        self.periodUnit = periodUnit
    }

    /// Parses the five colon-separated parts; nil if there are not exactly five.
    public init?(parsing id: String) {
        let parts = id.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 5, !parts[0].isEmpty else { return nil }
        self.init(name: parts[0], sampleType: parts[1], sampleUnit: parts[2], periodType: parts[3], periodUnit: parts[4])
    }

    public var id: String { "\(name):\(sampleType):\(sampleUnit):\(periodType):\(periodUnit)" }
    public var description: String { id }
    public static func < (a: Self, b: Self) -> Bool { a.id < b.id }
}

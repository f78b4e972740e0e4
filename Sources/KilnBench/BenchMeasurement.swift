import Foundation

/// One benchmark figure: Kiln beside a baseline measured in the same run, and their ratio.
public struct BenchMeasurement: Sendable, Codable {
    public var name: String
    public var unit: String
    public var kiln: Double
    public var baselineName: String
    public var baseline: Double
    /// For throughput higher is better; for latency or memory lower is.
    public var higherIsBetter: Bool
    /// The ratio the issue asks for (Kiln's advantage; 1.0 = parity), if any.
    public var targetRatio: Double?

    public init(
        name: String, unit: String, kiln: Double, baselineName: String, baseline: Double,
        higherIsBetter: Bool, targetRatio: Double? = nil
    ) {
        self.name = name
        self.unit = unit
        self.kiln = kiln
        self.baselineName = baselineName
        self.baseline = baseline
        self.higherIsBetter = higherIsBetter
        self.targetRatio = targetRatio
    }

    /// A latency beside the most its target allows.
    static func latency(_ name: String, ms: Double, target: Double) -> BenchMeasurement {
        BenchMeasurement(
            name: name, unit: "ms", kiln: ms, baselineName: "target \(Int(target)) ms", baseline: target, higherIsBetter: false,
            targetRatio: 1)
    }

    /// A latency beside a floor measured in the same run.
    static func latency(_ name: String, ms: Double, floor: String, floorMs: Double) -> BenchMeasurement {
        BenchMeasurement(name: name, unit: "ms", kiln: ms, baselineName: floor, baseline: floorMs, higherIsBetter: false)
    }

    /// Kiln's advantage over the baseline: > 1 means Kiln is better.
    public var ratio: Double {
        guard kiln > 0, baseline > 0 else { return 0 }
        return higherIsBetter ? kiln / baseline : baseline / kiln
    }

    public var meetsTarget: Bool? { targetRatio.map { ratio >= $0 } }

    /// `producer throughput: kiln 412.3 MB/s, kcat -P 398.1 MB/s, ratio 1.04x (target >= 0.90x: met)`
    public var line: String {
        var s =
            "\(name): kiln \(Self.format(kiln)) \(unit), \(baselineName) \(Self.format(baseline)) \(unit), ratio \(String(format: "%.2f", ratio))x"
        if let t = targetRatio {
            s += " (target >= \(String(format: "%.2f", t))x: \(ratio >= t ? "met" : "NOT met"))"
        }
        return s
    }

    static func format(_ v: Double) -> String {
        v >= 100 ? String(format: "%.0f", v) : v >= 10 ? String(format: "%.1f", v) : String(format: "%.3f", v)
    }
}

/// What changed between a baseline and a comparison selection, function by function, with the evidence
/// that a change is not noise: the answer of `/kiln/v1/regressions` and `kiln report regressions`.
/// Shares are fractions of each side's total (0.25 = 25 %); values are in the profile type's unit.
public struct RegressionReport: Codable, Sendable, Equatable {
    public struct Side: Codable, Sendable, Equatable {
        /// The query as asked, e.g. `process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="api"}`.
        public var query: String
        public var fromMillis: Int64
        public var untilMillis: Int64
        /// Profiles that held samples: every sample of the selection at one timestamp (one scrape or push,
        /// whose pprof labels may have split it into several series).
        public var profiles: Int
        /// Sum of every sample's value.
        public var total: Int64

        public init(query: String, fromMillis: Int64, untilMillis: Int64, profiles: Int, total: Int64) {
            self.query = query
            self.fromMillis = fromMillis
            self.untilMillis = untilMillis
            self.profiles = profiles
            self.total = total
        }
    }

    public struct Method: Codable, Sendable, Equatable {
        /// The test applied to each function's per-profile total shares.
        public var test: String
        public var correction: String
        /// The false discovery rate a change must pass (`q < alpha`).
        public var alpha: Double
        /// The smallest change of total share reported as a regression or improvement.
        public var minShareChange: Double
        /// Functions with samples on either side: the number of hypotheses corrected for.
        public var functionsSeen: Int
        /// Functions tested (those with the largest changes of total share); the rest count as p = 1.
        public var functionsTested: Int
    }

    /// A value on each side.
    public struct Pair: Codable, Sendable, Equatable {
        public var before: Double
        public var after: Double

        public init(before: Double, after: Double) {
            self.before = before
            self.after = after
        }

        public var change: Double { after - before }
    }

    /// A path from the root to one place where the function is called, and its share on each side.
    public struct CallPath: Codable, Sendable, Equatable {
        public var frames: [String]
        public var share: Pair
    }

    /// The function's callees merged over all its call sites, as a diff flame graph focused on it: node 0 is
    /// the function; `parents[i] < i`; values are inclusive.
    public struct FocusTree: Codable, Sendable, Equatable {
        public var names: [String] = []
        public var parents: [Int] = []
        public var before: [Int64] = []
        public var after: [Int64] = []
    }

    public struct FunctionChange: Codable, Sendable, Equatable {
        public var function: String
        /// Inclusive (total) and self share of the side's total.
        public var totalShare: Pair
        public var selfShare: Pair
        /// Mean inclusive value per profile, and per second of the side's time range.
        public var totalPerProfile: Pair
        public var totalPerSecond: Pair
        /// Two-sided p-value of the rank test, and its Benjamini–Hochberg adjustment.
        public var p: Double
        public var q: Double
        /// P(a comparison profile's share exceeds a baseline profile's), ties counted half.
        public var superiority: Double
        public var significant: Bool
        /// The call paths that carry most of the change, largest first.
        public var paths: [CallPath]
        /// For the top regressions: the diff flame graph focused on the function.
        public var focus: FocusTree?
    }

    /// A function with samples on one side only.
    public struct FunctionPresence: Codable, Sendable, Equatable {
        public var function: String
        public var totalShare: Double
        public var selfShare: Double
    }

    public var unit: String
    public var baseline: Side
    public var comparison: Side
    public var method: Method
    /// Significant increases of total share, largest first.
    public var regressions: [FunctionChange]
    /// Significant decreases of total share, largest first.
    public var improvements: [FunctionChange]
    /// The largest changes that did not pass the test (shown so a reader sees what was judged noise).
    public var insignificant: [FunctionChange]
    public var newFunctions: [FunctionPresence]
    public var vanishedFunctions: [FunctionPresence]
}

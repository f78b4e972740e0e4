import Foundation

/// The Mann–Whitney U test (Wilcoxon rank-sum) of two samples, and Benjamini–Hochberg's correction for
/// testing many at once. A regression report tests, function by function, whether its share of each
/// profile differs between two sides. Shares are bounded, skewed and often zero (a function absent from a
/// profile), so a rank test, which assumes no distribution, fits where a t-test would not.
public enum RankSumTest {
    public struct Result: Sendable, Equatable {
        /// Two-sided p-value (normal approximation with tie and continuity corrections).
        public var p: Double
        /// P(a value of `after` exceeds one of `before`) + ½ P(tie): 0.5 means no shift, 1 means every
        /// `after` value is larger. Equal to U / (n₁ n₂).
        public var superiority: Double
    }

    /// Compares `before` and `after`, each given as its non-zero values plus a count of zeros (shares of a
    /// function that was absent from a profile). Nil when a side is empty.
    public static func test(before: [Double], beforeZeros: Int, after: [Double], afterZeros: Int) -> Result? {
        let n1 = before.count + beforeZeros
        let n2 = after.count + afterZeros
        guard n1 > 0, n2 > 0 else { return nil }
        // Rank the pooled values, walking both sorted sides at once; zeros are one tie group below every
        // positive value.
        let sortedBefore = before.sorted()
        let sortedAfter = after.sorted()
        let zeros = beforeZeros + afterZeros
        var rankSumAfter = Double(afterZeros) * (Double(zeros) + 1) / 2
        var tieTerm = Double(zeros * zeros * zeros - zeros)
        var (i, j) = (0, 0)
        var ranked = zeros
        while i < sortedBefore.count || j < sortedAfter.count {
            let value = min(i < sortedBefore.count ? sortedBefore[i] : .infinity, j < sortedAfter.count ? sortedAfter[j] : .infinity)
            var (tiedBefore, tiedAfter) = (0, 0)
            while i < sortedBefore.count && sortedBefore[i] == value {
                tiedBefore += 1
                i += 1
            }
            while j < sortedAfter.count && sortedAfter[j] == value {
                tiedAfter += 1
                j += 1
            }
            // The tie group holds ranks ranked+1 … ranked+t, each given their mean.
            let t = tiedBefore + tiedAfter
            rankSumAfter += Double(tiedAfter) * (Double(ranked) + Double(t + 1) / 2)
            tieTerm += Double(t * t * t - t)
            ranked += t
        }
        let (a, b) = (Double(n1), Double(n2))
        let u = rankSumAfter - b * (b + 1) / 2
        let mean = a * b / 2
        let n = a + b
        let variance = a * b / 12 * ((n + 1) - tieTerm / (n * (n - 1)))
        let superiority = u / (a * b)
        guard variance > 0 else { return Result(p: 1, superiority: superiority) }
        let z = max(0, abs(u - mean) - 0.5) / variance.squareRoot()
        return Result(p: min(1, erfc(z / 2.0.squareRoot())), superiority: superiority)
    }

    /// Benjamini–Hochberg adjusted p-values (q-values) for `p`, as if `total` hypotheses had been tested:
    /// those not in `p` count as p = 1, which keeps the false discovery rate at most the level used when
    /// only the likeliest candidates were tested.
    public static func adjusted(_ p: [Double], total: Int) -> [Double] {
        let m = Double(max(total, p.count))
        let order = p.indices.sorted { p[$0] < p[$1] }
        var q = [Double](repeating: 1, count: p.count)
        var running = 1.0
        for (position, index) in order.enumerated().reversed() {
            running = min(running, p[index] * m / Double(position + 1))
            q[index] = min(1, running)
        }
        return q
    }
}

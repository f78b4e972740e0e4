import Synchronization

/// Hands out send numbers to concurrent workers at a fixed rate (or as fast as they ask, without one), until
/// the count or the deadline is reached. Send `i` is due at `start + i / rate`: an open-loop schedule, so a
/// slow answer does not lower the offered rate as long as a worker is free; workers that fall behind catch up
/// without bursting past the schedule.
public final class Pacer: Sendable {
    public let rate: Double?
    public let count: Int?
    public let start: ContinuousClock.Instant
    public let deadline: ContinuousClock.Instant?
    private let issued = Atomic<Int>(0)

    public init(rate: Double?, count: Int?, duration: Duration?, start: ContinuousClock.Instant = .now) {
        self.rate = rate.flatMap { $0 > 0 ? $0 : nil }
        self.count = count
        self.start = start
        deadline = duration.map { start + $0 }
    }

    /// When send `index` is due, relative to the start (zero without a rate).
    public static func offset(of index: Int, rate: Double?) -> Duration {
        guard let rate, rate > 0 else { return .zero }
        return .nanoseconds(Int64((Double(index) / rate * 1e9).rounded()))
    }

    /// The next send number once it is due; nil when the run is over (count reached, deadline passed, cancelled).
    public func next() async -> Int? {
        let index = issued.wrappingAdd(1, ordering: .relaxed).oldValue
        if let count, index >= count { return nil }
        let due = start + Self.offset(of: index, rate: rate)
        if let deadline, due >= deadline { return nil }
        if due > .now {
            do { try await Task.sleep(until: due, clock: .continuous) } catch { return nil }
        }
        if Task.isCancelled { return nil }
        if let deadline, ContinuousClock.now >= deadline { return nil }
        return index
    }
}

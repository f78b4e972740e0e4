/// Why one profile of a request was rejected.
struct OTLPProblem: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// A profile's sample events grouped by the second they were taken in.
struct TimeGroups {
    static let resolution: Int64 = 1_000_000_000

    struct Group {
        var start: Int64
        /// (sample index, value), in sample order.
        var events: [(Int32, Int64)]
        /// Holds samples without timestamps: the group spans the profile's duration, not one second.
        var untimed: Bool
    }

    var groups: [Group] = []

    init(_ wire: OTLPWireRequest, _ profile: OTLPWireRequest.Profile, profileTime: Int64) throws(OTLPProblem) {
        var byStart: [Int64: Int] = [:]
        func add(_ start: Int64, _ sample: Int, _ value: Int64, untimed: Bool, into groups: inout [Group]) {
            guard value != 0 else { return }
            if let g = byStart[start] {
                // A sample's events in the same second add up to one pprof sample.
                if let last = groups[g].events.last, last.0 == Int32(sample), case (let sum, false) = last.1.addingReportingOverflow(value)
                {
                    groups[g].events[groups[g].events.count - 1].1 = sum
                } else {
                    groups[g].events.append((Int32(sample), value))
                }
                groups[g].untimed = groups[g].untimed || untimed
            } else {
                byStart[start] = groups.count
                groups.append(Group(start: start, events: [(Int32(sample), value)], untimed: untimed))
            }
        }
        var groups: [Group] = []
        for s in profile.samples.range {
            let sample = wire.samples[s]
            let values = wire.values[sample.values.range]
            let stamps = wire.timestamps[sample.timestamps.range]
            if stamps.isEmpty {
                var sum: Int64 = 0
                for v in values {
                    let (next, overflow) = sum.addingReportingOverflow(v)
                    guard !overflow else {
                        throw OTLPProblem("samples[\(s - profile.samples.range.lowerBound)]: the sum of its values overflows")
                    }
                    sum = next
                }
                add(profileTime, s, sum, untimed: true, into: &groups)
            } else if values.isEmpty || values.count == stamps.count {
                // Timestamps alone are events of one occurrence each.
                for (i, stamp) in zip(stamps.indices, stamps) {
                    let t = Int64(clamping: stamp)
                    let value = values.isEmpty ? 1 : values[values.startIndex + (i - stamps.startIndex)]
                    add(t - t % Self.resolution, s, value, untimed: false, into: &groups)
                }
            } else {
                throw OTLPProblem(
                    "samples[\(s - profile.samples.range.lowerBound)] has \(values.count) values but \(stamps.count) timestamps (must be equal, or no values)"
                )
            }
        }
        self.groups = groups.sorted { $0.start < $1.start }
    }
}

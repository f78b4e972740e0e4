import Blocks
import Foundation
import Logging
import ObjectStore
import ProfileModel
import Query
import TestSupport
import Testing

@testable import KilnBench

/// The fleet data set of `kiln bench fleet`, smaller: real CPU profiles of several services every 15 s,
/// queried at full resolution, then after the compactor's maintenance rewrote every block per minute, then
/// per hour. Ranges and steps that are whole hours give the same answers from every resolution.
@Suite(.requires(.fixtures)) struct DownsampledQueryTests {
    static let cpu = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"

    struct Answers: Equatable {
        /// Total, and self value per function (the top functions are the largest of these).
        var total: Int64
        var functions: [String: Int64]
        var perHour: [QueryEngine.Series]
        var averagePerHour: [QueryEngine.Series]
    }

    func answers(_ store: any ObjectStore, _ range: ClosedRange<Int64>) async throws -> Answers {
        let engine = QueryEngine(store: store)
        let selection = Selection(tenant: FleetBenchmark.tenant, profileType: Self.cpu, selector: LabelSelector(), time: range)
        let (tree, names) = try await engine.mergeStacks(selection)
        var functions: [String: Int64] = [:]
        for (path, value) in tree.stacks() { functions[names[path.last!], default: 0] += value }
        let perHour = try await engine.timeSeries(
            selection, stepMillis: 3_600_000, groupBy: [LabelName.serviceName], aggregation: .sum, limit: nil)
        let average = try await engine.timeSeries(
            selection, stepMillis: 3_600_000, groupBy: [LabelName.serviceName], aggregation: .average, limit: nil)
        return Answers(total: tree.total(), functions: functions, perHour: perHour, averagePerHour: average)
    }

    @Test func downsampledRangesAnswerAsFullResolution() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-downsampled-\(UInt32.random(in: 0 ... .max))")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try makeObjectStore(url: "file://" + dir.path)
        let hours = 4
        let dataSet = try await FleetBenchmark.generate(into: store, fixturesDir: TestEnvironment.fixturesDir, services: 4, hours: hours)
        let end = FleetBenchmark.end
        let start = end - Int64(hours) * 3_600_000_000_000
        // (start, end]: whole hours, as a SelectSeries point holds (T − step, T].
        let range = start + 1...end
        let full = try await answers(store, range)
        #expect(full.total > 0 && full.perHour.count == 4 && full.perHour.allSatisfy { $0.points.count == hours })
        let topFunctions = full.functions.sorted { $0.value > $1.value }.prefix(10).map(\.key)

        var logger = Logger(label: "test.downsampling")
        logger.logLevel = .warning
        var config = CompactionConfig()
        // Only downsampling: this small fleet's hourly blocks would otherwise be merged into one first.
        config.levelWindows = []
        config.perMinuteAfter = .seconds(3600)
        // Two hours after the data set's end: older than an hour, so every block goes per minute.
        let later = Date(timeIntervalSince1970: Double(end / 1_000_000_000) + 7200)
        let perMinute = try await Compactor(store: store, config: config, logger: logger).pass(tenant: FleetBenchmark.tenant, now: later)
        #expect(perMinute.downsampled == dataSet.blocks)
        var live = try await QueryEngine(store: store).liveBlocks(tenant: FleetBenchmark.tenant)
        #expect(live.count == dataSet.blocks && live.allSatisfy { $0.resolutionMillis == Downsampling.minuteMillis })
        let minuteSamples = live.reduce(0) { $0 + $1.stats.samples }
        #expect(minuteSamples < Int64(dataSet.samples))
        let minute = try await answers(store, range)
        #expect(minute == full)
        #expect(minute.functions.sorted { $0.value > $1.value }.prefix(10).map(\.key) == topFunctions)

        config.perHourAfter = .seconds(3600)
        let perHour = try await Compactor(store: store, config: config, logger: logger).pass(tenant: FleetBenchmark.tenant, now: later)
        #expect(perHour.downsampled == dataSet.blocks)
        live = try await QueryEngine(store: store).liveBlocks(tenant: FleetBenchmark.tenant)
        #expect(live.allSatisfy { $0.resolutionMillis == Downsampling.hourMillis })
        #expect(live.reduce(0) { $0 + $1.stats.samples } < minuteSamples)
        #expect(try await answers(store, range) == full)
        for meta in live { #expect(await BlockReader(store: store, meta: meta).verify() == []) }

        // What needs individual profiles says why it cannot answer.
        let engine = QueryEngine(store: store)
        let selection = Selection(tenant: FleetBenchmark.tenant, profileType: Self.cpu, selector: LabelSelector(), time: range)
        await #expect {
            _ = try await engine.heatmap(selection, stepMillis: 60_000, groupBy: [], limit: nil)
        } throws: { error in
            "\(error)".contains("SelectHeatmap needs individual profiles") && "\(error)".contains("60-minute sums")
        }
        var spans = selection
        spans.spans = [0x1234]
        await #expect {
            _ = try await engine.mergeStacks(spans)
        } throws: { error in "\(error)".contains("span_selector needs individual profiles") }
        try await store.shutdown()
    }

    @Test func tenantAgesParse() throws {
        let (tenant, ages) = try ResolutionAges.parseTenantAges("acme=3d/14d/off")
        #expect(tenant == "acme" && ages == ResolutionAges(perMinuteAfter: .seconds(3 * 86_400), perHourAfter: .seconds(14 * 86_400)))
        for bad in ["acme", "acme=3d/14d", "=3d/14d/90d", "acme=3d/soon/90d"] {
            #expect(throws: BlockError.self) { try ResolutionAges.parseTenantAges(bad) }
        }
        let nowNanos: Int64 = 100 * 86_400_000_000_000
        #expect(ages.resolutionMillis(maxTime: nowNanos - 86_400_000_000_000, nowNanos: nowNanos) == nil)
        #expect(ages.resolutionMillis(maxTime: nowNanos - 4 * 86_400_000_000_000, nowNanos: nowNanos) == Downsampling.minuteMillis)
        #expect(ages.resolutionMillis(maxTime: nowNanos - 15 * 86_400_000_000_000, nowNanos: nowNanos) == Downsampling.hourMillis)
        // `--downsample-after off` keeps full resolution even past the per-hour age (as `kiln dev` runs).
        let fullOnly = ResolutionAges(perMinuteAfter: nil, perHourAfter: .seconds(86_400))
        #expect(fullOnly.resolutionMillis(maxTime: 0, nowNanos: nowNanos) == nil)
        #expect(Downsampling.bucketEnd(60_000_000_000, width: 60_000_000_000) == 60_000_000_000)
        #expect(Downsampling.bucketEnd(60_000_000_001, width: 60_000_000_000) == 120_000_000_000)
        #expect(Downsampling.bucketEnd(-1, width: 60_000_000_000) == 0)
    }
}

import Foundation
import LoadGen
import Testing

@Suite struct LoopbackGuardTests {
    @Test func loopbackAddressesPass() throws {
        try LoopbackGuard.check(
            urls: ["http://127.0.0.1:4100", "http://localhost:4103/", "http://[::1]:9/x", "http://127.8.9.10"],
            brokers: "127.0.0.1:9092,localhost:19092,[::1]:9093", allowRemote: false)
    }

    @Test func remoteTargetsAreRefusedUnlessAllowed() throws {
        for (urls, brokers) in [
            (["http://10.0.0.5:4100"], nil), (["http://pyroscope.example.com"], nil),
            (["http://127.0.0.1:4100"], "kafka-1.prod:9092"), ([], "127.0.0.1:9092,192.168.1.2:9092"),
            (["http://128.0.0.1"], nil),
        ] as [([String], String?)] {
            #expect(throws: LoadGenError.self, "\(urls) \(brokers ?? "")") {
                try LoopbackGuard.check(urls: urls, brokers: brokers, allowRemote: false)
            }
            try LoopbackGuard.check(urls: urls, brokers: brokers, allowRemote: true)
        }
        #expect { try LoopbackGuard.check(urls: ["http://10.0.0.5:4100"], brokers: nil, allowRemote: false) } throws: {
            "\($0)".contains("--allow-remote") && "\($0)".contains("10.0.0.5")
        }
    }
}

@Suite struct MeasurementTests {
    @Test func procStatAndStatusParse() {
        let stat = "4242 (kiln normalizer) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 9 0 123 456 789"
        let status = "Name:\tkiln\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t9\n"
        let u = ProcessUsage.parse(stat: stat, status: status)
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        #expect(u == ProcessUsage(cpuSeconds: 380 / ticks, rssBytes: 100 << 20, peakRSSBytes: 200 << 20))
    }

    @Test func ownProcessIsReadable() throws {
        let usage = try #require(ProcessUsage.read(pid: getpid()))
        #expect(usage.rssBytes > 0 && usage.peakRSSBytes >= usage.rssBytes)
        #expect(ProcessUsage.read(pid: Int32.max) == nil)
    }

    @Test func lagInSecondsIsTheAgeOfTheOldestUncommittedRecord() {
        let history: [(Double, Int64)] = [(0, 0), (1, 100), (2, 250), (3, 250), (4, 400)]
        #expect(LagMonitor.lagSeconds(committed: 400, history: history, now: 4) == 0)
        #expect(LagMonitor.lagSeconds(committed: 250, history: history, now: 4) == 0, "offset 250 appeared between 3 and 4")
        #expect(LagMonitor.lagSeconds(committed: 120, history: history, now: 4) == 2)
        #expect(LagMonitor.lagSeconds(committed: 0, history: history, now: 4) == 3)
    }

    @Test func quantilesAreNearestRank() {
        let values = (1...100).map(Double.init).shuffled()
        #expect(LatencySummary.quantile(values, 0.5) == 50)
        #expect(LatencySummary.quantile(values, 0.99) == 99)
        #expect(LatencySummary.quantile([], 0.5) == nil)
    }

    @Test func watchAndLagSpecsParse() throws {
        #expect(
            try WatchSpec(parsing: "normalizer.1=123@http://127.0.0.1:4101")
                == WatchSpec(name: "normalizer.1", pid: 123, adminURL: "http://127.0.0.1:4101"))
        #expect(try WatchSpec(parsing: "tansu=77") == WatchSpec(name: "tansu", pid: 77))
        #expect(throws: LoadGenError.self) { try WatchSpec(parsing: "tansu") }
        #expect(try LagSpec(parsing: "kiln-normalizer=kiln.profiles.raw") == LagSpec(group: "kiln-normalizer", topic: "kiln.profiles.raw"))
    }

    @Test func pacerSchedulesSendsAtTheRate() {
        #expect(Pacer.offset(of: 0, rate: 100) == .zero)
        #expect(Pacer.offset(of: 250, rate: 100) == .milliseconds(2500))
        #expect(Pacer.offset(of: 250, rate: nil) == .zero)
    }
}

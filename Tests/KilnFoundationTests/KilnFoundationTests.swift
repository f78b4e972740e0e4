import Dispatch
import Foundation
import Testing

@testable import KilnFoundation

@Suite("Varint")
struct VarintTests {
    static let edges: [UInt64] = [
        0, 1, 127, 128, 255, 16_383, 16_384, 2_097_151, 2_097_152, UInt64(UInt32.max),
        1 << 35, 1 << 49, 1 << 56, 1 << 63, UInt64.max - 1, UInt64.max,
    ]

    @Test("append, write and read agree with the LEB128 bytes protobuf and Parquet use")
    func knownBytes() throws {
        var out: [UInt8] = []
        Varint.append(300, to: &out)
        #expect(out == [0xAC, 0x02])  // protobuf's documented example
        out = []
        Varint.append(UInt64.max, to: &out)
        #expect(out == [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
    }

    @Test("every length from 1 to 10 bytes round-trips through each writer and the reader")
    func roundTrips() throws {
        for v in Self.edges {
            var appended: [UInt8] = []
            Varint.append(v, to: &appended)
            #expect(appended.count == Varint.length(v), "length of \(v)")
            var written = [UInt8](repeating: 0xEE, count: 12)
            let n = written.withUnsafeMutableBufferPointer { Varint.write(v, to: $0.baseAddress!) }
            #expect(Array(written.prefix(n)) == appended)
            #expect(written[n] == 0xEE, "write went past its \(n) bytes")
            var position = 0
            #expect(try Varint.read(appended + [0x7F], at: &position) == v)
            #expect(position == appended.count)
        }
    }

    @Test("zigzag maps small magnitudes to small codes, both ways")
    func zigzag() {
        #expect(Varint.zigzag(0) == 0)
        #expect(Varint.zigzag(-1) == 1)
        #expect(Varint.zigzag(1) == 2)
        #expect(Varint.zigzag(Int64.min) == UInt64.max)
        for v: Int64 in [0, -1, 1, 63, -64, Int64.max, Int64.min] { #expect(Varint.unzigzag(Varint.zigzag(v)) == v) }
    }

    @Test("truncated and overlong input is refused, not misread")
    func malformed() {
        var position = 0
        #expect(throws: Varint.ReadError.truncated) { try Varint.read([0x80, 0x80], at: &position) }
        position = 0
        #expect(throws: Varint.ReadError.truncated) { try Varint.read([], at: &position) }
        position = 0
        // An 11th byte, and a 10th byte carrying bits past 64.
        #expect(throws: Varint.ReadError.overflow) { try Varint.read([UInt8](repeating: 0x80, count: 10) + [0x01], at: &position) }
        position = 0
        #expect(throws: Varint.ReadError.overflow) { try Varint.read([UInt8](repeating: 0xFF, count: 9) + [0x02], at: &position) }
    }
}

@Suite("Duration grammar")
struct DurationTextTests {
    @Test("Go's durations, with d, w and y as Prometheus and Alloy write them")
    func parses() {
        #expect(DurationText.parse("15s") == .seconds(15))
        #expect(DurationText.parse("1m30s") == .seconds(90))
        #expect(DurationText.parse("1.5h") == .seconds(5400))
        #expect(DurationText.parse("250ms") == .milliseconds(250))
        #expect(DurationText.parse("300us") == .microseconds(300))
        #expect(DurationText.parse("30d") == .seconds(30 * 86_400))
        #expect(DurationText.parse("2w") == .seconds(14 * 86_400))
        #expect(DurationText.parse("1y") == .seconds(365 * 86_400))
        #expect(DurationText.parse("1d12h") == .seconds(36 * 3600))
        #expect(DurationText.parse("0") == .zero)
    }

    @Test("no unit, no number, unknown units and signs are refused")
    func refuses() {
        for text in ["", "15", "s", "5x", "-5s", "1.2.3s", "5 s", "1e3s"] { #expect(DurationText.parse(text) == nil, "\(text)") }
        #expect(throws: DurationTextError.self) { try DurationText.parse("90", name: "--retention") }
    }

    @Test("format prints whole seconds Go's way and the rest in milliseconds")
    func formats() {
        #expect(DurationText.format(.seconds(90)) == "1m30s")
        #expect(DurationText.format(.seconds(7200)) == "2h")
        #expect(DurationText.format(.milliseconds(1500)) == "1500ms")
        #expect(DurationText.parse(DurationText.format(.seconds(3725))) == .seconds(3725))
    }
}

@Suite("Blocking work")
struct BlockingWorkTests {
    /// Names the queue a piece of work runs on.
    static func marked(_ work: BlockingWork, _ name: String) -> DispatchSpecificKey<String> {
        let key = DispatchSpecificKey<String>()
        work.queue.setSpecific(key: key, value: name)
        return key
    }

    @Test("work runs on its own queue and returns its value or its typed error")
    func runsOnItsQueue() async throws {
        struct Refused: Error, Equatable {}
        let work = BlockingWork(label: "kiln.test.blocking")
        let key = Self.marked(work, "mine")
        #expect(try await work.run { DispatchQueue.getSpecific(key: key) } == "mine")
        await #expect(throws: Refused.self) { try await work.run { () throws(Refused) -> Int in throw Refused() } }
    }

    @Test("small work runs in place; work at the threshold goes to the queue")
    func threshold() async throws {
        let work = BlockingWork(label: "kiln.test.threshold")
        let key = Self.marked(work, "mine")
        #expect(try await work.run(bytes: BlockingWork.inlineThresholdBytes - 1) { DispatchQueue.getSpecific(key: key) } == nil)
        #expect(try await work.run(bytes: BlockingWork.inlineThresholdBytes) { DispatchQueue.getSpecific(key: key) } == "mine")
    }

    @Test("blocked work does not hold the cooperative pool: more waiting pieces than cores all start")
    func doesNotStarveThePool() async throws {
        let pieces = ProcessInfo.processInfo.activeProcessorCount + 2
        let work = BlockingWork(label: "kiln.test.concurrent", concurrent: true)
        let started = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let results = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<pieces {
                group.addTask {
                    (try? await work.run { () -> Bool in
                        started.signal()
                        return release.wait(timeout: .now() + 10) == .success
                    }) ?? false
                }
            }
            // Every piece must start while the others still block; on the cooperative pool (one thread a
            // core) the extra pieces could not.
            var allStarted = true
            for _ in 0..<pieces where started.wait(timeout: .now() + 10) != .success { allStarted = false }
            for _ in 0..<pieces { release.signal() }
            var outcomes: [Bool] = []
            for await r in group { outcomes.append(r) }
            return (allStarted, outcomes)
        }
        #expect(results.0)
        #expect(results.1 == [Bool](repeating: true, count: pieces))
    }
}

import Blocks
import Foundation
import KafkaClient
import ObjectStore
import TestSupport
import Testing

/// A 4 MiB tmpfs of our own (needs root, as in CI here: the scenario is marked `.requires(.tmpfsMount)`).
private struct SmallDisk {
    let path: String

    static func mount() async throws -> SmallDisk {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-small-disk-\(UInt32.random(in: 0 ... .max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let result = try await runToCompletion(
            URL(fileURLWithPath: "/bin/mount"), ["-t", "tmpfs", "-o", "size=4m", "tmpfs", dir], timeout: .seconds(10))
        guard result.status == 0 else {
            try? FileManager.default.removeItem(atPath: dir)
            throw ReliabilityFailure("cannot mount a tmpfs on \(dir): \(result.output)")
        }
        return SmallDisk(path: dir)
    }

    /// Fills the disk with a file until only about `leave` bytes are free.
    func fill(leaving leave: Int) throws {
        var st = statvfs()
        guard statvfs(path, &st) == 0 else { throw ReliabilityFailure("statvfs \(path) failed") }
        let free = Int(st.f_bavail) * Int(st.f_frsize)
        let size = max(0, free - leave)
        guard FileManager.default.createFile(atPath: path + "/filler", contents: Data(count: size)) else {
            throw ReliabilityFailure("cannot write \(size) bytes of filler to \(path)")
        }
    }

    func freeSpace() throws { try FileManager.default.removeItem(atPath: path + "/filler") }

    func unmount() async {
        _ = try? await runToCompletion(URL(fileURLWithPath: "/bin/umount"), [path], timeout: .seconds(10))
        try? FileManager.default.removeItem(atPath: path)
    }
}

extension ReliabilitySuite {
    /// Scenario 4: the compactor's file:// store runs out of space. It logs a clear error, turns not-ready
    /// and stops consuming; no half-written block is visible to readers (only folders with meta.json
    /// are blocks, and the ones there verify). Once space returns it resumes, and the totals are exact.
    @Test(.requires(.kafka, .fixtures, .tmpfsMount))
    func fullDiskUnderFileStoreShowsNoHalfBlockAndRecovers() async throws {
        let kafka = try Integration.kafka()
        let brokers = kafka.bootstrapServers
        let source = try FixtureProfiles.load()
        guard let normalizerBinary = Integration.binary("kiln-normalizer"), let compactorBinary = Integration.binary("kiln-compactor")
        else { return }
        let disk = try await SmallDisk.mount()
        let started = ContinuousClock.now
        do {
            let raw = Integration.unique("raw")
            let normalized = Integration.unique("normalized")
            let dlq = Integration.unique("dlq")
            try await Integration.createTopics([raw, normalized, dlq], partitions: 2, config: kafka)
            let url = "file://" + disk.path + "/blocks"
            let store = try makeObjectStore(url: url)
            let common = stageArguments(brokers: brokers) + ["--raw-topic", raw, "--normalized-topic", normalized, "--dlq-topic", dlq]
            let normalizer = try await KilnProcess(normalizerBinary, common + ["--group", Integration.unique("normalizer")])
            let compactor = try await KilnProcess(
                compactorBinary,
                common + [
                    "--group", Integration.unique("compactor"), "--store", url,
                    "--max-block-age", "300ms", "--compaction", "off",
                ])
            let producer = try KafkaProducer(config: ProducerConfig(kafka: kafka))
            var ledger = Ledger()
            var next = 0
            func send(_ n: Int) async throws {
                try await ledger.send(
                    (next..<next + n).map { source.envelope($0, tenant: $0 % 2 == 0 ? "acme" : "globex") },
                    topic: raw, producer: producer)
                next += n
            }

            // Some blocks on a healthy disk.
            try await send(12)
            let healthy = try await waitForStore(store, ledger, timeout: .seconds(60))
            #expect(healthy.totalsExact)

            // The disk fills up (a block's files are tens of KB), more profiles arrive.
            try disk.fill(leaving: 24 * 1024)
            try await send(40)
            let reported = try await eventually(timeout: .seconds(40)) {
                let ready = try await compactor.get("/ready")
                return compactor.lines(containing: "block store failed").contains { $0.contains("No space left on device") }
                    && ready.status == 503 && ready.body.contains("store")
            }
            #expect(reported, "no clear disk-full error:\n\(compactor.lines.suffix(10).joined(separator: "\n"))")
            // What a query engine sees: committed blocks only, every one complete. A folder the failed
            // upload began (files without meta.json) is listed as partial, never as a block.
            #expect(try await verifyBlocks(store) == [])
            var (committed, partial) = (0, 0)
            for tenant in try await BlockIndex.tenants(in: store) {
                let l = try await BlockIndex.list(store, tenant: tenant)
                partial += l.partial.count
                let live = Set(try await BlockIndex.liveBlocks(store, tenant: tenant).map(\.ulid))
                committed += live.count
                #expect(live.isDisjoint(with: l.partial.keys))
            }
            print("disk full: \(committed) committed blocks visible, \(partial) partial folders hidden from readers")
            #expect(try await !StoreAudit.read(store, against: ledger).totalsExact, "the disk was not full after all")

            // Space returns: the compactor resumes by itself and catches up exactly.
            try disk.freeSpace()
            let contents = try await waitForStore(store, ledger, timeout: .seconds(60))
            let resumed = !compactor.lines(containing: "consuming resumed").isEmpty
            try await producer.close()
            let normalizerStatus = try await normalizer.stop()
            let compactorStatus = try await compactor.stop()
            let final = try await StoreAudit.read(store, against: ledger)
            ReliabilitySummary.record(
                ReliabilityRow(
                    scenario: "file:// disk full, then freed", faults: compactor.lines(containing: "block store failed").count,
                    sent: ledger.count, stored: final.stored, lost: final.lost, duplicated: final.duplicated,
                    totalsExact: final.totalsExact, seconds: (ContinuousClock.now - started).seconds))
            #expect(resumed)
            #expect(contents.totalsExact)
            #expect(final.totalsExact)
            #expect(final.lost == 0)
            #expect(final.duplicated == 0)
            #expect(normalizerStatus == 0 && compactorStatus == 0)
            #expect(try await verifyBlocks(store) == [])
            try await store.shutdown()
        } catch {
            await disk.unmount()
            throw error
        }
        await disk.unmount()
    }
}

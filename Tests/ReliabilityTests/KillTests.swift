import Blocks
import Foundation
import KafkaClient
import ObjectStore
import TestSupport
import Testing

extension ReliabilitySuite {
    /// Scenario 3: while real profiles flow, the normaliser and the compactor are SIGKILLed at random
    /// moments and restarted. Afterwards the store holds every profile's samples exactly once: totals per
    /// tenant and profile type equal what the profiles sent contain, every raw record is in exactly one
    /// live block.
    @Test(.requires(.kafka, .fixtures))
    func stagesKilledAtRandomLoseAndDuplicateNothing() async throws {
        let kafka = try Integration.kafka()
        let brokers = kafka.bootstrapServers
        let source = try FixtureProfiles.load()
        guard let normalizerBinary = Integration.binary("kiln-normalizer"), let compactorBinary = Integration.binary("kiln-compactor")
        else { return }
        let started = ContinuousClock.now
        let raw = Integration.unique("raw")
        let normalized = Integration.unique("normalized")
        let dlq = Integration.unique("dlq")
        try await Integration.createTopics([raw, normalized, dlq], partitions: 3, config: kafka)
        let (url, dir, store) = try temporaryFileStore("kill")
        defer { try? FileManager.default.removeItem(at: dir) }

        let common = stageArguments(brokers: brokers) + ["--raw-topic", raw, "--normalized-topic", normalized, "--dlq-topic", dlq]
        let normalizerArgs = common + ["--group", Integration.unique("normalizer")]
        let compactorArgs =
            common + ["--group", Integration.unique("compactor"), "--store", url, "--max-block-age", "300ms", "--compaction", "off"]
        var normalizer = try await KilnProcess(normalizerBinary, normalizerArgs)
        var compactor = try await KilnProcess(compactorBinary, compactorArgs)

        // A steady stream of profiles from two tenants while the kills happen.
        let producer = try KafkaProducer(config: ProducerConfig(kafka: kafka))
        let stream = Task { () -> Ledger in
            var ledger = Ledger()
            var i = 0
            while !Task.isCancelled {
                try await ledger.send(
                    (i..<i + 4).map { source.envelope($0, tenant: $0 % 3 == 0 ? "acme" : "globex") },
                    topic: raw, producer: producer)
                i += 4
                try? await Task.sleep(for: .milliseconds(100))
            }
            return ledger
        }

        var rng = SystemRandomNumberGenerator()
        var kills = 0
        for round in 0..<4 {
            // Kill only once the victim is doing work, at a random moment after that.
            let victimIsCompactor = round % 2 == 1 || Bool.random(using: &rng)
            let victim = victimIsCompactor ? compactor : normalizer
            let blocksBefore = compactor.lines(containing: "block written").count
            let working = await eventually(timeout: .seconds(45)) {
                compactor.lines(containing: "block written").count > blocksBefore
            }
            #expect(
                working,
                "round \(round): no block written before the kill; kiln-compactor said:\n\(compactor.child.lines.suffix(12).joined(separator: "\n"))"
            )
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...700, using: &rng)))
            try await victim.kill()
            kills += 1
            print("round \(round): killed \(victimIsCompactor ? "kiln-compactor" : "kiln-normalizer")")
            if victimIsCompactor {
                compactor = try await KilnProcess(compactorBinary, compactorArgs)
            } else {
                normalizer = try await KilnProcess(normalizerBinary, normalizerArgs)
            }
        }
        stream.cancel()
        let ledger = try await stream.value
        try await producer.close()

        let contents = try await waitForStore(store, ledger, timeout: .seconds(90))
        let normalizerStatus = try await normalizer.stop()
        let compactorStatus = try await compactor.stop()
        let final = try await StoreAudit.read(store, against: ledger)
        ReliabilitySummary.record(
            ReliabilityRow(
                scenario: "stages SIGKILLed at random", faults: kills, sent: ledger.count,
                stored: final.stored, lost: final.lost, duplicated: final.duplicated, totalsExact: final.totalsExact,
                seconds: (ContinuousClock.now - started).seconds))
        #expect(contents.totalsExact)
        #expect(final.totalsExact)
        #expect(final.lost == 0)
        #expect(final.duplicated == 0)
        #expect(normalizerStatus == 0 && compactorStatus == 0)
        #expect(try await verifyBlocks(store) == [])
        try await store.shutdown()
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

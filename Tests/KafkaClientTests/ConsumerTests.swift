import Foundation
import Synchronization
import TestSupport
import Testing

@testable import KafkaClient

@Suite(.requires(.kafka), .timeLimit(.minutes(3)))
struct ConsumerTests {
    @Test func groupResumesAfterLastDurableRecord() async throws {
        let topic = try await makeTopic("commit")
        let producer = try producer()
        _ = try await producer.sendBatch((0..<10).map { ProducerRecord(topic: topic, value: bytes("r\($0)")) })
        try await producer.close()
        let group = uniqueTopic("group")

        let first = try consumer(group: group)
        try await first.subscribe([topic])
        let got = records(try await pollUntil(first, what: "10 records") { records($0).count >= 10 })
        #expect(got.map(\.offset) == Array(0..<10))
        // Only records 0...5 reached durable storage.
        for record in got where record.offset <= 5 { try first.markDurable(record) }
        try await first.commit()
        let committed = try await first.committed([TopicPartition(topic, 0)])
        #expect(committed.map(\.offset) == [6])
        try await first.close()

        let second = try consumer(group: group)
        try await second.subscribe([topic])
        let resumed = records(try await pollUntil(second, what: "4 records") { records($0).count >= 4 })
        #expect(resumed.map(\.offset) == [6, 7, 8, 9])
        #expect(resumed.first?.value == bytes("r6"))
        try await second.close()
    }

    @Test func storingOffsetOfUnassignedPartitionFails() async throws {
        let topic = try await makeTopic("unassigned")
        let consumer = try consumer(group: uniqueTopic("g"))
        let error = #expect(throws: KafkaError.self) { try consumer.storeOffset(topic: topic, partition: 0, offset: 1) }
        #expect(error?.message.contains(topic) == true)
        try await consumer.close()
    }

    @Test func cooperativeRebalanceSplitsPartitionsAndDeliversEachRecordOnce() async throws {
        let partitions: Int32 = 4
        let topic = try await makeTopic("rebalance", partitions: partitions)
        let group = uniqueTopic("group")
        let handlerRevokes = Atomic<Int>(0)
        let a = try consumer(group: group) { config in
            config.onRebalance = { if case .revoked = $0 { handlerRevokes.add(1, ordering: .relaxed) } }
        }
        try await a.subscribe([topic])
        let aFirst = try await pollUntil(a, what: "first assignment") { events in
            Set(events.assigned).count == Int(partitions)
        }
        #expect(Set(aFirst.assigned) == Set((0..<partitions).map { TopicPartition(topic, $0) }))

        // The second member joins; both keep polling (rebalance callbacks run inside polls) until the
        // partitions are split between them.
        let b = try consumer(group: group)
        try await b.subscribe([topic])
        let owned = Mutex<[String: Set<TopicPartition>]>(["a": Set(aFirst.assigned), "b": []])
        let clock = ContinuousClock()
        let end = clock.now + .seconds(90)
        func split() -> Bool {
            owned.withLock { o in
                !o["a"]!.isEmpty && !o["b"]!.isEmpty && o["a"]!.isDisjoint(with: o["b"]!)
                    && o["a"]!.union(o["b"]!).count == Int(partitions)
            }
        }
        var aRevoked: [TopicPartition] = []
        while !split() {
            guard clock.now < end else { throw DeadlineExceeded(description: "no split: \(owned.withLock { $0 })") }
            async let fromA = a.poll(timeout: .milliseconds(300))
            async let fromB = b.poll(timeout: .milliseconds(300))
            let (ea, eb) = try await (fromA, fromB)
            #expect(records(ea + eb).isEmpty)
            aRevoked += ea.revoked
            owned.withLock { o in
                o["a"] = o["a"]!.subtracting(ea.revoked).union(ea.assigned)
                o["b"] = o["b"]!.subtracting(eb.revoked).union(eb.assigned)
            }
        }
        #expect(!aRevoked.isEmpty, "the first member never saw a revoke event")
        #expect(handlerRevokes.load(ordering: .relaxed) > 0, "onRebalance was not called on revoke")
        let final = owned.withLock { $0 }
        #expect(Set(try a.assignment()) == final["a"])
        #expect(Set(try b.assignment()) == final["b"])

        let count = 200
        let producer = try producer()
        _ = try await producer.sendBatch(
            (0..<count).map {
                ProducerRecord(topic: topic, key: bytes("key-\($0)"), value: bytes("value-\($0)"))
            })
        try await producer.close()

        var gotA: [ConsumerRecord] = []
        var gotB: [ConsumerRecord] = []
        while gotA.count + gotB.count < count {
            guard clock.now < end else { throw DeadlineExceeded(description: "got \(gotA.count + gotB.count) of \(count)") }
            async let fromA = a.poll(timeout: .milliseconds(300))
            async let fromB = b.poll(timeout: .milliseconds(300))
            let (ea, eb) = try await (fromA, fromB)
            #expect(ea.revoked.isEmpty && eb.revoked.isEmpty, "unexpected second rebalance")
            gotA += records(ea)
            gotB += records(eb)
        }
        let all = gotA + gotB
        #expect(all.count == count)
        #expect(Set(all.map(\.value)) == Set((0..<count).map { bytes("value-\($0)") }))
        #expect(gotA.allSatisfy { final["a"]!.contains(TopicPartition($0.topic, $0.partition)) })
        #expect(gotB.allSatisfy { final["b"]!.contains(TopicPartition($0.topic, $0.partition)) })
        #expect(!gotA.isEmpty && !gotB.isEmpty)
        try await a.close()
        try await b.close()
    }

    @Test func seekAndSeekToTime() async throws {
        let topic = try await makeTopic("seek")
        let base: Int64 = 1_700_000_000_000
        // One record per produce request: Tansu answers time lookups per record batch.
        let producer = try producer()
        for i in 0..<10 {
            _ = try await producer.send(ProducerRecord(topic: topic, value: bytes("t\(i)"), timestampMillis: base + Int64(i) * 1000))
        }
        try await producer.close()

        let consumer = try consumer(group: nil)
        try consumer.assign([TopicPartitionOffset(topic, 0, offset: KafkaOffset.beginning)])
        let all = records(try await pollUntil(consumer, what: "10 records") { records($0).count >= 10 })
        #expect(all.map(\.timestampMillis) == (0..<10).map { base + Int64($0) * 1000 })

        try await consumer.seek(topic: topic, partition: 0, offset: 3)
        let afterSeek = records(try await pollUntil(consumer, what: "record after seek") { records($0).count >= 1 })
        #expect(afterSeek.first?.offset == 3)

        let tp = TopicPartition(topic, 0)
        let offsets = try await consumer.offsetsForTimes([tp: base + 4500])
        let found = try #require(offsets[tp] ?? nil, "no offset for an in-range time")
        #expect((0..<10).contains(found))
        // Kafka answers the first record at or after the time (5) and "none" past the end; Tansu 0.6.0
        // answers 0 for every time (kcat -Q shows the same), so on Tansu this is a known broker issue.
        withKnownIssue("Tansu 0.6.0 answers every ListOffsets-by-time with offset 0", isIntermittent: true) {
            #expect(found == 5)
        }
        let past = try await consumer.offsetsForTimes([tp: base + 1_000_000])
        withKnownIssue("Tansu 0.6.0 answers every ListOffsets-by-time with offset 0", isIntermittent: true) {
            #expect(past[tp] == .some(nil))
        }

        // Seek-to-time lands exactly where the broker's time lookup points.
        let target = try #require(try await consumer.offsetsForTimes([tp: base + 7000])[tp] ?? nil)
        try await consumer.seek(toTime: base + 7000, partitions: [tp])
        let afterTime = records(try await pollUntil(consumer, what: "record after seek-to-time") { records($0).count >= 1 })
        #expect(afterTime.first?.offset == target)
        #expect(afterTime.first?.value == bytes("t\(target)"))
        try await consumer.close()
    }

    @Test func pauseAndResume() async throws {
        let topic = try await makeTopic("pause", partitions: 2)
        let producer = try producer()
        _ = try await producer.sendBatch(
            (0..<10).map {
                ProducerRecord(topic: topic, value: bytes("p\($0 % 2)-\($0)"), partition: Int32($0 % 2))
            })
        try await producer.close()

        let consumer = try consumer(group: nil)
        let p0 = TopicPartition(topic, 0)
        let p1 = TopicPartition(topic, 1)
        try consumer.assign([
            TopicPartitionOffset(topic, 0, offset: KafkaOffset.beginning),
            TopicPartitionOffset(topic, 1, offset: KafkaOffset.beginning),
        ])
        try consumer.pause([p0])
        let whilePaused = records(
            try await pollUntil(consumer, what: "partition 1") { ev in
                records(ev).filter { $0.partition == 1 }.count >= 5
            })
        #expect(whilePaused.filter { $0.partition == 0 }.isEmpty, "paused partition delivered records")
        try consumer.resume([p0])
        let afterResume = records(
            try await pollUntil(consumer, what: "partition 0 after resume") { ev in
                records(ev).filter { $0.partition == 0 }.count >= 5
            })
        #expect(afterResume.filter { $0.partition == 0 }.map(\.offset) == [0, 1, 2, 3, 4])
        _ = p1
        try await consumer.close()
    }

    @Test func partitionEOFMarksTheEnd() async throws {
        let topic = try await makeTopic("eof")
        let producer = try producer()
        _ = try await producer.sendBatch((0..<7).map { ProducerRecord(topic: topic, value: bytes("e\($0)")) })
        try await producer.close()

        let consumer = try consumer(group: nil) { $0.reportPartitionEOF = true }
        try consumer.assign([TopicPartitionOffset(topic, 0, offset: KafkaOffset.beginning)])
        let events = try await pollUntil(consumer, what: "partition EOF") { ev in
            ev.contains { if case .partitionEOF = $0 { true } else { false } }
        }
        #expect(records(events).count == 7)
        #expect(events.last == .partitionEOF(TopicPartition(topic, 0), nextOffset: 7))
        try await consumer.close()
    }

    @Test func nextAndEventsSequence() async throws {
        let topic = try await makeTopic("next")
        let producer = try producer()
        _ = try await producer.sendBatch((0..<3).map { ProducerRecord(topic: topic, value: bytes("n\($0)")) })
        try await producer.close()
        let consumer = try consumer(group: nil)
        try consumer.assign([TopicPartitionOffset(topic, 0, offset: KafkaOffset.beginning)])
        var values: [[UInt8]] = []
        for try await event in consumer.events {
            if let r = event.record { values.append(r.value) }
            if values.count == 3 { break }
        }
        #expect(values == (0..<3).map { bytes("n\($0)") })
        try await consumer.close()
        #expect(try await consumer.next() == nil)
    }
}

extension [ConsumerEvent] {
    var assigned: [TopicPartition] {
        flatMap { event -> [TopicPartition] in
            if case .rebalance(.assigned(let p)) = event { return p }
            return []
        }
    }

    var revoked: [TopicPartition] {
        flatMap { event -> [TopicPartition] in
            if case .rebalance(.revoked(let p, _)) = event { return p }
            return []
        }
    }
}

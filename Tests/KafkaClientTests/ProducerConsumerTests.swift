import Foundation
import Synchronization
import TestSupport
import Testing

@testable import KafkaClient

@Suite(.requires(.kafka), .timeLimit(.minutes(3)))
struct ProducerConsumerTests {
    @Test func roundTripWithKeysAndHeaders() async throws {
        let topic = try await makeTopic("roundtrip", partitions: 3)
        let producer = try producer()
        var sent: [(ProducerRecord, DeliveryReport)] = []
        for i in 0..<20 {
            let record = ProducerRecord(
                topic: topic, key: bytes("tenant-\(i % 4)"), value: bytes("profile \(i)"),
                headers: [
                    KafkaHeader("stage", "scraper"), KafkaHeader("seq", bytes("\(i)")),
                    KafkaHeader("empty", nil),
                ])
            sent.append((record, try await producer.send(record)))
        }
        try await producer.close()

        let consumer = try consumer(group: uniqueTopic("g"))
        try await consumer.subscribe([topic])
        let got = records(try await pollUntil(consumer, what: "20 records") { records($0).count >= 20 })
        #expect(got.count == 20)
        for (record, report) in sent {
            let match = got.first { $0.partition == report.partition && $0.offset == report.offset }
            let received = try #require(match, "record at \(report) not consumed")
            #expect(received.topic == topic)
            #expect(received.key == record.key)
            #expect(received.value == record.value)
            #expect(received.headers == record.headers)
            #expect(received.timestampMillis != nil)
        }
        // One key, one partition: a target's profiles stay in order.
        for key in Set(got.compactMap(\.key)) {
            #expect(Set(got.filter { $0.key == key }.map(\.partition)).count == 1)
        }
        try await consumer.close()
    }

    @Test func explicitPartition() async throws {
        let topic = try await makeTopic("explicit", partitions: 3)
        let producer = try producer()
        let report = try await producer.send(ProducerRecord(topic: topic, key: bytes("k"), value: bytes("v"), partition: 2))
        #expect(report.partition == 2)
        try await producer.close()

        let consumer = try consumer(group: nil)
        try consumer.assign((0..<3).map { TopicPartitionOffset(topic, $0, offset: KafkaOffset.beginning) })
        let got = records(try await pollUntil(consumer, what: "1 record") { records($0).count >= 1 })
        #expect(got.map(\.partition) == [2])
        #expect(got.first?.offset == report.offset)
        try await consumer.close()
    }

    /// Kafka's Java client partitions keyed records by murmur2; Kiln must put a key where Java would.
    @Test func keysHashLikeTheJavaClient() async throws {
        let partitions: Int32 = 6
        let topic = try await makeTopic("murmur", partitions: partitions)
        let producer = try producer()
        for i in 0..<24 {
            let key = bytes("tenant-a/service-\(i)")
            let report = try await producer.send(ProducerRecord(topic: topic, key: key, value: bytes("x")))
            #expect(report.partition == Int32((murmur2(key) & 0x7fff_ffff) % UInt32(partitions)), "key \(i)")
        }
        try await producer.close()
    }

    @Test func queueFullIsBackPressureNotLoss() async throws {
        let topic = try await makeTopic("backpressure", partitions: 2)
        let producer = try producer {
            $0.maxBufferedMessages = 4
            $0.linger = .milliseconds(5)
        }
        let count = 400
        let reports = try await withThrowingTaskGroup(of: DeliveryReport.self) { group in
            for i in 0..<count {
                group.addTask {
                    try await producer.send(ProducerRecord(topic: topic, key: bytes("\(i)"), value: bytes("value-\(i)")))
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(reports.count == count)
        #expect(Set(reports.map { "\($0.partition)/\($0.offset)" }).count == count)
        #expect(producer.backPressureWaits > 0, "the tiny queue never filled, so back-pressure was not exercised")
        #expect(producer.inFlight == 0)
        try await producer.close()

        let consumer = try consumer(group: nil)
        try consumer.assign([
            TopicPartitionOffset(topic, 0, offset: KafkaOffset.beginning),
            TopicPartitionOffset(topic, 1, offset: KafkaOffset.beginning),
        ])
        let got = records(try await pollUntil(consumer, what: "\(count) records") { records($0).count >= count })
        #expect(got.count == count)
        #expect(Set(got.map(\.value)) == Set((0..<count).map { bytes("value-\($0)") }))
        try await consumer.close()
    }

    @Test func batchSendAndCloseFlushes() async throws {
        let topic = try await makeTopic("batch")
        let producer = try producer { $0.linger = .milliseconds(200) }
        let reports = try await producer.sendBatch((0..<50).map { ProducerRecord(topic: topic, value: bytes("b\($0)")) })
        #expect(reports.map(\.offset) == Array(0..<50))

        let delivered = Atomic<Int>(0)
        for i in 0..<100 {
            try await producer.produce(ProducerRecord(topic: topic, value: bytes("p\(i)"))) { result in
                if case .success = result { delivered.add(1, ordering: .relaxed) }
            }
        }
        try await producer.close()
        #expect(delivered.load(ordering: .relaxed) == 100, "close returned before every queued record was delivered")
        await #expect(throws: KafkaError.self) { try await producer.send(ProducerRecord(topic: topic, value: [1])) }
    }

    /// A fatal error stops a librdkafka producer for good (seen when a restarted broker's idempotence state
    /// lost sync); the next send re-creates the handle and is delivered instead of failing for ever.
    @Test func aFatalErrorReCreatesTheHandle() async throws {
        let topic = try await makeTopic("fatal")
        let producer = try producer()
        let before = try await producer.send(ProducerRecord(topic: topic, value: bytes("before")))
        producer.raiseFatalErrorForTesting("test: sequence desynchronised")
        let after = try await producer.send(ProducerRecord(topic: topic, value: bytes("after")))
        #expect(after.offset > before.offset)
        try await producer.close()

        let consumer = try consumer(group: nil)
        try consumer.assign([TopicPartitionOffset(topic, 0, offset: KafkaOffset.beginning)])
        let got = records(try await pollUntil(consumer, what: "2 records") { records($0).count >= 2 })
        #expect(got.map(\.value) == [bytes("before"), bytes("after")])
        try await consumer.close()
    }

    @Test func fiveMegabyteRecords() async throws {
        let topic = try await makeTopic("big", configs: ["max.message.bytes": "16777216"])
        let producer = try producer()
        var big = [UInt8](repeating: 0, count: 5 * 1024 * 1024)
        var x: UInt32 = 12345
        for i in big.indices {
            x = x &* 1_103_515_245 &+ 12345
            big[i] = UInt8(truncatingIfNeeded: x >> 16)
        }
        let report = try await producer.send(ProducerRecord(topic: topic, value: big))
        _ = try await producer.send(ProducerRecord(topic: topic, value: Array(big.reversed())))
        try await producer.close()

        let consumer = try consumer(group: nil)
        try consumer.assign([TopicPartitionOffset(topic, 0, offset: KafkaOffset.beginning)])
        let got = records(try await pollUntil(consumer, what: "2 big records") { records($0).count >= 2 })
        #expect(got[0].offset == report.offset)
        #expect(got[0].value == big)
        #expect(got[1].value == Array(big.reversed()))
        try await consumer.close()
    }
}

/// Kafka's murmur2 (as in the Java client's default partitioner), written from the algorithm.
func murmur2(_ data: [UInt8]) -> UInt32 {
    let m: UInt32 = 0x5bd1_e995
    var h: UInt32 = 0x9747_b28c ^ UInt32(data.count)
    let whole = data.count / 4
    for i in 0..<whole {
        var k = UInt32(data[4 * i]) | UInt32(data[4 * i + 1]) << 8 | UInt32(data[4 * i + 2]) << 16 | UInt32(data[4 * i + 3]) << 24
        k = k &* m
        k ^= k >> 24
        k = k &* m
        h = h &* m
        h ^= k
    }
    let tail = whole * 4
    switch data.count % 4 {
    case 3:
        h ^= UInt32(data[tail + 2]) << 16
        h ^= UInt32(data[tail + 1]) << 8
        h ^= UInt32(data[tail])
        h = h &* m
    case 2:
        h ^= UInt32(data[tail + 1]) << 8
        h ^= UInt32(data[tail])
        h = h &* m
    case 1:
        h ^= UInt32(data[tail])
        h = h &* m
    default:
        break
    }
    h ^= h >> 13
    h = h &* m
    h ^= h >> 15
    return h
}

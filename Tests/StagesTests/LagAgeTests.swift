import KafkaClient
import Testing

@testable import KafkaService

/// `kiln_consumer_lag_seconds`: how far behind in time a consumer is, from the records it consumed.
@Suite struct LagAgeTests {
    static let a = TopicPartition("normalized", 0)
    static let b = TopicPartition("normalized", 1)

    static func record(_ tp: TopicPartition, offset: Int64, at millis: Int64?) -> ConsumerRecord {
        ConsumerRecord(topic: tp.topic, partition: tp.partition, offset: offset, key: nil, value: [], headers: [], timestampMillis: millis)
    }

    @Test("behind: the age of the newest record consumed; caught up: 0")
    func ageOfTheNewestConsumedRecord() {
        var age = LagAge()
        age.consumed([
            Self.record(Self.a, offset: 0, at: 10_000), Self.record(Self.a, offset: 1, at: 40_000),
            Self.record(Self.a, offset: 2, at: 25_000),
        ])
        #expect(age.seconds(lag: [Self.a: 500], nowMillis: 100_000) == [Self.a: 60])
        // A stuck consumer falls further behind as time passes.
        #expect(age.seconds(lag: [Self.a: 500], nowMillis: 130_000) == [Self.a: 90])
        #expect(age.seconds(lag: [Self.a: 0], nowMillis: 130_000) == [Self.a: 0])
        // Records without a timestamp say nothing about age.
        age.consumed([Self.record(Self.a, offset: 3, at: nil)])
        #expect(age.newestConsumed[Self.a] == 40_000)
    }

    @Test("records waiting where none was consumed count from when that was first seen; a lost partition is forgotten")
    func waitingWithoutConsuming() {
        var age = LagAge()
        #expect(age.seconds(lag: [Self.b: 7], nowMillis: 50_000) == [Self.b: 0])
        #expect(age.seconds(lag: [Self.b: 9], nowMillis: 62_000) == [Self.b: 12])
        age.consumed([Self.record(Self.b, offset: 0, at: 55_000)])
        #expect(age.seconds(lag: [Self.b: 8], nowMillis: 62_000) == [Self.b: 7])
        age.forget([Self.b])
        #expect(age.newestConsumed.isEmpty)
        #expect(age.seconds(lag: [Self.b: 8], nowMillis: 70_000) == [Self.b: 0])
    }
}

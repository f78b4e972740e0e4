import Foundation
import TestSupport
import Testing

@testable import KafkaClient

@Suite(.requires(.kafka), .timeLimit(.minutes(2)))
struct AdminAndErrorTests {
    @Test func createIsIdempotentAndListed() async throws {
        let admin = try KafkaAdmin(config: KafkaConfig(bootstrapServers: try brokers()))
        let name = uniqueTopic("admin")
        let spec = TopicSpec(name: name, partitions: 4, configs: ["max.message.bytes": "16777216"])
        #expect(try await admin.createTopic(spec) == .created)
        #expect(try await admin.createTopic(spec) == .alreadyExists)
        let topic = try await admin.describeTopic(name)
        #expect(topic.partitions.map(\.id) == [0, 1, 2, 3])
        #expect(topic.partitions.allSatisfy { $0.leader >= 0 })
        #expect(try await admin.listTopics().contains { $0.name == name && $0.partitions.count == 4 })
    }

    @Test func unknownTopicIsNamed() async throws {
        let admin = try KafkaAdmin(config: KafkaConfig(bootstrapServers: try brokers()))
        let name = uniqueTopic("missing")
        let error = await #expect(throws: KafkaError.self) { try await admin.describeTopic(name) }
        #expect(error?.kind == .unknownTopic)
        #expect(error?.message.contains(name) == true)

        let consumer = try consumer(group: uniqueTopic("g"))
        let subscribeError = await #expect(throws: KafkaError.self) { try await consumer.subscribe([name]) }
        #expect(subscribeError?.kind == .unknownTopic)
        #expect(subscribeError?.message.contains(name) == true)
        try await consumer.close()
    }

    /// Nothing listens on port 1 of the loopback interface: every call must fail clearly, within its timeout.
    @Test func unreachableBrokerFailsWithinTimeout() async throws {
        let closed = "127.0.0.1:1"
        let admin = try KafkaAdmin(config: KafkaConfig(bootstrapServers: closed))
        let clock = ContinuousClock()
        let start = clock.now
        let error = await #expect(throws: KafkaError.self) { try await admin.listTopics(timeout: .seconds(2)) }
        #expect(clock.now - start < .seconds(30))
        #expect(error?.kind == .brokerUnreachable)
        #expect(error?.message.contains(closed) == true, "\(error?.message ?? "")")

        let createStart = clock.now
        let createError = await #expect(throws: KafkaError.self) {
            try await admin.createTopic(TopicSpec(name: "never"), timeout: .seconds(2))
        }
        #expect(clock.now - createStart < .seconds(30))
        #expect(createError?.kind == .brokerUnreachable)

        var config = ProducerConfig(kafka: KafkaConfig(bootstrapServers: closed))
        config.deliveryTimeout = .seconds(2)
        let producer = try KafkaProducer(config: config)
        let sendStart = clock.now
        let sendError = await #expect(throws: KafkaError.self) {
            try await producer.send(ProducerRecord(topic: "never", value: [1, 2, 3]))
        }
        #expect(clock.now - sendStart < .seconds(6))
        #expect(sendError?.kind == .deliveryFailed)
        #expect(sendError?.message.contains("never") == true, "\(sendError?.message ?? "")")
    }
}

import Foundation
import TestSupport
import Testing

@testable import KafkaClient

extension Requirement {
    /// Creating any client needs librdkafka >= 2.2 loaded (LD_LIBRARY_PATH=.venv/kiln-lib, as run/test-env.sh sets).
    static let librdkafka = Requirement("librdkafka >= 2.2") {
        KafkaRuntime.version >> 8 >= KafkaRuntime.minimumVersion >> 8
            ? nil
            : "librdkafka \(KafkaRuntime.versionString) is loaded (scripts/setup.sh, then LD_LIBRARY_PATH=.venv/kiln-lib)"
    }
}

/// The test broker; the integration tests are marked `.requires(.kafka)`.
func brokers() throws -> String {
    try TestEnvironment.requireKafkaBrokers()
}

func uniqueTopic(_ name: String) -> String {
    "kiln-test-\(name)-\(UUID().uuidString.prefix(8).lowercased())"
}

func makeTopic(_ name: String, partitions: Int32 = 1, configs: [String: String] = [:]) async throws -> String {
    let topic = uniqueTopic(name)
    let admin = try KafkaAdmin(config: KafkaConfig(bootstrapServers: try brokers()))
    let created = try await admin.createTopic(TopicSpec(name: topic, partitions: partitions, configs: configs))
    #expect(created == .created)
    return topic
}

func producer(_ configure: (inout ProducerConfig) -> Void = { _ in }) throws -> KafkaProducer {
    var config = ProducerConfig(kafka: KafkaConfig(bootstrapServers: try brokers()))
    configure(&config)
    return try KafkaProducer(config: config)
}

func consumer(group: String?, _ configure: (inout ConsumerConfig) -> Void = { _ in }) throws -> KafkaConsumer {
    var config = ConsumerConfig(
        kafka: KafkaConfig(bootstrapServers: try brokers(), options: TestEnvironment.quickGroupSettings.map(KafkaOption.init)),
        groupID: group)
    configure(&config)
    return try KafkaConsumer(config: config)
}

struct DeadlineExceeded: Error, CustomStringConvertible {
    var description: String
}

/// Polls until `done` holds for everything received so far, or fails after `deadline`.
func pollUntil(
    _ consumer: KafkaConsumer, deadline: Duration = .seconds(60), what: String,
    _ done: ([ConsumerEvent]) -> Bool
) async throws -> [ConsumerEvent] {
    var events: [ConsumerEvent] = []
    let clock = ContinuousClock()
    let end = clock.now + deadline
    while !done(events) {
        guard clock.now < end else {
            throw DeadlineExceeded(
                description: "timed out after \(deadline) waiting for \(what); got \(events.count) events: \(events.prefix(10))")
        }
        events += try await consumer.poll(max: 500, timeout: .milliseconds(500))
    }
    return events
}

func records(_ events: [ConsumerEvent]) -> [ConsumerRecord] { events.compactMap(\.record) }

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

import Foundation
import KafkaClient
import TestSupport
import Testing

/// The Tansu broker that `make test` started. Tests that call this are marked `.requires(.kafka)`, so
/// without a broker they are skipped (or fail under `make test`) before they get here.
func testBroker() throws -> KafkaConfig {
    let brokers = try TestEnvironment.requireKafkaBrokers()
    return KafkaConfig(bootstrapServers: brokers, clientID: "kiln-tests", options: TestEnvironment.quickGroupSettings.map(KafkaOption.init))
}

func uniqueName(_ prefix: String) -> String {
    "\(prefix)-\(UInt32.random(in: 0 ... .max))"
}

/// Reads a topic from the start until `count` records arrived or the deadline passed.
func readTopic(_ topic: String, config: KafkaConfig, expecting count: Int, timeout: Duration = .seconds(30)) async throws
    -> [ConsumerRecord]
{
    // No group: assign every partition from the beginning.
    let metadata = try await KafkaAdmin(config: config).describeTopic(topic)
    let consumer = try KafkaConsumer(config: ConsumerConfig(kafka: config, groupID: nil))
    try consumer.assign(metadata.partitions.indices.map { TopicPartitionOffset(topic, Int32($0), offset: KafkaOffset.beginning) })
    var records: [ConsumerRecord] = []
    let deadline = ContinuousClock.now + timeout
    while records.count < count, ContinuousClock.now < deadline {
        records += try await consumer.poll(max: 500, timeout: .milliseconds(500)).compactMap(\.record)
    }
    try await consumer.close()
    return records
}

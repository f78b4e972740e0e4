import ArgumentParser
import KafkaClient
import KafkaService
import KilnService

/// `kiln topics create|ls`: the pipeline's topics on a cluster.
struct TopicsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topics",
        abstract: "Create Kiln's topics on a Kafka cluster, or list topics and their partitions.",
        subcommands: [Create.self, List.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create", abstract: "Create the raw, normalized and DLQ topics (existing ones are left alone).")

        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var topics: TopicOptions

        func run() async throws {
            let config = try kafka.kafkaConfig(clientID: "kiln-topics")
            let admin = try KafkaAdmin(config: config)
            for name in [topics.raw, topics.normalized, topics.dlq] {
                let outcome = try await admin.createTopic(
                    TopicSpec(
                        name: name, partitions: try topics.partitions(), replicationFactor: try topics.replication(),
                        configs: ["max.message.bytes": String(TopicOptions.maxMessageBytes)]))
                print("\(name): \(outcome == .created ? "created with \(try topics.partitions()) partitions" : "already exists")")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List topics and partition counts.")

        @OptionGroup var kafka: KafkaOptions

        func run() async throws {
            let admin = try KafkaAdmin(config: try kafka.kafkaConfig(clientID: "kiln-topics"))
            for topic in try await admin.listTopics().sorted(by: { $0.name < $1.name }) {
                print("\(topic.name)\t\(topic.partitions.count) partitions")
            }
        }
    }
}

import ArgumentParser
import Foundation
import KafkaService
import KilnFoundation
import KilnService
import ObjectStore
import Recording
import RemoteWrite
import RulerService

@main
struct Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-ruler",
        abstract: "Evaluates recording rules on the normalized stream and writes the series to Prometheus (remote write 1.0)."
    )

    @OptionGroup var service: ServiceOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var topics: TopicOptions

    @Option(
        help:
            "Object store URL holding the tenants' rules and the ruler's checkpoint (kiln-query's). [env: KILN_STORE] (default: file://./data/blocks)"
    )
    var store: String?
    @Option(help: "Consumer group of the ruler; run one ruler per group. [env: KILN_RULER_GROUP] (default: kiln-ruler)")
    var group: String?
    @Option(help: "Provisioned rules, as kiln-query's --recording-rules-file. [env: KILN_RECORDING_RULES_FILE]")
    var recordingRulesFile: String?
    @Option(help: "Prometheus remote write URL, e.g. http://prometheus:9090/api/v1/write. [env: KILN_REMOTE_WRITE_URL]")
    var remoteWriteURL: String?
    @Option(help: "Basic-auth user name for the remote write URL. [env: KILN_REMOTE_WRITE_USERNAME]")
    var remoteWriteUsername: String?
    @Option(help: "File holding the basic-auth password. [env: KILN_REMOTE_WRITE_PASSWORD_FILE]")
    var remoteWritePasswordFile: String?
    @Option(help: "File holding a bearer token for the remote write URL. [env: KILN_REMOTE_WRITE_BEARER_TOKEN_FILE]")
    var remoteWriteBearerTokenFile: String?
    @Option(help: "PEM CA bundle for an https remote write URL. [env: KILN_REMOTE_WRITE_CA_FILE]")
    var remoteWriteCAFile: String?
    @Option(help: "PEM client certificate for the remote write URL. [env: KILN_REMOTE_WRITE_CERT_FILE]")
    var remoteWriteCertFile: String?
    @Option(help: "PEM key of the client certificate. [env: KILN_REMOTE_WRITE_KEY_FILE]")
    var remoteWriteKeyFile: String?
    @Option(help: "Step of the recorded series, aligned as SelectSeries aligns its points. [env: KILN_RULER_STEP] (default: 15s)")
    var step: String?
    @Option(help: "How long after a step's end its samples may still arrive. [env: KILN_RULER_LATENESS] (default: 1m)")
    var lateness: String?
    @Option(help: "How often each tenant's rules are read again. [env: KILN_RULER_RULES_REFRESH] (default: 30s)")
    var rulesRefresh: String?

    func run() async throws {
        let process = try ServiceBootstrap.start(
            name: "kiln-ruler", options: service, pending: ["kafka": "connecting to Kafka"], defaultListen: "127.0.0.1:4104")
        let logger = process.logger
        guard let url = EnvironmentFallback.resolve(remoteWriteURL, env: "KILN_REMOTE_WRITE_URL") else {
            throw ServiceConfigurationError("--remote-write-url is required: where the recorded series go")
        }
        var writeOptions = RemoteWriteOptions(url: url)
        let password = try EnvironmentFallback.resolve(remoteWritePasswordFile, env: "KILN_REMOTE_WRITE_PASSWORD_FILE").map(
            HTTPCredential.readSecretFile)
        switch (EnvironmentFallback.resolve(remoteWriteUsername, env: "KILN_REMOTE_WRITE_USERNAME"), password) {
        case (let user?, let password?): writeOptions.basicAuth = (user, password)
        case (nil, nil): break
        default: throw ServiceConfigurationError("--remote-write-username and --remote-write-password-file go together")
        }
        writeOptions.bearerToken = try EnvironmentFallback.resolve(remoteWriteBearerTokenFile, env: "KILN_REMOTE_WRITE_BEARER_TOKEN_FILE")
            .map(HTTPCredential.readSecretFile)
        if writeOptions.basicAuth != nil, writeOptions.bearerToken != nil {
            throw ServiceConfigurationError("use either basic auth or a bearer token for remote write, not both")
        }
        writeOptions.caFile = EnvironmentFallback.resolve(remoteWriteCAFile, env: "KILN_REMOTE_WRITE_CA_FILE")
        writeOptions.certFile = EnvironmentFallback.resolve(remoteWriteCertFile, env: "KILN_REMOTE_WRITE_CERT_FILE")
        writeOptions.keyFile = EnvironmentFallback.resolve(remoteWriteKeyFile, env: "KILN_REMOTE_WRITE_KEY_FILE")
        let writer = try RemoteWriteClient(options: writeOptions, logger: logger)

        let stepDuration = try EnvironmentFallback.duration(step, env: "KILN_RULER_STEP", default: "15s", setting: "--step")
        guard stepDuration >= .seconds(1), stepDuration.wholeMilliseconds % 1000 == 0 else {
            throw ServiceConfigurationError("--step must be a whole number of seconds, at least 1s")
        }
        var configuration = RulerStage.Configuration(
            normalizedTopic: topics.normalized,
            groupID: EnvironmentFallback.resolve(group, env: "KILN_RULER_GROUP", default: "kiln-ruler"),
            stepMillis: stepDuration.wholeMilliseconds)
        configuration.lateness = try EnvironmentFallback.duration(
            lateness, env: "KILN_RULER_LATENESS", default: "1m", setting: "--lateness")
        configuration.rulesRefresh = try EnvironmentFallback.duration(
            rulesRefresh, env: "KILN_RULER_RULES_REFRESH", default: "30s", setting: "--rules-refresh")

        let kafkaConfig = try kafka.kafkaConfig(clientID: "kiln-ruler")
        try await topics.ensure([topics.normalized], config: kafkaConfig, logger: logger)
        let objectStore = try makeObjectStore(url: StoreURLOption.resolve(store), logger: logger)
        let provisioned = try EnvironmentFallback.resolve(recordingRulesFile, env: "KILN_RECORDING_RULES_FILE").map {
            try RecordingRules.provisioned(file: $0)
        }
        let stage = try RulerStage(
            configuration: configuration, kafka: kafkaConfig, rules: RecordingRules(store: objectStore, provisioned: provisioned ?? [:]),
            store: objectStore, writer: writer, logger: logger,
            onReady: { [readiness = process.readiness] in readiness.markReady("kafka") })
        let probe = KafkaHealthProbe(
            config: kafkaConfig, topics: [topics.normalized], topicOptions: topics, readiness: process.readiness, logger: logger)
        try await objectStore.shutDown { try await process.run([probe, stage]) }
    }
}

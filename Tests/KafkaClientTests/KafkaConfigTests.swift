import TestSupport
import Testing

@testable import KafkaClient

@Suite struct KafkaRuntimeTests {
    @Test func oldRuntimeIsRejectedWithReasonAndFix() throws {
        let error = #expect(throws: KafkaError.self) {
            try KafkaRuntime.check(version: 0x0200_02ff, versionString: "2.0.2")
        }
        #expect(error?.kind == .unsupportedRuntime)
        let message = error?.message ?? ""
        #expect(message.contains("2.0.2"))
        #expect(message.contains(">= 2.2"))
        #expect(message.contains("ApiVersions"))
        #expect(message.contains("scripts/setup.sh"))
        #expect(message.contains(".venv/kiln-lib"))
        #expect(message.contains("LD_LIBRARY_PATH"))
        #expect(throws: KafkaError.self) { try KafkaRuntime.check(version: 0x0201_01ff, versionString: "2.1.1") }
    }

    @Test func supportedRuntimesPass() throws {
        try KafkaRuntime.check(version: 0x0202_00ff, versionString: "2.2.0")
        try KafkaRuntime.check(version: 0x0210_00ff, versionString: "2.16.0")
        try KafkaRuntime.check(version: 0x0300_0000, versionString: "3.0.0-RC1")
    }

    @Test(.requires(.librdkafka))
    func loadedRuntimeIsRecentEnough() throws {
        try KafkaRuntime.checkVersion()
        #expect(KafkaRuntime.versionString.hasPrefix("2."))
    }
}

@Suite struct KafkaOptionTests {
    @Test func parsesKeyValue() throws {
        let option = try KafkaOption(parsing: " security.protocol = SASL_SSL ")
        #expect(option == KafkaOption("security.protocol", "SASL_SSL"))
        // The value keeps any further '=' (base64 secrets, JAAS lines).
        #expect(try KafkaOption(parsing: "sasl.password=a=b==").value == "a=b==")
    }

    @Test func malformedOptionsSayWhatIsWrong() {
        for text in ["linger.ms", "=5", "bad key=1"] {
            let error = #expect(throws: KafkaError.self) { try KafkaOption(parsing: text) }
            #expect(error?.kind == .invalidOption)
            #expect(error?.message.contains(text.trimmingCharacters(in: .whitespaces)) == true, "\(error?.message ?? "")")
        }
        let error = #expect(throws: KafkaError.self) { try KafkaOption(parsing: "linger.ms") }
        #expect(error?.message.contains("key=value") == true)
    }

    @Test func parsesCommaAndNewlineLists() throws {
        #expect(try KafkaOption.parseList("a=1, b=2 ,") == [KafkaOption("a", "1"), KafkaOption("b", "2")])
        let multi = try KafkaOption.parseList("ssl.cipher.suites=A,B\n# comment\n\nsasl.mechanism=PLAIN\n")
        #expect(multi == [KafkaOption("ssl.cipher.suites", "A,B"), KafkaOption("sasl.mechanism", "PLAIN")])
        let error = #expect(throws: KafkaError.self) { try KafkaOption.parseList("a=1,oops") }
        #expect(error?.message.contains("oops") == true)
        #expect(error?.message.contains("newlines") == true)
    }

    @Test func flagsWinOverEnvironment() throws {
        let options = try KafkaOption.collect(
            flags: ["linger.ms=5"],
            environment: ["KILN_KAFKA_OPTIONS": "linger.ms=50,acks=1"])
        #expect(options == [KafkaOption("linger.ms", "5"), KafkaOption("acks", "1")])
    }

    @Test func secretsAreRedacted() {
        #expect(KafkaOption("sasl.password", "hunter2").description == "sasl.password=<redacted>")
        #expect(KafkaOption("linger.ms", "5").description == "linger.ms=5")
    }

    @Test func passThroughOptionsComeLast() {
        var config = ProducerConfig(kafka: KafkaConfig(bootstrapServers: "b:9092", options: [KafkaOption("linger.ms", "1")]))
        config.linger = .milliseconds(20)
        let props = config.librdkafkaProperties()
        #expect(props.last == KafkaOption("linger.ms", "1"))
        #expect(props.contains(KafkaOption("enable.idempotence", "true")))
        #expect(props.contains(KafkaOption("compression.codec", "lz4")))
        #expect(props.contains(KafkaOption("partitioner", "murmur2_random")))
    }

    @Test(.requires(.librdkafka))
    func unknownPropertyIsNamed() {
        let config = ProducerConfig(
            kafka: KafkaConfig(
                bootstrapServers: "127.0.0.1:1",
                options: [KafkaOption("no.such.property", "1")]))
        let error = #expect(throws: KafkaError.self) { try KafkaProducer(config: config) }
        #expect(error?.kind == .invalidConfiguration)
        #expect(error?.message.contains("no.such.property") == true, "\(error?.message ?? "")")

        let bad = ConsumerConfig(
            kafka: KafkaConfig(
                bootstrapServers: "127.0.0.1:1",
                options: [KafkaOption("fetch.wait.max.ms", "soon")]), groupID: "g")
        let valueError = #expect(throws: KafkaError.self) { try KafkaConsumer(config: bad) }
        #expect(valueError?.message.contains("fetch.wait.max.ms") == true, "\(valueError?.message ?? "")")
    }
}

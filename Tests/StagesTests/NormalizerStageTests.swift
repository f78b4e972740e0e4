import Foundation
import KafkaClient
import NormalizerService
import PprofCodec
import ProfileModel
import Records
import TestSupport
import Testing

/// A tiny real pprof profile: `values` on stacks main.a and main.b under main.main.
private func cpuProfile(_ a: Int64, _ b: Int64) -> [UInt8] {
    let strings = ["", "cpu", "nanoseconds", "main.a", "main.b", "main.main"]
    var data: [UInt8] = []
    var offsets: [UInt32] = []
    var lengths: [UInt32] = []
    for s in strings {
        offsets.append(UInt32(data.count))
        lengths.append(UInt32(s.utf8.count))
        data += Array(s.utf8)
    }
    let profile = PprofProfile(
        data: data, stringOffsets: offsets, stringLengths: lengths,
        sampleTypes: [PprofValueType(type: 1, unit: 2)], periodType: PprofValueType(type: 1, unit: 2), period: 10_000_000,
        timeNanos: 1_700_000_000_000_000_000,
        sampleLocationStarts: [0, 2, 4], sampleLocations: [0, 2, 1, 2], values: [a, b], sampleLabelStarts: [0, 0, 0],
        locations: [
            PprofLocation(id: 1, lineStart: 0, lineCount: 1), PprofLocation(id: 2, lineStart: 1, lineCount: 1),
            PprofLocation(id: 3, lineStart: 2, lineCount: 1),
        ],
        lines: [PprofLine(functionIndex: 0), PprofLine(functionIndex: 1), PprofLine(functionIndex: 2)],
        functions: [
            PprofFunction(id: 1, name: 3, systemName: 3), PprofFunction(id: 2, name: 4, systemName: 4),
            PprofFunction(id: 3, name: 5, systemName: 5),
        ])
    return PprofEncoder.encodeGzip(profile)
}

@Suite(.requires(.kafka)) struct NormalizerStageTests {
    @Test func normalisesPublishesDeadLettersAndStoresOffsetsAfterwards() async throws {
        let kafka = try testBroker()
        let raw = uniqueName("raw")
        let normalized = uniqueName("normalized")
        let dlq = uniqueName("dlq")
        let admin = try KafkaAdmin(config: kafka)
        for topic in [raw, normalized, dlq] { _ = try await admin.createTopic(TopicSpec(name: topic, partitions: 2)) }

        let producer = try KafkaProducer(config: ProducerConfig(kafka: kafka))
        var expectedTotal: Int64 = 0
        var records: [ProducerRecord] = []
        for i in 0..<20 {
            let envelope = RawEnvelope(
                tenant: i % 2 == 0 ? "team-a" : "team-b",
                labels: LabelSet(["service_name": "svc\(i % 3)", "__name__": "process_cpu", "instance": "host\(i % 4)"]),
                source: .push, format: .pprof, startNanos: 0, endNanos: 0, cumulative: false,
                payload: cpuProfile(Int64(i + 1) * 10_000_000, 5_000_000))
            expectedTotal += Int64(i + 1) * 10_000_000 + 5_000_000
            records.append(ProducerRecord(topic: raw, key: envelope.key, value: envelope.encoded()))
        }
        // Two bad records: not an envelope at all, and an envelope around a corrupt profile.
        records.append(ProducerRecord(topic: raw, key: Array("bad".utf8), value: Array("hello".utf8)))
        let corrupt = RawEnvelope(
            tenant: "team-a", labels: LabelSet(["service_name": "svc0"]), source: .push, format: .pprof,
            startNanos: 0, endNanos: 0, cumulative: false, payload: [0x0a, 0x05, 0x01])
        records.append(ProducerRecord(topic: raw, key: corrupt.key, value: corrupt.encoded()))
        _ = try await producer.sendBatch(records)
        try await producer.close()

        let group = uniqueName("normalizer")
        let stage = try NormalizerStage(
            configuration: .init(rawTopic: raw, normalizedTopic: normalized, dlqTopic: dlq, groupID: group), kafka: kafka,
            logger: .init(label: "test"))
        let run = Task { try await stage.run() }
        let batches = try await readTopic(normalized, config: kafka, expecting: 20)
        let dead = try await readTopic(dlq, config: kafka, expecting: 2)
        // Wait until the stage has processed everything, then stop it (it commits on the way out).
        let deadline = ContinuousClock.now + .seconds(30)
        while stage.currentStats.recordsIn < 22, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        run.cancel()
        try await run.value

        #expect(batches.count == 20)
        var total: Int64 = 0
        var provenance = Set<Int64>()
        for record in batches {
            let batch = try BatchCodec.decode(record.value)
            total += batch.totalsByProfileType.values.reduce(0, +)
            provenance.insert(batch.provenance.offset * 10 + Int64(batch.provenance.partition))
            let service = batch.series.first?.labels["service_name"] ?? ""
            #expect(record.key == RecordKeys.normalized(tenant: batch.tenant, serviceName: service))
            #expect(batch.provenance.topic == raw)
        }
        #expect(total == expectedTotal)
        #expect(provenance.count == 20)
        #expect(dead.count == 2)
        for record in dead {
            let reason = record.header(DLQHeader.reason).map { String(decoding: $0, as: UTF8.self) } ?? ""
            #expect(reason.contains("magic") || reason.contains("pprof"), "reason: \(reason)")
            #expect(record.header(DLQHeader.stage).map { String(decoding: $0, as: UTF8.self) } == "normalizer")
        }
        #expect(Set(dead.map(\.value)).contains(Array("hello".utf8)))

        // The group's committed offsets cover every raw record: a restart would not replay them.
        let check = try KafkaConsumer(config: ConsumerConfig(kafka: kafka, groupID: group))
        let committed = try await check.committed([TopicPartition(raw, 0), TopicPartition(raw, 1)])
        try await check.close()
        #expect(committed.map(\.offset).reduce(0, +) == 22)
    }
}

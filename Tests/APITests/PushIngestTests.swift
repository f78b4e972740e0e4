import APICommon
import Foundation
import IngestAPI
import KilnProtos
import PprofCodec
import ProfileModel
import QueryAPI
import Records
import TestSupport
import Testing

/// Push ingest through a real HTTP server and a real HTTP client, with what Pyroscope clients send.
@Suite struct PushIngestTests {
    static let cpu = "go_cpu_ap-query_2026.pb.gz"
    static let heap = "go_heap_og.pb.gz"

    func pushRequest(_ profiles: [[UInt8]], labels: [(String, String)]) -> Push_V1_PushRequest {
        var series = Push_V1_RawProfileSeries()
        series.labels = labels.map { name, value in
            var pair = Types_V1_LabelPair()
            pair.name = name
            pair.value = value
            return pair
        }
        series.samples = profiles.enumerated().map { i, bytes in
            var sample = Push_V1_RawSample()
            sample.rawProfile = Data(bytes)
            sample.id = "00000000-0000-4000-8000-00000000000\(i)"
            return sample
        }
        var request = Push_V1_PushRequest()
        request.series = [series]
        return request
    }

    // MARK: Connect

    @Test(.requires(.fixtures)) func connectProtobufPush() async throws {
        let cpu = try fixture(Self.cpu)
        let heap = try fixture(Self.heap)
        let message = pushRequest(
            [cpu, heap],
            labels: [
                ("__name__", "process_cpu"), ("service_name", "checkout"),
                ("env", "prod"), ("__delta__", "false"), ("k8s.pod", "p-1"),
            ])
        let publisher = InMemoryRawPublisher()
        let before = PyroscopeTime.nanos(Date())
        let result = try await withIngestServer(publisher: publisher) { base in
            try await post(
                base + "/push.v1.PusherService/Push", body: try message.serializedBytes(),
                headers: [("Content-Type", "application/proto"), ("X-Scope-OrgID", "team-a")])
        }
        #expect(result.status == 200, "\(result.text)")
        #expect(result.contentType == "application/proto")
        let envelopes = publisher.envelopes
        #expect(envelopes.count == 2)
        #expect(Set(envelopes.map(\.payload)) == Set([cpu, heap]))
        for e in envelopes {
            #expect(e.tenant == "team-a")
            #expect(e.source == .push)
            #expect(e.format == .pprof)
            #expect(e.cumulative == false)
            #expect(e.labels == LabelSet(["__name__": "process_cpu", "service_name": "checkout", "env": "prod", "k8s_pod": "p-1"]))
            #expect(e.startNanos >= before)
            #expect(e.attributes["profile_id"]?.hasPrefix("00000000-0000-4000-8000") == true)
        }
    }

    @Test(.requires(.fixtures)) func connectJSONPushAsSDKsSendIt() async throws {
        let heap = try fixture(Self.heap)
        // The shape Pyroscope documents for JSON pushes: camelCase fields, base64 bytes.
        let json = """
            {"series":[{"labels":[{"name":"__name__","value":"memory"},{"name":"service_name","value":"svc"},
              {"name":"__delta__","value":"true"}],
              "samples":[{"ID":"734FD599-6865-419E-9475-932762D8F469","rawProfile":"\(Data(heap).base64EncodedString())"}]}]}
            """
        let publisher = InMemoryRawPublisher()
        let result = try await withIngestServer(publisher: publisher) { base in
            try await post(
                base + "/push.v1.PusherService/Push", body: Array(json.utf8),
                headers: [("Content-Type", "application/json")])
        }
        #expect(result.status == 200, "\(result.text)")
        #expect(result.contentType == "application/json")
        #expect(result.text == "{}")
        let e = try #require(publisher.envelopes.first)
        #expect(publisher.envelopes.count == 1)
        #expect(e.tenant == "anonymous")
        #expect(e.payload == heap)
        #expect(e.cumulative, "__delta__=\"true\" marks a cumulative profile")
        #expect(e.labels == LabelSet(["__name__": "memory", "service_name": "svc"]))
        #expect(e.attributes["profile_id"] == "734FD599-6865-419E-9475-932762D8F469")
    }

    @Test(.requires(.fixtures)) func connectGzipBodyAndMissingServiceName() async throws {
        let cpu = try fixture(Self.cpu)
        let message = pushRequest([cpu], labels: [("__name__", "process_cpu")])
        let publisher = InMemoryRawPublisher()
        let result = try await withIngestServer(publisher: publisher) { base in
            try await post(
                base + "/push.v1.PusherService/Push", body: Gzip.compress(try message.serializedBytes()),
                headers: [("Content-Type", "application/proto"), ("Content-Encoding", "gzip")])
        }
        #expect(result.status == 200, "\(result.text)")
        #expect(publisher.envelopes.map(\.payload) == [cpu])
        #expect(publisher.envelopes.first?.labels["service_name"] == "unknown_service")
    }

    @Test(.requires(.fixtures)) func connectRejectsBadInput() async throws {
        let publisher = InMemoryRawPublisher()
        try await withIngestServer(publisher: publisher) { base in
            let url = base + "/push.v1.PusherService/Push"
            let garbage = try await post(url, body: [0xFF, 0xFF, 0xFF, 0x07, 0x01], headers: [("Content-Type", "application/proto")])
            #expect(garbage.status == 400)
            #expect(garbage.connectCode == "invalid_argument")
            #expect(garbage.contentType == "application/json")

            let badJSON = try await post(url, body: Array("{\"series\": 7".utf8), headers: [("Content-Type", "application/json")])
            #expect(badJSON.status == 400)
            #expect(badJSON.connectCode == "invalid_argument")

            let empty = try await post(url, body: [], headers: [("Content-Type", "application/proto")])
            #expect(empty.status == 400)
            #expect(empty.text.contains("no profiles received"))

            let media = try await post(url, body: [], headers: [("Content-Type", "application/grpc")])
            #expect(media.status == 415)

            let badGzip = try await post(
                url, body: [1, 2, 3], headers: [("Content-Type", "application/proto"), ("Content-Encoding", "gzip")])
            #expect(badGzip.status == 400)
            #expect(badGzip.connectCode == "invalid_argument")

            let badLabel = try await post(
                url, body: try pushRequest([try fixture(Self.cpu)], labels: [("service_name", "a"), ("bad-name", "x")]).serializedBytes(),
                headers: [("Content-Type", "application/proto")])
            #expect(badLabel.status == 400)
            #expect(badLabel.text.contains("invalid label name"))

            let tenant = try await post(
                url, body: try pushRequest([try fixture(Self.cpu)], labels: [("service_name", "a")]).serializedBytes(),
                headers: [("Content-Type", "application/proto"), ("X-Scope-OrgID", "bad/tenant")])
            #expect(tenant.status == 401)
            #expect(tenant.connectCode == "unauthenticated")
        }
        #expect(publisher.envelopes.isEmpty)
    }

    // MARK: /ingest

    @Test(.requires(.fixtures)) func ingestRawPprof() async throws {
        let cpu = try fixture(Self.cpu)
        let publisher = InMemoryRawPublisher()
        let result = try await withIngestServer(publisher: publisher) { base in
            try await post(
                base
                    + "/ingest?name=my.app%7Benv%3Dstaging%2Cregion%3Dus-west-1%7D&from=1700000000&until=1700000010&format=pprof&spyName=gospy&sampleRate=100",
                body: cpu, headers: [("X-Scope-OrgID", "acme")])
        }
        #expect(result.status == 200, "\(result.text)")
        let e = try #require(publisher.envelopes.first)
        #expect(e.tenant == "acme")
        #expect(e.format == .pprof)
        #expect(e.payload == cpu)
        #expect(!e.cumulative)
        #expect(e.startNanos == 1_700_000_000_000_000_000)
        #expect(e.endNanos == 1_700_000_010_000_000_000)
        // With pprof, the sample types name the profile; the whole name is the service.
        #expect(e.labels == LabelSet(["service_name": "my.app", "env": "staging", "region": "us-west-1", "pyroscope_spy": "gospy"]))
        #expect(e.attributes["sampleRate"] == "100")
    }

    /// The multipart form pyroscope-go sends: `profile` (gzip pprof) and `sample_type_config` JSON.
    @Test(.requires(.fixtures)) func ingestMultipartForm() async throws {
        let heap = try fixture(Self.heap)
        let config =
            #"{"alloc_objects":{"units":"objects","cumulative":true},"alloc_space":{"units":"bytes","cumulative":true},"inuse_objects":{"units":"objects","aggregation":"average"},"inuse_space":{"units":"bytes","aggregation":"average"}}"#
        let boundary = "8a2f0c1e4b7d"
        @Sendable func form(_ fields: [(String, [UInt8])]) -> [UInt8] {
            var out: [UInt8] = []
            for (name, bytes) in fields {
                out += Array(
                    "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"; filename=\"\(name)\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                        .utf8)
                out += bytes
                out += Array("\r\n".utf8)
            }
            return out + Array("--\(boundary)--\r\n".utf8)
        }
        let publisher = InMemoryRawPublisher()
        try await withIngestServer(publisher: publisher) { base in
            let ok = try await post(
                base + "/pyroscope/ingest?name=shop%7Bservice_name%3Dcart%7D&from=1700000000&until=1700000015&spyName=gospy",
                body: form([("profile", heap), ("sample_type_config", Array(config.utf8))]),
                headers: [("Content-Type", "multipart/form-data; boundary=\(boundary)")])
            #expect(ok.status == 200, "\(ok.text)")
            let prev = try await post(
                base + "/ingest?name=shop",
                body: form([("profile", heap), ("prev_profile", heap)]),
                headers: [("Content-Type", "multipart/form-data; boundary=\(boundary)")])
            #expect(prev.status == 400)
            #expect(prev.text.contains("unsupported client version"))
        }
        #expect(publisher.envelopes.count == 1)
        let e = try #require(publisher.envelopes.first)
        #expect(e.payload == heap)
        #expect(e.format == .pprof)
        #expect(e.attributes["sample_type_config"] == config)
        // service_name given in the labels: the app name goes to app_name, as Pyroscope does.
        #expect(e.labels == LabelSet(["service_name": "cart", "app_name": "shop", "pyroscope_spy": "gospy"]))
    }

    @Test func ingestFoldedText() async throws {
        let folded = Array("main;work;compute 120\nmain;idle 30\n".utf8)
        let publisher = InMemoryRawPublisher()
        let result = try await withIngestServer(publisher: publisher) { base in
            try await post(
                base + "/ingest?name=my.app.cpu%7Benv%3Dstaging%7D&sampleRate=97&spyName=pyspy&units=samples&aggregationType=sum",
                body: folded, headers: [("Content-Type", "text/plain")])
        }
        #expect(result.status == 200, "\(result.text)")
        let e = try #require(publisher.envelopes.first)
        #expect(e.format == .folded)
        #expect(e.payload == folded)
        #expect(e.labels == LabelSet(["__name__": "process_cpu", "service_name": "my.app", "env": "staging", "pyroscope_spy": "pyspy"]))
        #expect(e.attributes["name"] == "process_cpu")
        #expect(e.attributes["sampleRate"] == "97")
        #expect(e.attributes["aggregationType"] == "sum")
        #expect(e.attributes["units"] == "samples")
    }

    @Test(.requires(.fixtures)) func ingestRejectsBadInput() async throws {
        let publisher = InMemoryRawPublisher()
        try await withIngestServer(publisher: publisher) { base in
            let noName = try await post(base + "/ingest?format=pprof", body: try fixture(Self.cpu))
            #expect(noName.status == 400)
            let badName = try await post(base + "/ingest?name=my%20app", body: Array("a;b 1\n".utf8))
            #expect(badName.status == 400)
            #expect(badName.text.contains("invalid service name"))
            let unknownSuffix = try await post(base + "/ingest?name=svc.bogus", body: Array("a;b 1\n".utf8))
            #expect(unknownSuffix.status == 400)
            let jfr = try await post(base + "/ingest?name=svc&format=jfr", body: [1, 2, 3])
            #expect(jfr.status == 422)
            let tenant = try await post(base + "/ingest?name=svc", body: Array("a;b 1\n".utf8), headers: [("X-Scope-OrgID", "no spaces")])
            #expect(tenant.status == 401)
        }
        #expect(publisher.envelopes.isEmpty)
    }

    // MARK: limits

    @Test(.requires(.fixtures)) func bodyAndProfileSizeLimits() async throws {
        let cpu = try fixture(Self.cpu)
        var options = IngestOptions()
        options.maxBodyBytes = cpu.count + 200
        let big = try fixture("go_heap_pyroscope.pb.gz")
        let publisher = InMemoryRawPublisher()
        try await withIngestServer(publisher: publisher, options: options) { base in
            let ingest = try await post(base + "/ingest?name=svc&format=pprof", body: big)
            #expect(ingest.status == 413)
            let connect = try await post(
                base + "/push.v1.PusherService/Push", body: try pushRequest([big], labels: [("service_name", "s")]).serializedBytes(),
                headers: [("Content-Type", "application/proto")])
            #expect(connect.status == 413)
            #expect(connect.connectCode == "resource_exhausted")
            // A gzip body that inflates past the limit.
            let bomb = Gzip.compress([UInt8](repeating: 0, count: 4 << 20))
            let inflated = try await post(
                base + "/push.v1.PusherService/Push", body: bomb,
                headers: [("Content-Type", "application/proto"), ("Content-Encoding", "gzip")])
            #expect(inflated.status == 413)
            let fits = try await post(base + "/ingest?name=svc&format=pprof", body: cpu)
            #expect(fits.status == 200)
        }
        #expect(publisher.envelopes.count == 1)

        // Decompressed size (gzip trailer) over the profile limit.
        var small = IngestOptions()
        small.maxProfileBytes = ProfileSize.decompressedEstimate(cpu) - 1
        #expect(ProfileSize.decompressedEstimate(cpu) > cpu.count)
        try await withIngestServer(publisher: publisher, options: small) { base in
            let ingest = try await post(base + "/ingest?name=svc&format=pprof", body: cpu)
            #expect(ingest.status == 413)
            let connect = try await post(
                base + "/push.v1.PusherService/Push", body: try pushRequest([cpu], labels: [("service_name", "s")]).serializedBytes(),
                headers: [("Content-Type", "application/proto")])
            #expect(connect.status == 400)
            #expect(connect.text.contains("uncompressed profile payload size exceeds limit"))
        }
        #expect(publisher.envelopes.count == 1)
    }

    @Test(.requires(.fixtures)) func perTenantRateLimit() async throws {
        let cpu = try fixture(Self.cpu)
        var options = IngestOptions()
        // The burst holds one profile; refilling it takes about an hour.
        options.burstBytes = Double(ProfileSize.decompressedEstimate(cpu))
        options.rateBytesPerSecond = 1
        let publisher = InMemoryRawPublisher()
        try await withIngestServer(publisher: publisher, options: options) { base in
            let url = base + "/ingest?name=svc&format=pprof"
            #expect(try await post(url, body: cpu, headers: [("X-Scope-OrgID", "a")]).status == 200)
            let limited = try await post(url, body: cpu, headers: [("X-Scope-OrgID", "a")])
            #expect(limited.status == 429)
            #expect(limited.text.contains("rate limit"))
            let connect = try await post(
                base + "/push.v1.PusherService/Push", body: try pushRequest([cpu], labels: [("service_name", "s")]).serializedBytes(),
                headers: [("Content-Type", "application/proto"), ("X-Scope-OrgID", "a")])
            #expect(connect.status == 429)
            #expect(connect.connectCode == "resource_exhausted")
            // Another tenant has its own bucket.
            #expect(try await post(url, body: cpu, headers: [("X-Scope-OrgID", "b")]).status == 200)
        }
        #expect(publisher.envelopes.map(\.tenant) == ["a", "b"])
    }

    // MARK: durability and back-pressure

    @Test(.requires(.fixtures)) func publisherDownIs503() async throws {
        let cpu = try fixture(Self.cpu)
        try await withIngestServer(publisher: FailingPublisher()) { base in
            let ingest = try await post(base + "/ingest?name=svc&format=pprof", body: cpu)
            #expect(ingest.status == 503)
            let connect = try await post(
                base + "/push.v1.PusherService/Push", body: try pushRequest([cpu], labels: [("service_name", "s")]).serializedBytes(),
                headers: [("Content-Type", "application/proto")])
            #expect(connect.status == 503)
            #expect(connect.connectCode == "unavailable")
        }
    }

    /// 200 only once the publisher is done; a stalled publisher turns into a bounded 503, and while the
    /// stalled bytes fill the backlog, further pushes are refused rather than queued.
    @Test(.requires(.fixtures)) func acknowledgesOnlyAfterPublishAndBoundsStalls() async throws {
        let cpu = try fixture(Self.cpu)
        var options = IngestOptions()
        // The second push must meet the held first one: it has the first's whole publish timeout to arrive,
        // so a loaded machine cannot turn the backlog refusal into a timeout.
        options.publishTimeout = .seconds(3)
        options.admissionTimeout = .milliseconds(200)
        options.maxInFlightBytes = cpu.count
        let publisher = GatedPublisher()
        try await withIngestServer(publisher: publisher, options: options) { base in
            let url = base + "/ingest?name=svc&format=pprof"
            let clock = ContinuousClock()
            let start = clock.now
            let first = Task { try await post(url, body: cpu) }
            var arrivals = publisher.arrivals.makeAsyncIterator()
            _ = await arrivals.next()  // the publish has started and is held
            // The backlog is full of the held profile: a second push is refused after the admission wait.
            let second = try await post(url, body: cpu)
            #expect(second.status == 503)
            #expect(second.text.contains("backlog"))
            let stalled = try await first.value
            #expect(stalled.status == 503)
            #expect(stalled.text.contains("did not acknowledge"))
            // Bounded, not fast: a stall ends in an answer (3 s publish timeout) rather than hanging; the
            // margin is for a loaded 2-core machine (16 s seen with the whole suite running beside it).
            #expect(clock.now - start < .seconds(60))

            // Held, then released: the answer comes only after the publisher finished.
            publisher.open()
            let third = Task { try await post(url, body: cpu) }
            let result = try await third.value
            #expect(result.status == 200)
            #expect(publisher.published.count >= 1)
        }
    }
}

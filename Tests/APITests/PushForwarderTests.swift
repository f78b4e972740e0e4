import APICommon
import Foundation
import IngestAPI
import KilnProtos
import ProfileModel
import QueryAPI
import Scrape
import TestSupport
import Testing

/// `pyroscope.write` endpoints: a scraped profile forwarded over Connect Push to a real Kiln ingest server
/// arrives with its tenant, labels, body and cumulative flag; failures are retried or refused as they should.
@Suite struct PushForwarderTests {
    static func scraped(body: [UInt8], cumulative: Bool) -> ScrapedProfile {
        ScrapedProfile(
            tenant: "team-a", labels: ["service_name": "checkout", "__name__": "memory", "job": "apps", "instance": "10.0.0.7:6060"],
            cumulative: cumulative, startTime: Date(), endTime: Date(), body: body,
            url: "http://10.0.0.7:6060/debug/pprof/allocs", forwardTo: ["remote"])
    }

    @Test(.requires(.fixtures)) func forwardsWhatWasScraped() async throws {
        let body = try fixture("go_heap_pyroscope.pb.gz")
        let publisher = GatedPublisher()
        publisher.open()
        try await withIngestServer(publisher: publisher) { url in
            let forwarder = PushForwarder(endpoints: [WriteEndpoint(url: url + "/", headers: ["X-Extra": "1"])])
            try await forwarder.publish(Self.scraped(body: body, cumulative: true))
            try await forwarder.publish(Self.scraped(body: body, cumulative: false))
        }
        let got = publisher.published
        #expect(got.count == 2)
        #expect(got.allSatisfy { $0.tenant == "team-a" && $0.payload == body && $0.source == .push })
        #expect(got.map(\.cumulative) == [true, false], "cumulative travels as __delta__=\"true\"")
        #expect(got.first?.labels[LabelName.serviceName] == "checkout" && got.first?.labels["instance"] == "10.0.0.7:6060")
        #expect(got.first?.labels[LabelName.delta] == nil)
    }

    @Test(.requires(.fixtures)) func retriesUnavailableAndGivesUpWithTheReason() async throws {
        try await withIngestServer(publisher: FailingPublisher()) { url in
            let forwarder = PushForwarder(endpoints: [WriteEndpoint(url: url)], attempts: 2, firstBackoff: .milliseconds(10))
            await #expect {
                try await forwarder.publish(Self.scraped(body: try fixture("go_heap_pyroscope.pb.gz"), cumulative: false))
            } throws: { error in
                "\(error)".contains("HTTP 503") && "\(error)".contains("gave up after 2 attempts")
            }
        }
    }

    @Test(.requires(.fixtures)) func aRefusedProfileFailsAtOnce() async throws {
        let publisher = GatedPublisher()
        publisher.open()
        try await withIngestServer(publisher: publisher) { url in
            let forwarder = PushForwarder(endpoints: [WriteEndpoint(url: url, name: "kiln-b")], attempts: 5, firstBackoff: .seconds(30))
            // A tenant the server refuses (401): the forwarder must not wait 30 s to retry it.
            var profile = Self.scraped(body: try fixture("go_heap_pyroscope.pb.gz"), cumulative: false)
            profile.tenant = "no/slashes"
            await #expect {
                try await forwarder.publish(profile)
            } throws: { error in
                "\(error)".contains("kiln-b refused the profile: HTTP 401")
            }
        }
        #expect(publisher.published.isEmpty)
    }
}

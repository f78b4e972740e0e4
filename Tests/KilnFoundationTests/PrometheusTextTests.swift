import Testing

@testable import KilnFoundation

@Suite("PrometheusText")
struct PrometheusTextTests {
    @Test func prometheusCountersAreSummedPerMetric() {
        let text = """
            # TYPE kiln_ingest_requests_total counter
            kiln_ingest_requests_total{endpoint="ingest",status="200"} 10
            kiln_ingest_requests_total{endpoint="ingest",status="503"} 2
            kiln_normalizer_records_total 1234
            kiln_normalizer_poll_batch_seconds_bucket{le="0.1"} 3
            process_cpu_seconds_total 9
            """
        let m = PrometheusText.parse(text)
        #expect(m["kiln_normalizer_records_total"] == 1234)
        #expect(m["process_cpu_seconds_total"] == nil && m.keys.allSatisfy { !$0.contains("_bucket") })
        #expect(PrometheusText.value(m, name: "kiln_ingest_requests_total") == 12)
        #expect(PrometheusText.value(m, name: "kiln_ingest_requests") == nil)
        #expect(PrometheusText.value(in: text, name: "kiln_normalizer_records_total") == 1234)
    }
}

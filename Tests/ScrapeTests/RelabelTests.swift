import Foundation
import Testing

@testable import Scrape

@Suite("Relabeling")
struct RelabelTests {
    let target: LabelSet = [
        "__address__": "10.1.2.3:6060",
        "__meta_kubernetes_pod_label_app": "checkout",
        "__meta_kubernetes_pod_label_team": "payments",
        "__meta_kubernetes_namespace": "Prod",
        "service_name": "checkout",
    ]

    @Test("replace: groups by number, ${n}, named groups, $1x as Go's group '1x' (empty deletes the label)")
    func replace() throws {
        let host = try RelabelRule(sourceLabels: ["__address__"], regex: "(.*):(\\d+)", targetLabel: "host", replacement: "$1")
        #expect(Relabeling.apply(host, to: target)?["host"] == "10.1.2.3")
        let braces = try RelabelRule(sourceLabels: ["__address__"], regex: "(.*):(\\d+)", targetLabel: "port", replacement: "${2}x")
        #expect(Relabeling.apply(braces, to: target)?["port"] == "6060x")
        let named = try RelabelRule(sourceLabels: ["__address__"], regex: "(?P<ip>[0-9.]+):.*", targetLabel: "ip", replacement: "$ip")
        #expect(Relabeling.apply(named, to: target)?["ip"] == "10.1.2.3")
        let goStyle = try RelabelRule(sourceLabels: ["__address__"], regex: "(.*):(\\d+)", targetLabel: "service_name", replacement: "$1x")
        #expect(Relabeling.apply(goStyle, to: target)?["service_name"] == nil)
        // Several source labels joined by the separator; no match leaves the labels alone.
        let joined = try RelabelRule(
            sourceLabels: ["service_name", "__meta_kubernetes_namespace"], separator: "/",
            regex: "(.+)/(.+)", targetLabel: "service_name", replacement: "$2/$1")
        #expect(Relabeling.apply(joined, to: target)?["service_name"] == "Prod/checkout")
        let noMatch = try RelabelRule(sourceLabels: ["service_name"], regex: "web-.*", targetLabel: "x", replacement: "y")
        #expect(Relabeling.apply(noMatch, to: target) == target)
        // The target label itself may use groups.
        let dynamic = try RelabelRule(sourceLabels: ["service_name"], regex: "(.*)", targetLabel: "svc_$1", replacement: "yes")
        #expect(Relabeling.apply(dynamic, to: target)?["svc_checkout"] == "yes")
        #expect(try RelabelRegex("a$$b").pattern == "a$$b")
    }

    @Test("keep and drop match the whole value (regexes are anchored)")
    func keepDrop() throws {
        let keep = try RelabelRule(sourceLabels: ["service_name"], regex: "check", action: .keep)
        #expect(Relabeling.apply(keep, to: target) == nil)  // "check" does not match all of "checkout"
        let keepAll = try RelabelRule(sourceLabels: ["service_name"], regex: "check.*", action: .keep)
        #expect(Relabeling.apply(keepAll, to: target) == target)
        let drop = try RelabelRule(sourceLabels: ["__meta_kubernetes_namespace"], regex: "Prod|Staging", action: .drop)
        #expect(Relabeling.apply(drop, to: target) == nil)
        let dropMissing = try RelabelRule(sourceLabels: ["absent"], regex: ".+", action: .drop)
        #expect(Relabeling.apply(dropMissing, to: target) == target)
    }

    @Test("labelmap, labeldrop, labelkeep work on label names")
    func labelNameActions() throws {
        let map = try RelabelRule(regex: "__meta_kubernetes_pod_label_(.+)", replacement: "$1", action: .labelmap)
        let mapped = try #require(Relabeling.apply(map, to: target))
        #expect(mapped["app"] == "checkout" && mapped["team"] == "payments")
        #expect(mapped["__meta_kubernetes_pod_label_app"] == "checkout")

        let drop = try RelabelRule(regex: "__meta_.*", action: .labeldrop)
        #expect(Relabeling.apply(drop, to: target) == ["__address__": "10.1.2.3:6060", "service_name": "checkout"])
        let keep = try RelabelRule(regex: "__address__|service_name", action: .labelkeep)
        #expect(Relabeling.apply(keep, to: target) == ["__address__": "10.1.2.3:6060", "service_name": "checkout"])
    }

    @Test("keepequal, dropequal, lowercase, uppercase")
    func equalityAndCase() throws {
        var labels = target
        labels["app"] = "checkout"
        let keepEqual = try RelabelRule(sourceLabels: ["service_name"], targetLabel: "app", action: .keepequal)
        #expect(Relabeling.apply(keepEqual, to: labels) == labels)
        #expect(Relabeling.apply(keepEqual, to: target) == nil)
        let dropEqual = try RelabelRule(sourceLabels: ["service_name"], targetLabel: "app", action: .dropequal)
        #expect(Relabeling.apply(dropEqual, to: labels) == nil)
        let lower = try RelabelRule(sourceLabels: ["__meta_kubernetes_namespace"], targetLabel: "namespace", action: .lowercase)
        #expect(Relabeling.apply(lower, to: target)?["namespace"] == "prod")
        let upper = try RelabelRule(sourceLabels: ["__meta_kubernetes_namespace"], targetLabel: "namespace", action: .uppercase)
        #expect(Relabeling.apply(upper, to: target)?["namespace"] == "PROD")
    }

    @Test("Prometheus' hashmod hash: the last 8 bytes of MD5, big-endian (values from Python's hashlib)")
    func prometheusHash() {
        #expect(PrometheusHash.of("") == 16_825_458_760_271_544_958)
        #expect(PrometheusHash.of("abc") == 15_462_616_177_412_505_458)
        #expect(PrometheusHash.of("10.1.2.3:6060") == 5_973_643_265_638_403_091)
    }

    @Test("hashmod: value in range, stable, spreads targets")
    func hashmod() throws {
        let rule = try RelabelRule(sourceLabels: ["__address__"], modulus: 4, targetLabel: "shard", action: .hashmod)
        var counts = [Int](repeating: 0, count: 4)
        for i in 0..<1000 {
            let labels = try #require(Relabeling.apply(rule, to: ["__address__": "10.0.\(i / 250).\(i % 250):6060"]))
            let value = try #require(labels["shard"])
            let shard = try #require(Int(value))
            #expect((0..<4).contains(shard))
            counts[shard] += 1
        }
        #expect(counts.allSatisfy { $0 > 150 }, "buckets: \(counts)")
        // The hash of 10.1.2.3:6060 (5973643265638403091, from Python's hashlib) modulo 4.
        let expected = 5_973_643_265_638_403_091 % 4
        #expect(Relabeling.apply(rule, to: target)?["shard"] == String(expected))
    }

    @Test("discovery.relabel output feeds a scrape job")
    func relabelComponent() throws {
        let config = try ScrapeConfiguration.parse(
            """
            discovery.relabel "pods" {
              targets = [
                {"__address__" = "10.0.0.1:6060", "__meta_app" = "cart", "__meta_env" = "prod"},
                {"__address__" = "10.0.0.2:6060", "__meta_app" = "search", "__meta_env" = "dev"},
              ]
              rule {
                source_labels = ["__meta_env"]
                regex = "prod"
                action = "keep"
              }
              rule {
                source_labels = ["__meta_app"]
                target_label = "service_name"
              }
            }
            pyroscope.write "w" {
              endpoint { url = "http://127.0.0.1:4040" }
            }
            pyroscope.scrape "s" {
              targets = discovery.relabel.pods.output
              forward_to = [pyroscope.write.w.receiver]
            }
            """, file: "relabel.alloy")
        let job = try #require(config.scrapeJobs.first)
        let targets = TargetResolver.evaluate(job.targets, configuration: config)
        #expect(targets.count == 1)
        #expect(targets.first?["service_name"] == "cart")
        var skipped = 0
        let loops = TargetResolver.scrapeTargets(job: job, targets: targets, shard: .all, skipped: &skipped)
        let cpu = try #require(loops.first { $0.profile.kind == .processCPU })
        #expect(
            cpu.labels == [
                "service_name": "cart", "job": "pyroscope.scrape.s", "instance": "10.0.0.1:6060",
                "__name__": "process_cpu",
            ])
    }

    /// The shortcuts (whole literals, `(.*)`, literal prefixes) answer exactly as the regex engine does.
    @Test("regex shortcuts agree with the regex engine on matches and captures")
    func shortcutsAgreeWithTheEngine() throws {
        let patterns = [
            "", "true", "(.*)", "__meta_kubernetes_pod_label_(.+)", "ab*c", "a{2}b", "abc|abd", "(?i)Web", "web.", "a\\.b",
            "10\\.0\\..*", "x(y)?z", "[ab]c", "prod", "(.+?)(?::\\d+)?;(\\d+)",
        ]
        let inputs = [
            "", "true", "True", "__meta_kubernetes_pod_label_app", "__meta_kubernetes_pod_label_", "__meta_kubernetes_pod_name", "ac",
            "abbbc", "aab", "ab", "abd", "web", "WEB", "webx", "a.b", "axb", "10.0.0.1", "xz", "xyz", "bc", "prod", "line\nbreak",
            "10.1.2.3:8080;6060", "e\u{301}", "caf\u{e9}",
        ]
        for pattern in patterns {
            let regex = try RelabelRegex(pattern)
            let engine = try NSRegularExpression(pattern: "^(?:" + pattern + ")$")
            for input in inputs {
                let reference = engine.firstMatch(in: input, range: NSRange(input.startIndex..., in: input))
                let match = regex.firstMatch(input)
                #expect((match != nil) == (reference != nil), "\(pattern) on \(input.debugDescription)")
                guard let match, let reference else { continue }
                for n in 0..<reference.numberOfRanges {
                    let range = reference.range(at: n)
                    let expected = range.location == NSNotFound ? "" : String(input[Range(range, in: input)!])
                    #expect(match.group(String(n)) == expected, "\(pattern) on \(input.debugDescription), group \(n)")
                }
            }
        }
    }
}

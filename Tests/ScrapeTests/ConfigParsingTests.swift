import Foundation
import KilnFoundation
import TestSupport
import Testing

@testable import Scrape

@Suite("Alloy configuration")
struct ConfigParsingTests {
    static var seedURL: URL { TestEnvironment.fixturesDir.appendingPathComponent("alloy/seed.alloy") }

    @Test("the article's seed config parses with Alloy's defaults and its enabled profiles", .requires(.fixture("alloy/seed.alloy")))
    func seedConfig() throws {
        let text = try String(contentsOf: Self.seedURL, encoding: .utf8)
            .replacingOccurrences(of: "Apps_ip_address:Apps_Port", with: "127.0.0.1:6060")
            .replacingOccurrences(of: "Your_Apps_Name", with: "checkout")
            .replacingOccurrences(of: "Your_Pyroscope_ip_address:Your_Pyroscope_Port", with: "127.0.0.1:4040")
        let config = try ScrapeConfiguration.parse(text, file: "seed.alloy")
        #expect(config.scrapeJobs.count == 1)
        let job = try #require(config.scrapeJobs.first)
        #expect(job.label == "scrape_job_name")
        #expect(job.jobName == "pyroscope.scrape.scrape_job_name")
        #expect(job.forwardTo == ["write_job_name"])
        #expect(job.tenant == "anonymous")
        #expect(job.scrapeInterval == .seconds(15))
        #expect(job.scrapeTimeout == .seconds(10))
        #expect(job.deltaProfilingDuration == .seconds(14))
        #expect(job.scheme == "http")

        let enabled = Set(job.enabledProfiles.map(\.name))
        // Seed: process_cpu, godeltaprof_memory, godeltaprof_block, goroutine on; memory, mutex, block,
        // godeltaprof_mutex off; fgprof keeps Alloy's default (off).
        #expect(enabled == ["process_cpu", "godeltaprof_memory", "godeltaprof_block", "goroutine"])
        let cpu = try #require(job.profile(.processCPU))
        #expect(job.requestPath(for: cpu) == "/debug/pprof/profile?seconds=14")
        #expect(job.timeout(for: cpu) == .seconds(24))
        #expect(job.requestPath(for: try #require(job.profile(.godeltaprofMemory))) == "/debug/pprof/delta_heap")
        #expect(job.requestPath(for: try #require(job.profile(.godeltaprofBlock))) == "/debug/pprof/delta_block")

        var skipped = 0
        let targets = TargetResolver.scrapeTargets(
            job: job, targets: TargetResolver.evaluate(job.targets, configuration: config),
            shard: .all, skipped: &skipped)
        #expect(
            Set(targets.map(\.url)) == [
                "http://127.0.0.1:6060/debug/pprof/profile?seconds=14",
                "http://127.0.0.1:6060/debug/pprof/delta_heap",
                "http://127.0.0.1:6060/debug/pprof/delta_block",
                "http://127.0.0.1:6060/debug/pprof/goroutine",
            ])
        let heap = try #require(targets.first { $0.profile.kind == .godeltaprofMemory })
        #expect(
            heap.labels == [
                "service_name": "checkout", "job": "pyroscope.scrape.scrape_job_name",
                "instance": "127.0.0.1:6060", "__name__": "memory",
            ])
        #expect(heap.profile.cumulative == false)

        let writer = try #require(config.writers["write_job_name"])
        #expect(writer.endpoints.map(\.url) == ["http://127.0.0.1:4040"])
        #expect(writer.kafka == nil)
    }

    @Test("Alloy's defaults when profiling_config is absent: memory, block, goroutine, mutex, process_cpu")
    func defaultsWithoutProfilingConfig() throws {
        let config = try ScrapeConfiguration.parse(
            """
            pyroscope.write "w" {
              kafka {
                brokers = "127.0.0.1:9092, 127.0.0.1:9093"
              }
            }
            pyroscope.scrape "s" {
              targets    = [{"__address__" = "10.0.0.1:6060"}]
              forward_to = [pyroscope.write.w.receiver]
              scrape_interval = "30s"
              tenant = "team-a"
            }
            """, file: "d.alloy")
        let job = try #require(config.scrapeJobs.first)
        #expect(Set(job.enabledProfiles.map(\.kind)) == [.memory, .block, .goroutine, .mutex, .processCPU])
        #expect(job.deltaProfilingDuration == .seconds(29))
        #expect(job.requestPath(for: try #require(job.profile(.processCPU))) == "/debug/pprof/profile?seconds=29")
        #expect(job.profile(.memory)?.cumulative == true)
        #expect(job.profile(.goroutine)?.cumulative == false)
        #expect(job.tenant == "team-a")
        let kafka = try #require(config.writers["w"]?.kafka)
        #expect(kafka.brokers == ["127.0.0.1:9092", "127.0.0.1:9093"])
        #expect(kafka.topic == "kiln.profiles.raw")
    }

    @Test("syntax: comments, escapes, raw strings, numbers, objects, custom profiles, path_prefix, auth, tls")
    func richSyntax() throws {
        let config = try ScrapeConfiguration.parse(
            #"""
            /* block comment
               over lines */
            pyroscope.write "w" { // trailing comment
              endpoint {
                url = "https://pyro.example:4040"
                headers = {"X-Scope-OrgID" = "t1", plain = "v"}
                remote_timeout = "30s"
              }
              kafka {
                brokers = ["b1:9092"]
                topic = "custom.topic"
                options = {"security.protocol" = "SASL_SSL"}
              }
            }
            pyroscope.scrape "s" {
              targets = [
                {"__address__" = "a:1", "env" = "tab\there \"q\" \u00e9"},
                {__address__ = `raw\n`, team = "x",},
              ]
              forward_to = [pyroscope.write.w.receiver]
              job_name = "checkout"
              scrape_interval = "1m"
              scrape_timeout = "500ms"
              delta_profiling_duration = "20s"
              body_size_limit = 1048576
              scheme = "https"
              bearer_token_file = "/run/token"
              tls_config {
                ca_file = "/etc/ca.pem"
                insecure_skip_verify = true
              }
              profiling_config {
                path_prefix = "/app"
                profile.fgprof { enabled = true }
                profile.memory {
                  path = "/debug/pprof/heap"
                }
                profile.custom "wall" {
                  path = "/debug/wall"
                  enabled = true
                  delta = true
                }
              }
            }
            """#, file: "rich.alloy")
        let job = try #require(config.scrapeJobs.first)
        guard case .literal(let targets) = job.targets else {
            Issue.record("expected literal targets")
            return
        }
        #expect(targets[0]["env"] == "tab\there \"q\" é")
        #expect(targets[1]["__address__"] == "raw\\n")
        #expect(job.jobName == "checkout")
        #expect(job.scrapeTimeout == .milliseconds(500))
        #expect(job.deltaProfilingDuration == .seconds(20))
        #expect(job.bodySizeLimit == 1_048_576)
        #expect(job.credentials.bearerTokenFile == "/run/token")
        #expect(job.tls == TLSSettings(caFile: "/etc/ca.pem", insecureSkipVerify: true))
        #expect(job.requestPath(for: try #require(job.profile(.fgprof))) == "/app/debug/fgprof?seconds=20")
        #expect(job.profile(.memory)?.path == "/app/debug/pprof/heap")
        let wall = try #require(job.profiles.first { $0.kind == .custom })
        #expect(wall.seriesName == "wall" && wall.enabled && wall.cumulative == false)
        #expect(job.requestPath(for: wall) == "/app/debug/wall?seconds=20")
        let writer = try #require(config.writers["w"])
        #expect(writer.endpoints.first?.headers == ["X-Scope-OrgID": "t1", "plain": "v"])
        #expect(writer.endpoints.first?.remoteTimeout == .seconds(30))
        #expect(writer.kafka == KafkaWrite(brokers: ["b1:9092"], topic: "custom.topic", options: ["security.protocol": "SASL_SSL"]))
    }

    @Test("sys.env supplies secrets")
    func environmentFunction() throws {
        let config = try ScrapeConfiguration.parse(
            """
            pyroscope.write "w" {
              endpoint { url = "http://127.0.0.1:1" }
            }
            pyroscope.scrape "s" {
              targets = [{"__address__" = "a:1"}]
              forward_to = [pyroscope.write.w.receiver]
              basic_auth {
                username = "kiln"
                password = sys.env("KILN_TEST_PASSWORD")
              }
            }
            """, file: "env.alloy", environment: ["KILN_TEST_PASSWORD": "s3cret"])
        let auth = try #require(config.scrapeJobs.first?.credentials)
        #expect(auth.basicAuth == BasicAuth(username: "kiln", password: "s3cret", passwordFile: nil))
        #expect(try HTTPProfileFetcher.authorization(auth) == "Basic " + Data("kiln:s3cret".utf8).base64EncodedString())
        #expect(try HTTPProfileFetcher.authorization(ScrapeCredentials(bearerToken: "abc")) == "Bearer abc")
    }

    static let prefix = """
        pyroscope.write "w" {
          endpoint {
            url = "http://127.0.0.1:4040"
          }
        }
        pyroscope.scrape "s" {
          targets = [{"__address__" = "127.0.0.1:1"}]
          forward_to = [pyroscope.write.w.receiver]

        """

    /// (config text, expected error) — positions counted by hand from the text.
    static let brokenConfigs: [(String, String)] = [
        (
            prefix + "  profiling_config {\n    profile.mutex {\n      enabled true\n    }\n  }\n}\n",
            #"bad.alloy:11:15: expected '=' or '{' after identifier "enabled", found identifier "true""#
        ),
        (
            prefix + "  scrape_interval = \"1s\"\n}\n",
            "bad.alloy:9:21: scrape_interval must be at least 2s, got 1s"
        ),
        (
            prefix + "  scrape_interval = \"15x\"\n}\n",
            #"bad.alloy:9:21: "scrape_interval" is not a valid duration: "15x" (write e.g. "15s", "1m30s", "500ms")"#
        ),
        (
            prefix + "  delta_profiling_duration = \"15s\"\n}\n",
            "bad.alloy:9:30: delta_profiling_duration must be greater than 1s and at most scrape_interval - 1s (14s), got 15s"
        ),
        (
            prefix + "  unknown_thing = 1\n}\n",
            #"bad.alloy:9:3: unknown attribute "unknown_thing" in pyroscope.scrape "s""#
        ),
        (
            prefix + "  profiling_config {\n    profile.cpu {\n      enabled = true\n    }\n  }\n}\n",
            #"bad.alloy:10:5: unknown block "profile.cpu" in profiling_config"#
        ),
        (
            prefix + "  job_name = \"abc\n}\n",
            "bad.alloy:9:14: unterminated string (strings cannot span lines)"
        ),
        (
            prefix + "  job_name = \"a\\qb\"\n}\n",
            #"bad.alloy:9:16: unknown escape sequence \q"#
        ),
        (
            prefix + "  job_name = \"a\" scheme = \"http\"\n}\n",
            #"bad.alloy:9:18: expected a line break or '}' after attribute "job_name", found identifier "scheme""#
        ),
        (
            prefix + "  scheme = \"ftp\"\n}\n",
            #"bad.alloy:9:12: scheme must be "http" or "https", got "ftp""#
        ),
        (
            prefix + "  profiling_config {\n    profile.block {\n      enabled = \"yes\"\n    }\n  }\n}\n",
            #"bad.alloy:11:17: "enabled" must be a bool, found string"#
        ),
        (prefix, "bad.alloy:9:1: missing '}' to close the block opened at line 6, column 22"),
        (prefix + "}\n/* never closed\n", "bad.alloy:10:1: unterminated block comment"),
        (
            "prometheus.scrape \"x\" {\n}\n",
            #"bad.alloy:1:1: unsupported component "prometheus.scrape" (Kiln supports pyroscope.scrape, pyroscope.write, discovery.relabel, discovery.file, discovery.http, discovery.dns, discovery.kubernetes)"#
        ),
        (
            "pyroscope.write \"w\" {\n  endpoint { url = \"http://h:1\" }\n}\npyroscope.scrape \"s\" {\n  targets = [{\"__address__\" = \"a:1\"}]\n  forward_to = [pyroscope.write.nope.receiver]\n}\n",
            #"bad.alloy:6:17: "forward_to" refers to pyroscope.write "nope", which is not defined"#
        ),
        (
            "pyroscope.write \"w\" {\n  endpoint { url = \"http://h:1\" }\n}\npyroscope.scrape \"s\" {\n  targets = [{\"service_name\" = \"a\"}]\n  forward_to = [pyroscope.write.w.receiver]\n}\n",
            #"bad.alloy:5:14: target has no "__address__" label"#
        ),
        (
            "pyroscope.write \"w\" {\n  endpoint { url = \"http://h:1\" }\n}\npyroscope.scrape \"s\" {\n  targets = discovery.relabel.missing.output\n  forward_to = [pyroscope.write.w.receiver]\n}\n",
            #"bad.alloy:5:13: reference to undefined component discovery.relabel "missing""#
        ),
        (
            "discovery.relabel \"r\" {\n  targets = [{\"__address__\" = \"a:1\"}]\n  rule {\n    action = \"explode\"\n  }\n}\n",
            #"bad.alloy:4:14: unknown relabel action "explode" (use one of replace, keep, drop, hashmod, labelmap, labeldrop, labelkeep, keepequal, dropequal, lowercase, uppercase)"#
        ),
        (
            "discovery.relabel \"r\" {\n  targets = [{\"__address__\" = \"a:1\"}]\n  rule {\n    action = \"hashmod\"\n    target_label = \"shard\"\n  }\n}\n",
            #"bad.alloy:3:3: relabel action "hashmod" requires a modulus greater than 0"#
        ),
        (
            "pyroscope.write \"w\" {\n}\n",
            #"bad.alloy:1:1: pyroscope.write "w" needs an endpoint { url = ... } or a kafka { brokers = ... } block"#
        ),
        (
            "discovery.relabel \"a\" {\n  targets = discovery.relabel.b.output\n}\ndiscovery.relabel \"b\" {\n  targets = discovery.relabel.a.output\n}\n",
            #"bad.alloy:1:1: discovery.relabel "a" depends on its own output"#
        ),
        (
            "pyroscope.write \"w\" {\n  endpoint { url = \"http://h:1\" }\n}\npyroscope.write \"w\" {\n  endpoint { url = \"http://h:2\" }\n}\n",
            #"bad.alloy:4:1: component pyroscope.write "w" is defined twice (first at line 1)"#
        ),
        (
            "pyroscope.write \"w\" {\n  endpoint { url = [1, 2 }\n}\n",
            "bad.alloy:2:26: expected ',' or ']' in list, found '}'"
        ),
        (
            "discovery.http \"sd\" {\n  url = \"ftp://h/targets\"\n}\n",
            #"bad.alloy:2:9: url must be an http:// or https:// URL, got "ftp://h/targets""#
        ),
        (
            "discovery.http \"sd\" {\n  url = \"http://h/targets\"\n  proxy_url = \"http://p:1\"\n}\n",
            #"bad.alloy:3:3: unknown attribute "proxy_url" in discovery.http "sd""#
        ),
        (
            "pyroscope.write \"w\" {\n  endpoint { url = \"http://h:1\" }\n}\npyroscope.scrape \"s\" {\n  targets = discovery.http.sd.output\n  forward_to = [pyroscope.write.w.receiver]\n}\ndiscovery.http \"sd\" {\n  url = \"http://h/t\"\n}\n",
            #"bad.alloy:5:13: discovery.http exports "targets", not "output""#
        ),
        (
            "discovery.dns \"d\" {\n  names = [\"example.com\"]\n  type = \"MX\"\n}\n",
            #"bad.alloy:3:10: type must be SRV, A or AAAA, got "MX" (MX and NS are not supported yet)"#
        ),
        (
            "discovery.dns \"d\" {\n  names = [\"web.example.com\"]\n  type = \"A\"\n}\n",
            #"bad.alloy:1:1: discovery.dns of type A needs a port (1-65535)"#
        ),
    ]

    @Test("broken configs name file, line, column and the problem", arguments: brokenConfigs.indices)
    func brokenConfig(_ index: Int) {
        let (text, expected) = Self.brokenConfigs[index]
        do {
            _ = try ScrapeConfiguration.parse(text, file: "bad.alloy")
            Issue.record("config \(index) parsed but should fail with: \(expected)")
        } catch {
            #expect(error.description == expected)
        }
    }

    @Test("Go durations")
    func durations() {
        #expect(DurationText.parse("15s") == .seconds(15))
        #expect(DurationText.parse("1m30s") == .seconds(90))
        #expect(DurationText.parse("1.5h") == .seconds(5400))
        #expect(DurationText.parse("250ms") == .milliseconds(250))
        #expect(DurationText.parse("15") == nil)
        #expect(DurationText.parse("s") == nil)
        #expect(DurationText.parse("") == nil)
        #expect(DurationText.format(.seconds(90)) == "1m30s")
        #expect(DurationText.format(.milliseconds(1500)) == "1500ms")
    }
}

import Foundation
import TestSupport
import Testing

@testable import Scrape

#if canImport(Glibc)
    import Glibc
#endif

@Suite("discovery.dns")
struct DNSDiscoveryTests {
    /// An answer as a server writes it: the question, then records whose names point back at it.
    static func answer(id: UInt16, question: [UInt8], records: [[UInt8]], flags: UInt8 = 0x80, rcode: UInt8 = 0) -> [UInt8] {
        var m = Array(question)
        m[2] = flags | 0x01
        m[3] = 0x80 | rcode
        m[7] = UInt8(records.count)
        for r in records { m += r }
        return m
    }

    @Test("answers parse with compressed names; broken ones are refused, never crash")
    func parsesAnswers() throws {
        let question = try DNSResolver.query("_pprof._tcp.fleet.test", type: .srv, id: 7)
        // SRV record: name = pointer to the question (offset 12), type 33, class 1, TTL, length, then
        // priority 1, weight 2, port 8081 and the target "app1" + pointer to "fleet.test" inside the question.
        let fleetOffset = 12 + 1 + 6 + 1 + 4  // "_pprof" "_tcp" → "fleet"
        let target: [UInt8] = [4] + Array("app1".utf8) + [0xC0, UInt8(fleetOffset)]
        let srv: [UInt8] = [0xC0, 12, 0, 33, 0, 1, 0, 0, 0, 60, 0, UInt8(6 + target.count), 0, 1, 0, 2, 0x1F, 0x91] + target
        let cname: [UInt8] = [0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xC0, 12]  // another type: skipped
        let records = try DNSResolver.parse(Self.answer(id: 7, question: question, records: [cname, srv]), type: .srv)
        #expect(records == [.srv(priority: 1, weight: 2, port: 8081, target: "app1.fleet.test")])
        let targets = DNSTargetWatcher.targets(records, name: "_pprof._tcp.fleet.test", port: 0)
        #expect(targets.map { $0["__address__"] } == ["app1.fleet.test:8081"])
        #expect(targets.first?["__meta_dns_srv_record_target"] == "app1.fleet.test")
        #expect(targets.first?["__meta_dns_srv_record_port"] == "8081")
        #expect(targets.first?["__meta_dns_name"] == "_pprof._tcp.fleet.test")

        let v6 = DNSTargetWatcher.targets(
            [.aaaa([0xfd] + [UInt8](repeating: 0, count: 14) + [1]), .a([10, 0, 0, 7])], name: "n", port: 6060)
        #expect(v6.map { $0["__address__"] } == ["[fd00::1]:6060", "10.0.0.7:6060"])

        // NXDOMAIN: no targets. A pointer loop, a record past the end, a truncated answer: errors.
        #expect(try DNSResolver.parse(Self.answer(id: 7, question: question, records: [], rcode: 3), type: .srv).isEmpty)
        let loop: [UInt8] = [0xC0, UInt8(question.count), 0, 33, 0, 1, 0, 0, 0, 60, 0, 0]
        var looping = Self.answer(id: 7, question: question, records: [loop])
        looping[question.count + 1] = UInt8(question.count)  // the record's name points at itself
        #expect(throws: DNSError.self) { try DNSResolver.parse(looping, type: .srv) }
        #expect(throws: DNSError.self) {
            try DNSResolver.parse(Array(Self.answer(id: 7, question: question, records: [srv]).dropLast(3)), type: .srv)
        }
        #expect(throws: DNSError.self) {
            try DNSResolver.parse(Self.answer(id: 7, question: question, records: [srv], flags: 0x82), type: .srv)
        }
        var rng = SplitMix(state: 99)
        for _ in 0..<2000 {
            var damaged = Self.answer(id: 7, question: question, records: [cname, srv])
            damaged[12 + rng.below(damaged.count - 12)] = UInt8(truncatingIfNeeded: rng.next())
            _ = try? DNSResolver.parse(damaged, type: .srv)
        }
    }

    /// A port on 127.0.0.1 free for UDP and for TCP (dnsmasq listens on both; a port free for UDP can be taken
    /// by a TCP connection), bound and released; dnsmasq takes it next.
    static func freeUDPPort() throws -> UInt16 {
        for _ in 0..<20 {
            let udp = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            let tcp = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer {
                close(udp)
                close(tcp)
            }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(udp, $0, length) == 0 && getsockname(udp, $0, &length) == 0 && bind(tcp, $0, length) == 0
                }
            }
            if bound { return UInt16(bigEndian: address.sin_port) }
        }
        struct NoFreePort: Error, CustomStringConvertible {
            var description: String { "no port free for both UDP and TCP on 127.0.0.1" }
        }
        throw NoFreePort()
    }

    /// dnsmasq answering for `fleet.test` only: A records from the files in `hosts` (read again as files
    /// appear, through inotify), SRV records from `srv`.
    static func dnsmasq(port: UInt16, hosts: URL, srv: [String]) throws -> ChildProcess {
        try ChildProcess(
            URL(fileURLWithPath: "/usr/sbin/dnsmasq"),
            [
                "--keep-in-foreground", "--port=\(port)", "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
                "--no-hosts", "--conf-file=/dev/null", "--pid-file=", "--user=root", "--log-facility=-", "--log-queries",
                "--hostsdir=\(hosts.path)", "--local=/fleet.test/",
            ] + srv.map { "--srv-host=\($0)" })
    }

    /// Debian's dnsmasq serves SRV and A records on a loopback port; the scraper follows both as they change.
    @Test("SRV and A targets from dnsmasq follow its records", .requires(.dnsmasq))
    func followsDnsmasq() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let hosts = dir.url.appendingPathComponent("hosts.d")
        try FileManager.default.createDirectory(at: hosts, withIntermediateDirectories: true)
        try "127.0.0.5 web.fleet.test\n".write(to: hosts.appendingPathComponent("web1"), atomically: false, encoding: .utf8)
        let port = try Self.freeUDPPort()
        let srv = ["_pprof._tcp.fleet.test,app1.fleet.test,8081", "_pprof._tcp.fleet.test,app2.fleet.test,8082"]
        var server = try Self.dnsmasq(port: port, hosts: hosts, srv: srv)
        defer { server.signal(SIGKILL) }
        _ = try await server.waitForLine { $0.contains("started") }

        let text =
            writerPrefix() + """
                discovery.dns "srv" {
                  names = ["_pprof._tcp.fleet.test"]
                  refresh_interval = "200ms"
                }
                discovery.dns "web" {
                  names = ["web.fleet.test"]
                  type = "A"
                  port = 6060
                  refresh_interval = "200ms"
                }
                pyroscope.scrape "s" {
                  targets = array.concat(discovery.dns.srv.targets, discovery.dns.web.targets)
                  forward_to = [pyroscope.write.w.receiver]
                  scrape_interval = "2s"
                  profiling_config {
                    profile.process_cpu { enabled = false }
                    profile.memory { enabled = false }
                    profile.mutex { enabled = false }
                    profile.block { enabled = false }
                  }
                }
                """
        let config = try ScrapeConfiguration.parse(text, file: "dns.alloy")
        let fetcher = RecordingFetcher { _ in [0x1f, 0x8b] }
        var options = ScrapeManagerOptions(spreadStartOffsets: false)
        options.dnsResolver = DNSResolver(servers: [("127.0.0.1", port)])
        let manager = ScrapeManager(configuration: config, sink: InMemoryProfileSink(), fetcher: fetcher, options: options)
        let running = Task { await manager.run() }
        defer { running.cancel() }
        func urls() -> Set<String> { Set(manager.targetHealth.map(\.url)) }
        func url(_ address: String) -> String { "http://\(address)/debug/pprof/goroutine" }

        let first = await waitUntil(timeout: .seconds(30)) {
            urls() == [url("app1.fleet.test:8081"), url("app2.fleet.test:8082"), url("127.0.0.5:6060")]
        }
        #expect(first, "\(urls()) \(manager.status.discoveryErrors)")
        let scraped = await waitUntil(timeout: .seconds(30)) { fetcher.urls.contains(url("app2.fleet.test:8082")) }
        #expect(scraped)

        // A second A record (a new hosts file dnsmasq reads as it appears), and one SRV record gone
        // (dnsmasq restarted without it).
        try "127.0.0.6 web.fleet.test\n".write(to: hosts.appendingPathComponent("web2"), atomically: false, encoding: .utf8)
        let grown = await waitUntil(timeout: .seconds(30)) { urls().contains(url("127.0.0.6:6060")) }
        #expect(grown, "\(urls()) \(server.lines.filter { !$0.contains("SRV") }.suffix(4))")
        server.signal(SIGKILL)
        _ = try await server.waitForExit()
        server = try Self.dnsmasq(port: port, hosts: hosts, srv: [srv[0]])
        _ = try await server.waitForLine { $0.contains("started") }
        let shrunk = await waitUntil(timeout: .seconds(30)) { !urls().contains(url("app2.fleet.test:8082")) }
        #expect(shrunk, "\(urls())")
        #expect(urls() == [url("app1.fleet.test:8081"), url("127.0.0.5:6060"), url("127.0.0.6:6060")])
        running.cancel()
        await running.value
    }
}

import AsyncHTTPClient
import Foundation
import KilnFoundation
import NIOCore

/// A process whose cost is recorded while the load runs: `name=PID` or `name=PID@http://host:port` (its admin
/// address, for `/metrics`).
public struct WatchSpec: Sendable, Equatable {
    public var name: String
    public var pid: Int32
    public var adminURL: String?

    public init(name: String, pid: Int32, adminURL: String? = nil) {
        self.name = name
        self.pid = pid
        self.adminURL = adminURL
    }

    public init(parsing text: String) throws {
        guard let eq = text.firstIndex(of: "=") else { throw LoadGenError("--watch \(text): expected name=PID[@http://host:port]") }
        name = String(text[..<eq])
        let rest = text[text.index(after: eq)...]
        let pidText: Substring
        if let at = rest.firstIndex(of: "@") {
            pidText = rest[..<at]
            adminURL = String(rest[rest.index(after: at)...])
        } else {
            pidText = rest
            adminURL = nil
        }
        guard !name.isEmpty, let pid = Int32(pidText), pid > 0 else {
            throw LoadGenError("--watch \(text): expected name=PID[@http://host:port]")
        }
        self.pid = pid
    }
}

/// CPU and memory of a process from /proc (Linux).
public struct ProcessUsage: Sendable, Codable, Equatable {
    /// User + system CPU seconds since the process started.
    public var cpuSeconds: Double
    public var rssBytes: Int64
    /// Peak resident set (VmHWM).
    public var peakRSSBytes: Int64

    public init(cpuSeconds: Double, rssBytes: Int64, peakRSSBytes: Int64) {
        self.cpuSeconds = cpuSeconds
        self.rssBytes = rssBytes
        self.peakRSSBytes = peakRSSBytes
    }

    enum CodingKeys: String, CodingKey {
        case cpuSeconds = "cpu_seconds"
        case rssBytes = "rss_bytes"
        case peakRSSBytes = "peak_rss_bytes"
    }

    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// Nil when the process is gone.
    public static func read(pid: Int32) -> ProcessUsage? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        else { return nil }
        return parse(stat: stat, status: status)
    }

    /// `stat`: fields after the command name (which may hold spaces, so split after the last ')'): utime and
    /// stime are fields 14 and 15 of the whole line. `status`: `VmRSS:` and `VmHWM:` in kB.
    public static func parse(stat: String, status: String) -> ProcessUsage? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
        var rss: Int64 = 0
        var hwm: Int64 = 0
        for line in status.split(separator: "\n") {
            if line.hasPrefix("VmRSS:") { rss = kilobytes(line) }
            if line.hasPrefix("VmHWM:") { hwm = kilobytes(line) }
        }
        return ProcessUsage(cpuSeconds: (utime + stime) / ticksPerSecond, rssBytes: rss, peakRSSBytes: hwm)
    }

    static func kilobytes(_ line: Substring) -> Int64 {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        return parts.count >= 2 ? (Int64(parts[1]) ?? 0) * 1024 : 0
    }
}

/// Reads each watched process once per sample.
public final class ProcessWatcher: Sendable {
    public let specs: [WatchSpec]
    let client: HTTPClient

    public init(specs: [WatchSpec]) {
        self.specs = specs
        client = HTTPClient(eventLoopGroupProvider: .singleton)
    }

    public struct Reading: Sendable, Codable {
        public var usage: ProcessUsage?
        public var metrics: [String: Double]?
    }

    public func sample() async -> [String: Reading] {
        await withTaskGroup(of: (String, Reading).self) { group in
            for spec in specs {
                group.addTask { [client] in
                    var metrics: [String: Double]?
                    if let admin = spec.adminURL {
                        let base = admin.hasSuffix("/") ? String(admin.dropLast()) : admin
                        if let response = try? await client.execute(HTTPClientRequest(url: base + "/metrics"), timeout: .milliseconds(900)),
                            response.status.code == 200,
                            let body = try? await response.body.collect(upTo: 8 << 20)
                        {
                            metrics = PrometheusText.parse(String(buffer: body))
                        }
                    }
                    return (spec.name, Reading(usage: ProcessUsage.read(pid: spec.pid), metrics: metrics))
                }
            }
            var out: [String: Reading] = [:]
            for await (name, reading) in group { out[name] = reading }
            return out
        }
    }

    public func shutdown() async { try? await client.shutdown() }
}

import Foundation
import KilnFoundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A record a `discovery.dns` name resolves to.
public enum DNSRecord: Sendable, Equatable {
    case a([UInt8])
    case aaaa([UInt8])
    case srv(priority: UInt16, weight: UInt16, port: UInt16, target: String)
}

public struct DNSError: Error, Sendable, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A minimal DNS stub resolver over UDP (RFC 1035): one question, recursion desired, the answers of the
/// asked type. The servers are `KILN_DNS_SERVERS` (`host:port,...`) if set, else the IPv4 `nameserver`s
/// of /etc/resolv.conf. Names are asked as written (no search domains).
public struct DNSResolver: Sendable {
    public var servers: [(host: String, port: UInt16)]
    public var timeout: Duration = .seconds(5)

    public init(servers: [(host: String, port: UInt16)]) { self.servers = servers }

    public static func system(environment: [String: String] = ProcessInfo.processInfo.environment) -> DNSResolver {
        if let list = environment["KILN_DNS_SERVERS"], !list.isEmpty {
            return DNSResolver(servers: list.split(separator: ",").compactMap { hostPort(String($0), defaultPort: 53) })
        }
        let conf = (try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)) ?? ""
        var servers: [(String, UInt16)] = []
        for line in conf.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count >= 2, fields[0] == "nameserver", inet_addr(String(fields[1])) != INADDR_NONE {
                servers.append((String(fields[1]), 53))
            }
        }
        return DNSResolver(servers: servers.isEmpty ? [("127.0.0.1", 53)] : servers)
    }

    static func hostPort(_ text: String, defaultPort: UInt16) -> (String, UInt16)? {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: ":")
        guard let host = parts.first, parts.count <= 2 else { return nil }
        let port = parts.count == 2 ? UInt16(parts[1]) : defaultPort
        return port.map { (String(host), $0) }
    }

    public enum RecordType: UInt16, Sendable {
        case a = 1
        case aaaa = 28
        case srv = 33
    }

    /// The answers for `name` of `type`, asking each server in turn until one answers. Blocking: run it off
    /// the cooperative pool. A name that does not exist has no records.
    public func lookup(_ name: String, type: RecordType) throws(DNSError) -> [DNSRecord] {
        var lastError = DNSError("no DNS server configured")
        for server in servers {
            do {
                return try Self.parse(
                    try exchange(Self.query(name, type: type, id: UInt16.random(in: 0...UInt16.max)), with: server), type: type)
            } catch {
                lastError = DNSError("\(server.host):\(server.port): \(error.message)")
            }
        }
        throw lastError
    }

    static func query(_ name: String, type: RecordType, id: UInt16) throws(DNSError) -> [UInt8] {
        var out: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        for label in name.split(separator: ".") {
            let bytes = Array(label.utf8)
            guard !bytes.isEmpty, bytes.count < 64 else { throw DNSError("\"\(name)\" is not a valid DNS name") }
            out.append(UInt8(bytes.count))
            out += bytes
        }
        out += [0, UInt8(type.rawValue >> 8), UInt8(type.rawValue & 0xFF), 0, 1]
        return out
    }

    private func exchange(_ query: [UInt8], with server: (host: String, port: UInt16)) throws(DNSError) -> [UInt8] {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw DNSError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let seconds = timeout.components.seconds
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = server.port.bigEndian
        address.sin_addr.s_addr = inet_addr(server.host)
        guard address.sin_addr.s_addr != INADDR_NONE else { throw DNSError("not an IPv4 address") }
        let sent = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, query, query.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard sent == query.count else { throw DNSError("send: \(String(cString: strerror(errno)))") }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n >= 0 else {
                throw DNSError(
                    errno == EAGAIN || errno == EWOULDBLOCK ? "no answer within \(timeout)" : "receive: \(String(cString: strerror(errno)))"
                )
            }
            // Answers to an earlier query on the same port are skipped: the ID must match.
            if n >= 2, buffer[0] == query[0], buffer[1] == query[1] { return Array(buffer[..<n]) }
        }
    }

    /// The records of `type` in an answer; every offset is checked.
    static func parse(_ m: [UInt8], type: RecordType) throws(DNSError) -> [DNSRecord] {
        guard m.count >= 12 else { throw DNSError("answer shorter than a DNS header") }
        if m[2] & 0x02 != 0 { throw DNSError("answer truncated (more than fits a UDP message; TCP is not supported)") }
        switch m[3] & 0x0F {
        case 0: break
        case 3: return []  // NXDOMAIN
        case let code: throw DNSError("server answered with error code \(code)")
        }
        func u16(_ at: Int) throws(DNSError) -> Int {
            guard at + 2 <= m.count else { throw DNSError("answer truncated at byte \(at)") }
            return Int(m[at]) << 8 | Int(m[at + 1])
        }
        let questions = try u16(4)
        let answers = try u16(6)
        var at = 12
        for _ in 0..<questions {
            _ = try name(m, at: &at)
            at += 4
        }
        var out: [DNSRecord] = []
        for _ in 0..<answers {
            _ = try name(m, at: &at)
            let recordType = try u16(at)
            let length = try u16(at + 8)
            let data = at + 10
            guard data + length <= m.count else { throw DNSError("record data runs past the answer") }
            at = data + length
            guard recordType == Int(type.rawValue) else { continue }  // e.g. the CNAME leading to an A record
            switch type {
            case .a:
                guard length == 4 else { throw DNSError("A record of \(length) bytes") }
                out.append(.a(Array(m[data..<data + 4])))
            case .aaaa:
                guard length == 16 else { throw DNSError("AAAA record of \(length) bytes") }
                out.append(.aaaa(Array(m[data..<data + 16])))
            case .srv:
                guard length >= 7 else { throw DNSError("SRV record of \(length) bytes") }
                var target = data + 6
                out.append(
                    .srv(
                        priority: UInt16(try u16(data)), weight: UInt16(try u16(data + 2)), port: UInt16(try u16(data + 4)),
                        target: try name(m, at: &target)))
            }
        }
        return out
    }

    /// A possibly compressed name at `at` (advanced past it), without the trailing dot.
    static func name(_ m: [UInt8], at: inout Int) throws(DNSError) -> String {
        var labels: [String] = []
        var position = at
        var jumped = false
        var jumps = 0
        while true {
            guard position < m.count else { throw DNSError("name runs past the answer") }
            let length = Int(m[position])
            if length == 0 {
                if !jumped { at = position + 1 }
                return labels.joined(separator: ".")
            }
            if length & 0xC0 == 0xC0 {
                guard position + 1 < m.count else { throw DNSError("name pointer runs past the answer") }
                jumps += 1
                guard jumps <= 64 else { throw DNSError("name pointers loop") }
                if !jumped { at = position + 2 }
                jumped = true
                position = (length & 0x3F) << 8 | Int(m[position + 1])
                continue
            }
            guard length < 64, position + 1 + length <= m.count else { throw DNSError("bad label length \(length)") }
            labels.append(String(decoding: m[position + 1..<position + 1 + length], as: UTF8.self))
            position += 1 + length
        }
    }
}

/// Watches one `discovery.dns` component: resolves its names every refresh interval. SRV records give
/// `target:port`; A and AAAA records the address with the component's `port`. Each target gets
/// `__meta_dns_name` and, for SRV, `__meta_dns_srv_record_target` and `__meta_dns_srv_record_port`. A
/// failed lookup keeps that name's last good targets and is reported on `/targets`.
public final class DNSTargetWatcher: TargetDiscovery {
    public let component: DNSDiscoveryComponent
    let resolver: DNSResolver

    private struct State: Sendable {
        var targets: [String: [LabelSet]] = [:]
        var errors: [String: String] = [:]
    }
    private let state = Mutex(State())

    public init(component: DNSDiscoveryComponent, resolver: DNSResolver = .system()) {
        self.component = component
        self.resolver = resolver
    }

    public var id: String { "discovery.dns.\(component.label)" }

    public func run(changed: @escaping @Sendable () -> Void) async {
        await poll(every: component.refreshInterval, changed: changed) { await refresh() }
    }

    public var targets: [LabelSet] { state.withLock { s in component.names.flatMap { s.targets[$0] ?? [] } } }

    public var errors: [String: String] { state.withLock { $0.errors } }

    @discardableResult
    public func refresh() async -> Bool {
        var updates: [String: [LabelSet]] = [:]
        var errors: [String: String] = [:]
        for name in component.names {
            let component = self.component
            let resolver = self.resolver
            do {
                let records = try await BlockingWork.shared.run { () throws(DNSError) -> [DNSRecord] in
                    try resolver.lookup(name, type: component.type)
                }
                updates[name] = Self.targets(records, name: name, port: component.port)
            } catch {
                errors[name] = error.message
            }
        }
        return state.withLock { s in
            let before = component.names.flatMap { s.targets[$0] ?? [] }
            for (name, targets) in updates { s.targets[name] = targets }
            s.errors = errors
            return before != component.names.flatMap { s.targets[$0] ?? [] }
        }
    }

    static func targets(_ records: [DNSRecord], name: String, port: Int) -> [LabelSet] {
        records.map { record in
            var labels: LabelSet = ["__meta_dns_name": name]
            switch record {
            case .a(let ip):
                labels["__address__"] = "\(ip.map(String.init).joined(separator: ".")):\(port)"
            case .aaaa(let ip):
                var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
                ip.withUnsafeBytes { _ = inet_ntop(AF_INET6, $0.baseAddress, &text, socklen_t(text.count)) }
                labels["__address__"] = "[\(String(cString: text))]:\(port)"
            case .srv(_, _, let srvPort, let target):
                labels["__address__"] = "\(target):\(srvPort)"
                labels["__meta_dns_srv_record_target"] = target
                labels["__meta_dns_srv_record_port"] = String(srvPort)
            }
            return labels
        }
    }
}

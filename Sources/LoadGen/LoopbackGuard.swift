import Foundation

/// Load goes to this machine unless the operator says otherwise: every address `kiln loadgen` sends to or
/// polls must be loopback (127.0.0.0/8, ::1, `localhost`) without `--allow-remote`. Names are not resolved:
/// a host name other than `localhost` counts as remote.
public enum LoopbackGuard {
    public static func isLoopback(host: String) -> Bool {
        var h = host.lowercased()
        if h.hasPrefix("[") && h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
        if h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) else { return false }
        return parts[0] == "127"
    }

    /// The host of a URL such as `http://127.0.0.1:4100/x`; nil if it has none.
    public static func host(ofURL text: String) -> String? {
        URLComponents(string: text)?.host
    }

    /// Hosts of a `host:port,host:port` broker list (`[v6]:port` allowed).
    public static func hosts(ofBrokers text: String) -> [String] {
        text.split(separator: ",").map { entry in
            var e = entry.trimmingCharacters(in: .whitespaces)
            if let scheme = e.range(of: "://") { e = String(e[scheme.upperBound...]) }
            if e.hasPrefix("["), let close = e.firstIndex(of: "]") { return String(e[e.index(after: e.startIndex)..<close]) }
            if let colon = e.lastIndex(of: ":") { return String(e[..<colon]) }
            return e
        }
    }

    /// Throws naming every non-loopback address unless `allowRemote`.
    public static func check(urls: [String], brokers: String?, allowRemote: Bool) throws {
        guard !allowRemote else { return }
        var remote: [String] = []
        for url in urls {
            guard let host = host(ofURL: url), !host.isEmpty else { throw LoadGenError("\(url) is not a URL with a host") }
            if !isLoopback(host: host) { remote.append(url) }
        }
        if let brokers {
            for host in hosts(ofBrokers: brokers) where !isLoopback(host: host) { remote.append("broker \(host)") }
        }
        if !remote.isEmpty {
            throw LoadGenError(
                "refusing to send load to \(remote.joined(separator: ", ")): kiln loadgen targets loopback only "
                    + "(127.0.0.1, ::1, localhost); pass --allow-remote to load a real cluster on purpose")
        }
    }
}

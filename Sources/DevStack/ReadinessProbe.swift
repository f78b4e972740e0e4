import AsyncHTTPClient
import NIOCore
import NIOPosix

/// Asks one child whether it is up: its `/ready` answers 200, or (Tansu) its port takes connections.
struct ReadinessProbe: Sendable {
    let client: HTTPClient
    static let timeout = TimeAmount.seconds(2)

    /// nil when ready, else why not, in a few words.
    func check(_ probe: ChildSpec.Probe) async -> String? {
        switch probe {
        case .http(let url):
            do {
                let response = try await client.execute(HTTPClientRequest(url: url), timeout: Self.timeout)
                let body = try await response.body.collect(upTo: 16 * 1024)
                if response.status.code == 200 { return nil }
                let text = String(buffer: body).split(separator: "\n").joined(separator: "; ")
                return "\(response.status.code)\(text.isEmpty ? "" : ": " + text)"
            } catch {
                return "not answering (\(error))"
            }
        case .tcp(let host, let port):
            do {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(Self.timeout)
                    .connect(host: host, port: port).get()
                try? await channel.close()
                return nil
            } catch {
                return "port \(port) not open (\(error))"
            }
        }
    }
}

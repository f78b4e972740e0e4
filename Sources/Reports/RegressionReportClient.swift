import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Query

/// Asks a kiln-query (or `kiln dev`) address for a regression report.
public struct RegressionReportClient: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public var baseURL: String
    public var tenant: String?

    public init(baseURL: String, tenant: String?) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.tenant = tenant
    }

    /// `parameters` as `/kiln/v1/regressions` takes them (`baselineQuery`, `comparisonFrom`, …).
    public func report(_ parameters: [(String, String)], timeout: Duration = .seconds(120)) async throws -> RegressionReport {
        var components = URLComponents(string: baseURL + "/kiln/v1/regressions")
        guard components != nil else { throw Failure(description: "\(baseURL) is not a URL") }
        components!.queryItems = parameters.map { URLQueryItem(name: $0.0, value: $0.1) }
        // URLComponents leaves `+` alone, which a form decoder reads as a space.
        let url = components!.url!.absoluteString.replacingOccurrences(of: "+", with: "%2B")
        var request = HTTPClientRequest(url: url)
        if let tenant { request.headers.add(name: "X-Scope-OrgID", value: tenant) }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let status: HTTPResponseStatus
        let data: Data
        do {
            let response = try await client.execute(request, timeout: .seconds(timeout.components.seconds))
            status = response.status
            let body = try await response.body.collect(upTo: 64 << 20)
            data = Data(body.readableBytesView)
            try await client.shutdown()
        } catch {
            try? await client.shutdown()
            throw Failure(description: "cannot reach \(baseURL): \(error)")
        }
        guard status == .ok else {
            struct ConnectError: Decodable { var code: String?, message: String? }
            let explained = try? JSONDecoder().decode(ConnectError.self, from: data)
            let text = explained?.message ?? String(decoding: data.prefix(500), as: UTF8.self)
            throw Failure(description: "\(baseURL) answered \(status.code): \(text)")
        }
        do {
            return try JSONDecoder().decode(RegressionReport.self, from: data)
        } catch {
            throw Failure(description: "\(baseURL) answered something that is not a regression report: \(error)")
        }
    }
}

import APICommon
import Foundation
import Hummingbird
import KilnProtos
import Logging
import NIOCore
import Records

/// The push ingest routes, registered on a router the caller owns (the scraper's admin router, `kiln dev`'s
/// single server):
///
/// - `POST /ingest` and `POST /pyroscope/ingest`: Pyroscope's legacy ingest (raw pprof with
///   `format=pprof`, the multipart pprof form, folded text);
/// - `POST /push.v1.PusherService/Push`: Connect unary, `application/proto` or `application/json`,
///   optionally gzip-compressed (`Content-Encoding` or `Connect-Content-Encoding`).
///
/// The tenant is `X-Scope-OrgID` (default `anonymous`), or with `IngestOptions.access` authenticating, the
/// one the credentials allow (docs/security.md). A push is answered 200 only after the publisher has stored
/// every profile in it.
public enum IngestRoutes {
    public static let connectPushPath = "/push.v1.PusherService/Push"

    public static func register<Context: RequestContext>(on router: Router<Context>, ingester: PushIngester) {
        let legacy: @Sendable (Request, Context) async throws -> Response = { request, _ in
            await legacyIngest(request, ingester: ingester)
        }
        router.post("/ingest", use: legacy)
        router.post("/pyroscope/ingest", use: legacy)
        router.post(RouterPath(connectPushPath)) { request, _ in
            await connectPush(request, ingester: ingester)
        }
    }

    // MARK: /ingest

    static func legacyIngest(_ request: Request, ingester: PushIngester) async -> Response {
        var tenant = TenantID.defaultTenant
        do throws(APIError) {
            tenant = try ingester.options.access.tenant(request, endpoint: "ingest").get()
            let body = try await Connect.readBody(request, limit: ingester.options.maxBodyBytes, timeout: ingester.options.bodyReadTimeout)
            let envelope = try LegacyIngestDecoder.envelope(
                query: FormQuery.parse(request.uri.query), contentType: request.headers[.contentType],
                body: body, tenant: tenant, now: Date(), options: ingester.options.forTenant(tenant))
            try await ingester.submit([envelope], tenant: tenant, endpoint: "ingest")
            return Response(status: .ok)
        } catch {
            LimitMetrics.discarded(error, tenant: tenant)
            var headers: HTTPFields = [.contentType: "text/plain; charset=utf-8"]
            if let challenge = error.challenge { headers[.wwwAuthenticate] = challenge }
            return Response(
                status: error.ingestStatus, headers: headers,
                body: .init(byteBuffer: ByteBuffer(string: error.message + "\n")))
        }
    }

    // MARK: Connect push

    static func connectPush(_ request: Request, ingester: PushIngester) async -> Response {
        var tenant = TenantID.defaultTenant
        do throws(APIError) {
            tenant = try ingester.options.access.tenant(request, endpoint: "connect").get()
            let (message, codec) = try await Connect.message(
                request, limit: ingester.options.maxBodyBytes, timeout: ingester.options.bodyReadTimeout, as: Push_V1_PushRequest.self)
            let envelopes = try ConnectPushDecoder.envelopes(
                message, tenant: tenant, now: Date(), options: ingester.options.forTenant(tenant))
            try await ingester.submit(envelopes, tenant: tenant, endpoint: "connect")
            let (contentType, bytes): (String, [UInt8]) =
                switch codec {
                case .proto: ("application/proto", [])
                case .json: ("application/json", Array("{}".utf8))
                }
            return Response(status: .ok, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        } catch {
            LimitMetrics.discarded(error, tenant: tenant)
            return Connect.errorResponse(error)
        }
    }
}

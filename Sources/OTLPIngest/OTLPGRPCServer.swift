import APICommon
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import GRPCProtobuf
import Logging
import NIOCertificateReloading
import ServiceLifecycle

/// `opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export` over gRPC. The request
/// arrives as bytes and is decoded with the HTTP route's code off the cooperative pool; the tenant is the
/// `x-scope-orgid` metadata (or, with authentication on, what the `authorization` metadata allows).
public struct OTLPProfilesService: RegistrableRPCService {
    public static let export = MethodDescriptor(
        fullyQualifiedService: "opentelemetry.proto.collector.profiles.v1development.ProfilesService", method: "Export")

    let ingester: OTLPIngester
    /// The `endpoint` label of this transport's counters.
    static let endpoint = "otlp_grpc"

    public init(ingester: OTLPIngester) {
        self.ingester = ingester
        OTLPIngester.zeroCounters(endpoint: Self.endpoint)
    }

    public func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        let ingester = self.ingester
        router.registerHandler(
            forMethod: Self.export, deserializer: RawBytes(), serializer: ProtobufSerializer<OTLPExportResponse>()
        ) { request, _ in
            let single = try await ServerRequest(stream: request)
            let metadata = single.metadata
            let response = try await Self.export(single.message, metadata: metadata, ingester: ingester)
            return StreamingServerResponse(single: ServerResponse(message: response))
        }
    }

    static func export(_ body: [UInt8], metadata: Metadata, ingester: OTLPIngester) async throws -> OTLPExportResponse {
        var tenant = TenantID.defaultTenant
        do throws(APIError) {
            tenant = try ingester.ingester.options.access.tenant(
                authorization: metadata[stringValues: "authorization"].first(where: { _ in true }),
                scopeOrgID: metadata[stringValues: "x-scope-orgid"].first(where: { _ in true }), endpoint: "otlp"
            ).get()
            return try await ingester.export(body, encoding: .protobuf, tenant: tenant, endpoint: Self.endpoint)
        } catch {
            LimitMetrics.discarded(error, tenant: tenant)
            throw OTLPStatus.googleStatus(error)
        }
    }
}

/// The message as received: decoding waits for `OTLPIngester`, which runs it off the cooperative pool.
struct RawBytes: MessageDeserializer {
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}

/// The OTLP gRPC listener as a service of the process: serves until graceful shutdown, then lets calls in
/// flight finish (their profiles are being stored) before it returns.
public struct OTLPGRPCServer: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let transport: HTTP2ServerTransport.Posix
    let logger: Logger

    /// - Parameters:
    ///   - host, port: where to listen (port 0: any free port, see `boundPort`).
    ///   - certificates: TLS with the certificate these give at each handshake, else plaintext;
    ///     `clientCAFile` then requires client certificates that CA signed.
    public init(
        host: String, port: Int, certificates: (any CertificateReloader)? = nil, clientCAFile: String? = nil, ingester: OTLPIngester,
        logger: Logger
    ) throws {
        var security = HTTP2ServerTransport.Posix.TransportSecurity.plaintext
        if let certificates {
            security = try .tls(certificateReloader: certificates) { config in
                if let ca = clientCAFile {
                    config.trustRoots = .certificates([.file(path: ca, format: .pem)])
                    config.clientCertificateVerification = .noHostnameVerification
                }
            }
        }
        transport = HTTP2ServerTransport.Posix(
            address: .ipv4(host: host, port: port), transportSecurity: security,
            config: .defaults { config in
                config.rpc.maxRequestPayloadSize = ingester.maxRequestBytes
                config.compression.enabledAlgorithms = .all
            })
        server = GRPCServer(transport: transport, services: [OTLPProfilesService(ingester: ingester)])
        self.logger = logger
    }

    /// The port the listener is bound to, once it is.
    public var boundPort: Int {
        get async throws { try await transport.listeningAddress.ipv4?.port ?? 0 }
    }

    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            if let port = try? await boundPort { logger.info("OTLP gRPC listening", metadata: ["port": "\(port)"]) }
            try? await gracefulShutdown()
            server.beginGracefulShutdown()
        }
    }
}

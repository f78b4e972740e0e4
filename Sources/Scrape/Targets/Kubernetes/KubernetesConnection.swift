import AsyncHTTPClient
import Foundation
import KilnFoundation
import NIOCore
import NIOSSL
import Yams

/// Where a `discovery.kubernetes` component talks to the API server and how it proves who it is: the
/// explicit `api_server` with the component's credentials, a kubeconfig file's current context, or —
/// neither given — the pod's own service account (in-cluster).
struct KubernetesConnection: Sendable {
    enum Credential: Sendable, Equatable {
        case none
        case bearer(String)
        /// Read at every request: service-account tokens are rotated on disk.
        case bearerFile(String)
        case basic(username: String, password: String)
    }

    var server: String
    var credential: Credential
    var tls: TLSConfiguration?
    /// The namespace `own_namespace` means: the service account's (in-cluster only).
    var ownNamespace: String? = nil

    static let serviceAccountDirectory = KubernetesTargetWatcher.defaultServiceAccountDirectory

    struct ConfigurationError: Error, CustomStringConvertible {
        var description: String
    }

    static func resolve(
        _ component: KubernetesDiscoveryComponent, environment: [String: String],
        serviceAccountDirectory: String = serviceAccountDirectory
    ) throws -> KubernetesConnection {
        if let server = component.apiServer {
            var credential = Credential.none
            if let basic = component.credentials.basicAuth {
                var password = basic.password ?? ""
                if let file = basic.passwordFile { password = try HTTPCredential.readSecretFile(file) }
                credential = .basic(username: basic.username, password: password)
            } else if let token = component.credentials.bearerToken {
                credential = .bearer(token)
            } else if let file = component.credentials.bearerTokenFile {
                credential = .bearerFile(file)
            }
            return KubernetesConnection(
                server: server, credential: credential, tls: try component.tls?.clientConfiguration())
        }
        if let kubeconfig = component.kubeconfigFile { return try fromKubeconfig(kubeconfig) }
        guard let host = environment["KUBERNETES_SERVICE_HOST"], let port = environment["KUBERNETES_SERVICE_PORT"],
            !host.isEmpty, !port.isEmpty
        else {
            throw ConfigurationError(
                description:
                    "not running in a cluster (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset): set api_server or kubeconfig_file"
            )
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(serviceAccountDirectory + "/ca.crt")
        let namespace = (try? HTTPCredential.readSecretFile(serviceAccountDirectory + "/namespace")) ?? ""
        if component.ownNamespace, namespace.isEmpty {
            throw ConfigurationError(description: "own_namespace: \(serviceAccountDirectory)/namespace is missing or empty")
        }
        return KubernetesConnection(
            server: "https://\(host.contains(":") ? "[\(host)]" : host):\(port)",
            credential: .bearerFile(serviceAccountDirectory + "/token"), tls: tls, ownNamespace: namespace)
    }

    /// The `Authorization` header value, if the connection has credentials.
    func authorization() throws -> String? {
        switch credential {
        case .none: return nil
        case .bearer(let token): return "Bearer \(token)"
        case .bearerFile(let file): return "Bearer \(try HTTPCredential.readSecretFile(file))"
        case .basic(let username, let password): return HTTPCredential.basic(username: username, password: password)
        }
    }

    // MARK: kubeconfig

    /// The fields of a kubeconfig file Kiln reads; an `exec` or `auth-provider` user is refused by name.
    struct Kubeconfig: Decodable {
        struct NamedCluster: Decodable {
            var name: String
            var cluster: Cluster
        }
        struct Cluster: Decodable {
            var server: String
            var certificateAuthority: String?
            var certificateAuthorityData: String?
            var insecureSkipTLSVerify: Bool?
            enum CodingKeys: String, CodingKey {
                case server
                case certificateAuthority = "certificate-authority"
                case certificateAuthorityData = "certificate-authority-data"
                case insecureSkipTLSVerify = "insecure-skip-tls-verify"
            }
        }
        struct NamedUser: Decodable {
            var name: String
            var user: User?
        }
        struct User: Decodable {
            var token: String?
            var tokenFile: String?
            var clientCertificate: String?
            var clientCertificateData: String?
            var clientKey: String?
            var clientKeyData: String?
            var username: String?
            var password: String?
            var exec: Present?
            var authProvider: Present?
            enum CodingKeys: String, CodingKey {
                case token, tokenFile, username, password, exec
                case clientCertificate = "client-certificate"
                case clientCertificateData = "client-certificate-data"
                case clientKey = "client-key"
                case clientKeyData = "client-key-data"
                case authProvider = "auth-provider"
            }
        }
        /// Any value: only whether the key is there matters.
        struct Present: Decodable {
            init(from decoder: any Decoder) throws {}
        }
        struct NamedContext: Decodable {
            var name: String
            var context: Context
        }
        struct Context: Decodable {
            var cluster: String
            var user: String?
            var namespace: String?
        }
        var clusters: [NamedCluster]?
        var users: [NamedUser]?
        var contexts: [NamedContext]?
        var currentContext: String?
        enum CodingKeys: String, CodingKey {
            case clusters, users, contexts
            case currentContext = "current-context"
        }
    }

    static func fromKubeconfig(_ path: String) throws -> KubernetesConnection {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let config: Kubeconfig
        do {
            config = try YAMLDecoder().decode(Kubeconfig.self, from: text)
        } catch {
            throw ConfigurationError(description: "kubeconfig \(path) is not a valid kubeconfig: \(error)")
        }
        let directory = (path as NSString).deletingLastPathComponent
        func resolved(_ file: String) -> String { file.hasPrefix("/") ? file : (directory as NSString).appendingPathComponent(file) }
        func base64(_ text: String, _ what: String) throws -> [UInt8] {
            guard let data = Data(base64Encoded: text, options: .ignoreUnknownCharacters) else {
                throw ConfigurationError(description: "kubeconfig \(path): \(what) is not base64")
            }
            return Array(data)
        }
        guard let contextName = config.currentContext, !contextName.isEmpty else {
            throw ConfigurationError(description: "kubeconfig \(path) has no current-context")
        }
        guard let context = config.contexts?.first(where: { $0.name == contextName })?.context else {
            throw ConfigurationError(description: "kubeconfig \(path): context \"\(contextName)\" is not defined")
        }
        guard let cluster = config.clusters?.first(where: { $0.name == context.cluster })?.cluster else {
            throw ConfigurationError(description: "kubeconfig \(path): cluster \"\(context.cluster)\" is not defined")
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        if cluster.insecureSkipTLSVerify == true { tls.certificateVerification = .none }
        if let data = cluster.certificateAuthorityData {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(try base64(data, "certificate-authority-data")))
        } else if let file = cluster.certificateAuthority {
            tls.trustRoots = .file(resolved(file))
        }
        var credential = Credential.none
        if let userName = context.user {
            guard let user = config.users?.first(where: { $0.name == userName })?.user else {
                throw ConfigurationError(description: "kubeconfig \(path): user \"\(userName)\" is not defined")
            }
            if user.exec != nil || user.authProvider != nil {
                throw ConfigurationError(
                    description:
                        "kubeconfig \(path): user \"\(userName)\" uses \(user.exec != nil ? "exec" : "auth-provider"), which Kiln does not run; use a token, tokenFile or client certificate"
                )
            }
            func bytes(data: String?, file: String?, _ what: String) throws -> [UInt8]? {
                if let data { return try base64(data, "\(what)-data") }
                return try file.map { Array(try Data(contentsOf: URL(fileURLWithPath: resolved($0)))) }
            }
            if let certificate = try bytes(data: user.clientCertificateData, file: user.clientCertificate, "client-certificate") {
                guard let key = try bytes(data: user.clientKeyData, file: user.clientKey, "client-key") else {
                    throw ConfigurationError(description: "kubeconfig \(path): user \"\(userName)\" has a client certificate but no key")
                }
                tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(certificate).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
            }
            if let token = user.token {
                credential = .bearer(token)
            } else if let file = user.tokenFile {
                credential = .bearerFile(resolved(file))
            } else if let username = user.username {
                credential = .basic(username: username, password: user.password ?? "")
            }
        }
        return KubernetesConnection(
            server: cluster.server, credential: credential, tls: cluster.server.hasPrefix("https") ? tls : nil)
    }
}

import Crypto
import Foundation
import Hummingbird
import KilnFoundation
import Metrics

/// The credentials a server accepts, each mapped to the tenants it may act as. Loaded from a JSON file
/// (`--auth-file`, docs/security.md):
///
/// ```json
/// {"credentials": [
///   {"name": "shop-push",  "bearer_token_sha256": "<64 hex>", "tenants": ["shop"]},
///   {"name": "grafana",    "username": "grafana", "password_sha256": "<64 hex>", "tenants": ["shop", "ads"]},
///   {"name": "ops",        "username": "ops", "password": "plain text", "tenants": ["*"]}
/// ]}
/// ```
///
/// Secrets may be given as SHA-256 hex digests (`bearer_token_sha256`, `password_sha256`) or in plain text
/// (`bearer_token`, `password`); either way only their digests are kept in memory.
public struct Credentials: Sendable {
    public struct Entry: Sendable {
        public enum Kind: Sendable, Equatable {
            case bearer
            case basic(username: String)
        }

        /// Shown in logs and error messages instead of the secret.
        public var name: String
        public var kind: Kind
        /// SHA-256 of the token or password.
        var digest: [UInt8]
        /// Allowed tenants in order; the first is used when a request names none. `*` allows every tenant.
        public var tenants: [String]

        public var allowsAnyTenant: Bool { tenants.contains("*") }
    }

    public var entries: [Entry]

    public init(entries: [Entry]) { self.entries = entries }

    /// An entry from a plain secret (tests, tools).
    public static func bearer(_ token: String, name: String, tenants: [String]) -> Entry {
        Entry(name: name, kind: .bearer, digest: Self.sha256(token), tenants: tenants)
    }

    public static func basic(_ username: String, password: String, name: String? = nil, tenants: [String]) -> Entry {
        Entry(name: name ?? username, kind: .basic(username: username), digest: Self.sha256(password), tenants: tenants)
    }

    static func sha256(_ text: String) -> [UInt8] { Array(SHA256.hash(data: Array(text.utf8))) }

    public static func load(contentsOf url: URL) throws -> Credentials {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw AuthFileError("cannot read the auth file \(url.path): \(error.localizedDescription)")
        }
        do { return try Credentials(json: Array(data)) } catch {
            throw AuthFileError("auth file \(url.path): \(error)")
        }
    }

    /// Parses the file. Error messages name the entry and field, never a secret's value.
    public init(json bytes: [UInt8]) throws(AuthFileError) {
        let root: Any
        do { root = try JSONSerialization.jsonObject(with: Data(bytes)) } catch {
            throw AuthFileError("not valid JSON")
        }
        guard let object = root as? [String: Any], let list = object["credentials"] as? [Any] else {
            throw AuthFileError("expected an object {\"credentials\": [...]}")
        }
        let known: Set<String> = ["name", "bearer_token", "bearer_token_sha256", "username", "password", "password_sha256", "tenants"]
        var entries: [Entry] = []
        var seenBearer = Set<[UInt8]>()
        var seenUsers = Set<String>()
        for (i, item) in list.enumerated() {
            guard let e = item as? [String: Any] else { throw AuthFileError("credentials[\(i)] is not an object") }
            if let unknown = e.keys.sorted().first(where: { !known.contains($0) }) {
                throw AuthFileError("credentials[\(i)]: unknown field \"\(unknown)\"")
            }
            func string(_ key: String) throws(AuthFileError) -> String? {
                guard let v = e[key] else { return nil }
                guard let s = v as? String, !s.isEmpty else { throw AuthFileError("credentials[\(i)].\(key) must be a non-empty string") }
                return s
            }
            func secret(plain: String, hashed: String) throws(AuthFileError) -> [UInt8]? {
                let p = try string(plain)
                let h = try string(hashed)
                if p != nil && h != nil { throw AuthFileError("credentials[\(i)]: give \(plain) or \(hashed), not both") }
                if let p { return Self.sha256(p) }
                guard let h else { return nil }
                guard let d = Hex.bytes(h), d.count == 32 else {
                    throw AuthFileError("credentials[\(i)].\(hashed) must be 64 hexadecimal digits (sha256sum of the secret)")
                }
                return d
            }
            let token = try secret(plain: "bearer_token", hashed: "bearer_token_sha256")
            let username = try string("username")
            let password = try secret(plain: "password", hashed: "password_sha256")
            guard let tenants = e["tenants"] as? [String], !tenants.isEmpty else {
                throw AuthFileError("credentials[\(i)].tenants must be a non-empty list of tenant IDs (or [\"*\"])")
            }
            for t in tenants where t != "*" {
                if let why = TenantID.validationError(t) { throw AuthFileError("credentials[\(i)].tenants: \(why)") }
            }
            let kind: Entry.Kind
            let digest: [UInt8]
            switch (token, username, password) {
            case (let token?, nil, nil):
                guard seenBearer.insert(token).inserted else {
                    throw AuthFileError("credentials[\(i)]: the same bearer token appears twice")
                }
                kind = .bearer
                digest = token
            case (nil, let user?, let password?):
                guard !user.contains(":") else { throw AuthFileError("credentials[\(i)].username must not contain \":\"") }
                guard seenUsers.insert(user).inserted else { throw AuthFileError("credentials[\(i)]: username \"\(user)\" appears twice") }
                kind = .basic(username: user)
                digest = password
            default:
                throw AuthFileError("credentials[\(i)]: give either a bearer token or a username with a password")
            }
            let name = try string("name") ?? (username ?? "credentials[\(i)]")
            entries.append(Entry(name: name, kind: kind, digest: digest, tenants: tenants))
        }
        self.entries = entries
    }
}

public struct AuthFileError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Who a request acts for. Open (no credentials file): the tenant is `X-Scope-OrgID`, as in Pyroscope.
/// With credentials: the `Authorization` header must carry one of them, and the tenant is the one the
/// request names in `X-Scope-OrgID` if the credential allows it (else 403), or the credential's first tenant.
public struct TenantAccess: Sendable {
    public let credentials: Credentials?

    public static let open = TenantAccess(credentials: nil)

    public init(credentials: Credentials?) { self.credentials = credentials }

    public var isAuthenticating: Bool { credentials != nil }

    /// The challenges sent with a 401 (one `WWW-Authenticate` header, comma-separated).
    public static let challenges = [#"Basic realm="kiln""#, #"Bearer realm="kiln""#]

    static let failureReasons = ["missing", "invalid", "forbidden"]

    /// The tenant of a request, or why it is refused (counted as `kiln_auth_failures_total`).
    public func tenant(authorization: String?, scopeOrgID: String?, endpoint: String) -> Result<String, APIError> {
        EventCounters.zero("kiln_auth_failures_total", key: endpoint, Self.failureReasons.map { [("endpoint", endpoint), ("reason", $0)] })
        let result =
            credentials.map { Self.authenticate($0, authorization: authorization, scopeOrgID: scopeOrgID) } ?? TenantID.resolve(scopeOrgID)
        switch result {
        case .success(let tenant):
            LimitMetrics.zero(tenant: tenant, endpoint: endpoint)
        case .failure(let error) where credentials != nil:
            let reason = error.kind == .forbidden ? "forbidden" : (authorization == nil ? "missing" : "invalid")
            Counter(label: "kiln_auth_failures_total", dimensions: [("endpoint", endpoint), ("reason", reason)]).increment()
        case .failure:
            break
        }
        return result
    }

    public func tenant(_ request: Request, endpoint: String) -> Result<String, APIError> {
        tenant(authorization: request.headers[.authorization], scopeOrgID: Connect.header(request, "x-scope-orgid"), endpoint: endpoint)
    }

    static func authenticate(_ credentials: Credentials, authorization: String?, scopeOrgID: String?) -> Result<String, APIError> {
        guard let authorization, !authorization.trimmingSpaces.isEmpty else {
            return .failure(
                APIError(.missingCredentials, "authentication required: send Authorization: Bearer <token> or Basic <base64 user:password>")
            )
        }
        let header = authorization.trimmingSpaces
        let space = header.firstIndex(of: " ") ?? header.endIndex
        let scheme = header[..<space].lowercased()
        let value = String(header[space...]).trimmingSpaces
        let invalid = APIError(.missingCredentials, "invalid credentials")
        let matched: Credentials.Entry?
        switch scheme {
        case "bearer":
            matched = Self.match(credentials.entries, digest: Credentials.sha256(value)) { $0.kind == .bearer }
        case "basic":
            guard let decoded = Data(base64Encoded: value).flatMap({ String(data: $0, encoding: .utf8) }),
                let colon = decoded.firstIndex(of: ":")
            else {
                return .failure(APIError(.missingCredentials, "malformed Basic credentials (expected base64 of user:password)"))
            }
            let user = String(decoded[..<colon])
            let digest = Credentials.sha256(String(decoded[decoded.index(after: colon)...]))
            // Usernames are not secret; the password digest is compared in constant time.
            matched = Self.match(credentials.entries, digest: digest) { $0.kind == .basic(username: user) }
        default:
            return .failure(APIError(.missingCredentials, "unsupported Authorization scheme (use Bearer or Basic)"))
        }
        guard let entry = matched else { return .failure(invalid) }
        let requested = scopeOrgID?.trimmingSpaces ?? ""
        if requested.isEmpty {
            let first = entry.tenants[0] == "*" ? TenantID.defaultTenant : entry.tenants[0]
            return .success(first)
        }
        if let why = TenantID.validationError(requested) { return .failure(APIError(.invalidArgument, why)) }
        guard entry.allowsAnyTenant || entry.tenants.contains(requested) else {
            return .failure(APIError(.forbidden, "credential \"\(entry.name)\" may not access tenant \"\(requested)\""))
        }
        return .success(requested)
    }

    /// The entry whose digest equals `digest` among those `eligible`. Every eligible digest is compared in
    /// full (no early exit on a byte or on a match), so the time taken does not depend on the secret.
    static func match(_ entries: [Credentials.Entry], digest: [UInt8], eligible: (Credentials.Entry) -> Bool) -> Credentials.Entry? {
        var found: Int? = nil
        for (i, e) in entries.enumerated() where eligible(e) {
            var difference: UInt8 = 0
            for j in 0..<32 { difference |= e.digest[j] ^ digest[j] }
            if difference == 0 && found == nil { found = i }
        }
        return found.map { entries[$0] }
    }
}

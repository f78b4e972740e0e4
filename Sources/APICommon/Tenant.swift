/// Tenant IDs as Pyroscope (dskit) accepts them in `X-Scope-OrgID`.
public enum TenantID {
    public static let header = "X-Scope-OrgID"
    public static let defaultTenant = "anonymous"
    public static let maxLength = 150

    /// nil when valid; else why not. Allowed: letters, digits and `! - _ . * ' ( )`, at most 150
    /// characters, not `.` or `..` (tenants name folders in the object store), and not starting with `_`:
    /// those top-level folders are Kiln's own state (maintenance leases), which no tenant may write into.
    public static func validationError(_ tenant: String) -> String? {
        if tenant.isEmpty { return "tenant ID is empty" }
        if tenant.utf8.count > maxLength { return "tenant ID is longer than \(maxLength) characters" }
        if tenant == "." || tenant == ".." { return "tenant ID \"\(tenant)\" is not allowed" }
        if tenant.hasPrefix("_") { return "tenant ID \"\(tenant.prefix(40))\" starts with \"_\", which is reserved for Kiln's own state" }
        for b in tenant.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                continue
            case UInt8(ascii: "!"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "*"),
                UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"):
                continue
            default:
                return "tenant ID \"\(tenant)\" contains a character that is not allowed (use letters, digits and !-_.*'())"
            }
        }
        return nil
    }

    /// The tenant of a request from its header value (absent or empty: `anonymous`).
    public static func resolve(_ header: String?) -> Result<String, APIError> {
        let tenant = header.map { $0.trimmingSpaces } ?? ""
        if tenant.isEmpty { return .success(defaultTenant) }
        if let error = validationError(tenant) { return .failure(APIError(.unauthenticated, error)) }
        return .success(tenant)
    }
}

extension String {
    /// Without leading and trailing spaces and tabs (HTTP header values).
    public var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}

import Foundation

/// Client credentials as HTTP sends them, and secrets read from files (as Kubernetes, Prometheus and Alloy
/// configurations name them).
public enum HTTPCredential {
    /// A secret file's content without its surrounding whitespace (files usually end with a newline).
    public static func readSecretFile(_ path: String) throws -> String {
        try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The `Authorization` value for basic authentication.
    public static func basic(username: String, password: String) -> String {
        "Basic " + Data("\(username):\(password)".utf8).base64EncodedString()
    }
}

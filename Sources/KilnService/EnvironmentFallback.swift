import Foundation
import KilnFoundation

/// Every flag of every Kiln service falls back to an environment variable, then to a default, so the
/// same binary is configured by flags on a laptop and by env in a container.
public enum EnvironmentFallback {
    /// The flag's value if given, else the environment variable's if set and non-empty, else `defaultValue`.
    public static func resolve(_ flag: String?, env name: String, default defaultValue: String) -> String {
        resolve(flag, env: name) ?? defaultValue
    }

    public static func resolve(_ flag: String?, env name: String) -> String? {
        if let flag, !flag.isEmpty { return flag }
        if let value = ProcessInfo.processInfo.environment[name], !value.isEmpty { return value }
        return nil
    }

    /// Repeatable flags (`--kafka-option a=b --kafka-option c=d`) fall back to one variable whose
    /// entries are separated by newlines or commas.
    public static func resolveList(_ flags: [String], env name: String) -> [String] {
        if !flags.isEmpty { return flags }
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return [] }
        return value.split(whereSeparator: { $0 == "\n" || $0 == "," })
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
    }
}

extension EnvironmentFallback {
    /// A duration setting (`DurationText`'s grammar) from its flag, variable or default.
    public static func duration(_ flag: String?, env name: String, default defaultValue: String, setting: String) throws -> Duration {
        let text = resolve(flag, env: name, default: defaultValue)
        guard let d = DurationText.parse(text) else {
            throw ServiceConfigurationError(DurationTextError(name: setting, text: text).description)
        }
        return d
    }

    /// A whole-number setting that must be at least `minimum`.
    public static func integer(_ flag: Int?, env name: String, default defaultValue: Int, minimum: Int = 1, setting: String) throws -> Int {
        let text = resolve(flag.map(String.init), env: name, default: String(defaultValue))
        guard let n = Int(text), n >= minimum else {
            throw ServiceConfigurationError("\(setting): expected a whole number of at least \(minimum), got \"\(text)\"")
        }
        return n
    }

    /// A number setting that must not be negative; nil when neither flag nor variable is set.
    public static func nonNegative(_ flag: Double?, env name: String, setting: String) throws -> Double? {
        guard let text = resolve(flag.map { String($0) }, env: name) else { return nil }
        guard let v = Double(text), v >= 0, v.isFinite else {
            throw ServiceConfigurationError("\(setting): expected a non-negative number, got \"\(text)\"")
        }
        return v
    }
}

/// A `host:port` listen address, as given to `--listen` style flags.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init(parsing text: String) throws {
        guard let colon = text.lastIndex(of: ":") else {
            throw ServiceConfigurationError("listen address \"\(text)\" must be host:port")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ServiceConfigurationError("listen address \"\(text)\" has no valid port (0-65535)")
        }
        self.init(host: host.isEmpty ? "0.0.0.0" : host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A configuration mistake, reported to the operator as one line that names the problem.
public struct ServiceConfigurationError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The object store URL of `--store` / `KILN_STORE`, with a relative `file://path` made absolute against the
/// working directory (the store itself only takes absolute paths).
public enum StoreURLOption {
    public static let defaultURL = "file://./data/blocks"

    public static func resolve(_ flag: String?) -> String {
        absolute(EnvironmentFallback.resolve(flag, env: "KILN_STORE", default: defaultURL))
    }

    public static func absolute(_ url: String) -> String {
        guard url.hasPrefix("file://"), !url.hasPrefix("file:///") else { return url }
        let rel = String(url.dropFirst("file://".count))
        return "file://"
            + URL(fileURLWithPath: rel, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).standardizedFileURL.path
    }
}

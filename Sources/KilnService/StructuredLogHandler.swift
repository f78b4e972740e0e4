import Foundation
import Logging

public enum LogFormat: String, Sendable {
    case logfmt
    case json
}

/// Writes one structured line per log event to stderr: logfmt (`time=… level=info service=… msg="…" key=value`)
/// or JSON. One `write(2)` per line keeps lines from different threads whole.
public struct StructuredLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let format: LogFormat

    public init(label: String, level: Logger.Level, format: LogFormat) {
        self.label = label
        self.logLevel = level
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let fields = merged.sorted { $0.key < $1.key }.map { ($0.key, $0.value.description) }
        let time = Self.timestamp()
        var line: String
        switch format {
        case .logfmt:
            line =
                "time=\(time) level=\(event.level.rawValue) logger=\(Self.logfmtValue(label)) msg=\(Self.logfmtValue(event.message.description))"
            for (key, value) in fields { line += " \(key)=\(Self.logfmtValue(value))" }
        case .json:
            line =
                "{\"time\":\"\(time)\",\"level\":\"\(event.level.rawValue)\",\"logger\":\(Self.jsonString(label)),\"msg\":\(Self.jsonString(event.message.description))"
            for (key, value) in fields { line += ",\(Self.jsonString(key)):\(Self.jsonString(value))" }
            line += "}"
        }
        line += "\n"
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Foundation.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 { break }
                offset += n
            }
        }
    }

    static func timestamp() -> String {
        var tv = timeval()
        gettimeofday(&tv, nil)
        var seconds = tv.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
            parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
            parts.tm_hour, parts.tm_min, parts.tm_sec, Int(tv.tv_usec / 1000))
    }

    static func logfmtValue(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0.isNewline }
        guard needsQuotes else { return value }
        return "\""
            + value.replacingOccurrences(of: "\\", with: "\\\\")
            .replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n") + "\""
    }

    static func jsonString(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

public enum KilnLogging {
    /// Installs the structured handler process-wide and returns the service's root logger.
    public static func bootstrap(service: String, options: ServiceOptions) throws -> Logger {
        let level = try options.resolvedLogLevel()
        let format = try options.resolvedLogFormat()
        LoggingSystem.bootstrap { label in StructuredLogHandler(label: label, level: level, format: format) }
        var logger = Logger(label: service)
        logger[metadataKey: "service"] = "\(service)"
        return logger
    }
}

import Foundation

/// The programs `kiln dev` runs: the Kiln services beside the running `kiln` binary, and a Tansu broker.
public struct DevExecutables: Sendable {
    public static let stageNames = ["kiln-scraper", "kiln-normalizer", "kiln-compactor", "kiln-query", "kiln-ruler"]

    /// Folder holding `kiln-scraper`, `kiln-normalizer`, `kiln-compactor`, `kiln-query` and `kiln-ruler`.
    public var binDir: URL
    public var tansu: URL
    /// A folder with librdkafka ≥ 2.2 (`.venv/kiln-lib` of the checkout) to put first on the children's
    /// `LD_LIBRARY_PATH`; nil when there is none and the system library must do.
    public var kafkaLibDir: URL?

    public init(binDir: URL, tansu: URL, kafkaLibDir: URL?) {
        self.binDir = binDir
        self.tansu = tansu
        self.kafkaLibDir = kafkaLibDir
    }

    public func stage(_ name: String) -> URL { binDir.appendingPathComponent(name) }

    /// Finds everything, or says exactly what is missing and how to get it.
    /// Tansu: `tansuFlag`, else `KILN_TANSU`, else `<checkout>/.venv/bin/tansu` (the checkout is the first
    /// folder above the binary holding Package.swift), else `tansu` on `PATH`.
    public static func locate(runningBinary: URL, tansuFlag: String?, environment: [String: String]) throws -> DevExecutables {
        let fm = FileManager.default
        let binDir = runningBinary.resolvingSymlinksInPath().deletingLastPathComponent()
        let missing = stageNames.filter { !fm.isExecutableFile(atPath: binDir.appendingPathComponent($0).path) }
        guard missing.isEmpty else {
            throw SpawnError(
                description: "kiln dev runs the services beside its own binary, but \(missing.joined(separator: ", ")) "
                    + "\(missing.count == 1 ? "is" : "are") not in \(binDir.path) (build them: make build)")
        }
        let checkout = checkoutRoot(above: binDir)
        let tansu: URL
        if let path = nonEmpty(tansuFlag) ?? nonEmpty(environment["KILN_TANSU"]) {
            tansu = URL(fileURLWithPath: path)
            guard fm.isExecutableFile(atPath: tansu.path) else {
                throw SpawnError(description: "tansu is not an executable file at \(path)")
            }
        } else if let checkout, fm.isExecutableFile(atPath: checkout.appendingPathComponent(".venv/bin/tansu").path) {
            tansu = checkout.appendingPathComponent(".venv/bin/tansu")
        } else if let found = searchPath("tansu", environment: environment) {
            tansu = found
        } else {
            throw SpawnError(
                description: "tansu (the Kafka broker kiln dev runs) was not found: pass --tansu PATH or set KILN_TANSU "
                    + "(scripts/setup.sh installs it into .venv/bin/tansu)")
        }
        var lib: URL?
        if let checkout {
            let dir = checkout.appendingPathComponent(".venv/kiln-lib")
            if fm.fileExists(atPath: dir.appendingPathComponent("librdkafka.so.1").path) { lib = dir }
        }
        return DevExecutables(binDir: binDir, tansu: tansu, kafkaLibDir: lib)
    }

    /// The path of the running executable (`/proc/self/exe`, which resolves `.build/debug` links).
    public static func runningBinary() -> URL {
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return URL(fileURLWithPath: path)
        }
        return URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
    }

    static func checkoutRoot(above dir: URL) -> URL? {
        var url = dir
        while url.path != "/" && !url.path.isEmpty {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
            url.deleteLastPathComponent()
        }
        return nil
    }

    static func searchPath(_ name: String, environment: [String: String]) -> URL? {
        for dir in (environment["PATH"] ?? "").split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(dir)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }

    private static func nonEmpty(_ s: String?) -> String? {
        guard let s, !s.isEmpty else { return nil }
        return s
    }
}

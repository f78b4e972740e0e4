import ArgumentParser
import Dispatch
import Foundation
import KilnFoundation
import PprofCodec

/// `kiln inspect FILE [--json]`: decodes one pprof file and prints its facts.
struct InspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Decode and validate a pprof file (gzip or raw) and print its facts.",
        discussion: "Counts and totals describe the file as written; `top` is go tool pprof -top at function "
            + "granularity for the default sample type. A rejected file exits 1 with one line naming the fault."
    )

    @Argument(help: "The pprof file.")
    var file: String

    @Flag(
        help:
            "Print JSON (keys: sample_types, period_type, period, time_nanos, duration_nanos, default_sample_type, num_samples, num_locations, num_functions, num_mappings, totals, top)."
    )
    var json = false

    @Option(help: "Rows in `top`.")
    var top = 5

    @Option(help: "Largest decompressed size in bytes.")
    var maxDecompressedBytes = PprofLimits.default.maxDecompressedBytes

    func run() async throws {
        let (file, json, top) = (self.file, self.json, self.top)
        var limits = PprofLimits.default
        limits.maxDecompressedBytes = maxDecompressedBytes
        let decoder = PprofDecoder(limits: limits)
        let result: Result<String, PprofCLIError> = await BlockingWork.shared.run {
            let bytes: [UInt8]
            do { bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file))) } catch {
                return .failure(PprofCLIError("\(file): cannot read: \(error.localizedDescription)"))
            }
            do {
                let facts = ProfileFacts(try decoder.decode(bytes), topCount: top)
                return .success(json ? facts.json() : facts.text(file: file))
            } catch {
                return .failure(PprofCLIError("\(file): \(error)"))
            }
        }
        switch result {
        case .success(let text): print(text, terminator: text.hasSuffix("\n") ? "" : "\n")
        case .failure(let e):
            FileHandle.standardError.write(Data("kiln inspect: \(e.message)\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct PprofCLIError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

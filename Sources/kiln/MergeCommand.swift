import ArgumentParser
import Dispatch
import Foundation
import KilnFoundation
import PprofCodec

/// `kiln merge FILES... -o OUT`: what `go tool pprof -proto FILES > OUT` does, faster.
struct MergeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge pprof files into one (same stack + labels summed; mappings, functions, locations deduplicated).",
        discussion: "All inputs need the same sample types and period type. The output is gzipped pprof unless --uncompressed."
    )

    @Argument(help: "Input pprof files (gzip or raw).")
    var files: [String]

    @Option(name: .shortAndLong, help: "Output file.")
    var output: String

    @Flag(help: "Write raw protobuf instead of gzip.")
    var uncompressed = false

    @Option(help: "gzip level (1-12).")
    var level: Int32 = 6

    func run() async throws {
        let (files, output, uncompressed, level) = (self.files, self.output, self.uncompressed, self.level)
        guard !files.isEmpty else { throw ValidationError("no input files") }
        let result: Result<Int, PprofCLIError> = await BlockingWork.shared.run {
            do { return .success(try Self.merge(files: files, output: output, gzipLevel: uncompressed ? nil : level)) } catch let e
                as PprofCLIError
            {
                return .failure(e)
            } catch {
                return .failure(PprofCLIError("\(error)"))
            }
        }
        switch result {
        case .success: break
        case .failure(let e):
            FileHandle.standardError.write(Data("kiln merge: \(e.message)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// Decodes on every core (each worker reads and decodes the next file) while one merger adds the
    /// profiles in input order, so the output does not depend on timing.
    static func merge(files: [String], output: String, gzipLevel: Int32?) throws -> Int {
        let decoder = PprofDecoder(limits: .default)
        let slots = DecodedSlots(count: files.count)
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, files.count))
        let next = AtomicCounter()
        for _ in 0..<workers {
            Thread.detachNewThread {
                while true {
                    let i = next.increment()
                    if i >= files.count { return }
                    slots.waitForRoom(i, window: 2 * workers)
                    let decoded: Result<PprofProfile, PprofCLIError>
                    do {
                        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: files[i])))
                        decoded = .success(try decoder.decode(bytes))
                    } catch {
                        decoded = .failure(PprofCLIError("\(files[i]): \(error)"))
                    }
                    slots.put(i, decoded)
                }
            }
        }
        var merger = PprofMerger()
        for i in 0..<files.count {
            let profile = try slots.take(i).get()
            do { try merger.add(profile) } catch { throw PprofCLIError("\(files[i]): \(error)") }
        }
        let merged = merger.finish()
        let bytes = gzipLevel.map { PprofEncoder.encodeGzip(merged, level: $0) } ?? PprofEncoder.encode(merged)
        do { try Data(bytes).write(to: URL(fileURLWithPath: output)) } catch {
            throw PprofCLIError("\(output): cannot write: \(error.localizedDescription)")
        }
        return merged.sampleCount
    }
}

/// Hands decoded profiles from the worker threads to the merging thread, in order; a slot is emptied
/// when taken so at most the in-flight profiles are held. All state is guarded by `condition`.
final class DecodedSlots: @unchecked Sendable {
    private let condition = NSCondition()
    private var slots: [Result<PprofProfile, PprofCLIError>?]
    private var nextToTake = 0

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    /// Back-pressure: a worker does not start file `i` until the merger is within `window` of it, so
    /// memory holds a bounded number of decoded profiles however slow merging is.
    func waitForRoom(_ i: Int, window: Int) {
        condition.lock()
        while i - nextToTake >= window { condition.wait() }
        condition.unlock()
    }

    func put(_ i: Int, _ value: Result<PprofProfile, PprofCLIError>) {
        condition.lock()
        slots[i] = value
        condition.broadcast()
        condition.unlock()
    }

    func take(_ i: Int) -> Result<PprofProfile, PprofCLIError> {
        condition.lock()
        defer { condition.unlock() }
        while slots[i] == nil { condition.wait() }
        let value = slots[i]!
        slots[i] = nil
        nextToTake = i + 1
        condition.broadcast()
        return value
    }
}

/// A shared counter; `lock` guards `value`, so it is safe to share between threads.
final class AtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value - 1
    }
}

import Foundation
import Synchronization

/// How a replay reports while it runs.
public protocol ReplayProgress: Sendable {
    /// After each poll. `doneThisRun` excludes what earlier (interrupted) runs read, for the rate.
    func update(done: Int64, total: Int64, doneThisRun: Int64, counts: ReplayCounts, elapsed: Duration)
    func checkpointSaved(_ checkpoint: ReplayCheckpoint)
    func finish(_ checkpoint: ReplayCheckpoint, elapsed: Duration)
}

public struct SilentProgress: ReplayProgress {
    public init() {}
    public func update(done: Int64, total: Int64, doneThisRun: Int64, counts: ReplayCounts, elapsed: Duration) {}
    public func checkpointSaved(_ checkpoint: ReplayCheckpoint) {}
    public func finish(_ checkpoint: ReplayCheckpoint, elapsed: Duration) {}
}

/// Rate and ETA from what this run has read.
struct ProgressFigures {
    var percent: Double
    var recordsPerSecond: Double
    var megabytesPerSecond: Double
    var eta: String

    init(done: Int64, total: Int64, doneThisRun: Int64, bytes: Int, elapsed: Duration) {
        let seconds = max(elapsed.seconds, 0.001)
        percent = total > 0 ? 100 * Double(done) / Double(total) : 100
        recordsPerSecond = Double(doneThisRun) / seconds
        megabytesPerSecond = Double(bytes) / seconds / 1e6
        if done >= total {
            eta = "0s"
        } else if recordsPerSecond > 0 {
            eta = Self.duration(Double(total - done) / recordsPerSecond)
        } else {
            eta = "?"
        }
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded(.up))
        if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", s / 60 % 60))m" }
        if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s)s"
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// A bar redrawn in place on a terminal (standard error), at most ten times a second.
public final class TerminalProgressBar: ReplayProgress {
    private let lastDraw = Mutex<ContinuousClock.Instant?>(nil)
    private let width: Int
    /// Bytes read by earlier runs, so MB/s counts only this run's.
    private let bytesAtStart = Mutex<Int?>(nil)

    public init(width: Int = 30) { self.width = width }

    public func update(done: Int64, total: Int64, doneThisRun: Int64, counts: ReplayCounts, elapsed: Duration) {
        let base = bytesAtStart.withLock { b in
            if b == nil { b = counts.bytesRead }
            return b!
        }
        let now = ContinuousClock.now
        let draw = lastDraw.withLock { last -> Bool in
            if let l = last, now - l < .milliseconds(100), done < total { return false }
            last = now
            return true
        }
        guard draw else { return }
        let f = ProgressFigures(done: done, total: total, doneThisRun: doneThisRun, bytes: counts.bytesRead - base, elapsed: elapsed)
        let filled = total > 0 ? Int(Double(width) * Double(done) / Double(total)) : width
        let bar = String(repeating: "█", count: min(width, filled)) + String(repeating: "░", count: max(0, width - filled))
        let line = String(
            format: "\r%@ %5.1f%% %lld/%lld records  %.0f rec/s  %.1f MB/s  ETA %@  rejected %d ",
            bar, f.percent, done, total, f.recordsPerSecond, f.megabytesPerSecond, f.eta, counts.rejected)
        FileHandle.standardError.write(Data(line.utf8))
    }

    public func checkpointSaved(_ checkpoint: ReplayCheckpoint) {}

    public func finish(_ checkpoint: ReplayCheckpoint, elapsed: Duration) {
        FileHandle.standardError.write(Data("\n".utf8))
    }
}

/// One plain line every `interval` and at each checkpoint, for logs and pipes.
public final class ProgressLines: ReplayProgress {
    private let interval: Duration
    private let lastLine = Mutex<ContinuousClock.Instant?>(nil)
    private let bytesAtStart = Mutex<Int?>(nil)
    private let write: @Sendable (String) -> Void

    public init(
        interval: Duration = .seconds(5),
        write: @escaping @Sendable (String) -> Void = { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    ) {
        self.interval = interval
        self.write = write
    }

    public func update(done: Int64, total: Int64, doneThisRun: Int64, counts: ReplayCounts, elapsed: Duration) {
        let base = bytesAtStart.withLock { b in
            if b == nil { b = counts.bytesRead }
            return b!
        }
        let now = ContinuousClock.now
        let due = lastLine.withLock { last -> Bool in
            guard let l = last else {
                last = now
                return false
            }
            if now - l < interval { return false }
            last = now
            return true
        }
        guard due else { return }
        let f = ProgressFigures(done: done, total: total, doneThisRun: doneThisRun, bytes: counts.bytesRead - base, elapsed: elapsed)
        write(
            String(
                format: "replay: %lld/%lld records (%.1f%%), %.0f rec/s, %.1f MB/s, ETA %@, batches %d, rejected %d",
                done, total, f.percent, f.recordsPerSecond, f.megabytesPerSecond, f.eta, counts.batchesWritten, counts.rejected))
    }

    public func checkpointSaved(_ checkpoint: ReplayCheckpoint) {
        write(
            "replay: checkpoint saved at \(checkpoint.recordsDone)/\(checkpoint.recordsToRead) records, "
                + "\(checkpoint.counts.batchesWritten) batches in \(checkpoint.counts.outputsWritten) outputs")
    }

    public func finish(_ checkpoint: ReplayCheckpoint, elapsed: Duration) {}
}

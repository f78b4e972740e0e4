import CDeflate
import CZlib

/// gzip for pprof payloads. Inflation always has a hard output cap: a bomb fails as soon as the output
/// would pass the cap, never after inflating everything.
public enum Gzip {
    /// True if the bytes start with the gzip magic 1f 8b.
    public static func isGzip(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
    }

    /// Inflates a whole gzip payload (one or more members) into at most `limit` bytes.
    public static func decompress(_ input: UnsafeRawBufferPointer, limit: Int) throws(PprofError) -> [UInt8] {
        // Fast path: libdeflate inflates a whole buffer about twice as fast as zlib, but needs the output
        // size up front. The trailer's ISIZE (size mod 2^32 of the LAST member) is a hint only: if it is
        // wrong, the payload has several members, or it exceeds the cap, the streaming path decides.
        if input.count >= 18 {
            let n = input.count
            let isize = Int(input[n - 4]) | Int(input[n - 3]) << 8 | Int(input[n - 2]) << 16 | Int(input[n - 1]) << 24
            if isize <= limit, let out = inflateWhole(input, size: isize) { return out }
        }
        return try inflateStreaming(input, limit: limit)
    }

    private static func inflateWhole(_ input: UnsafeRawBufferPointer, size: Int) -> [UInt8]? {
        guard let d = libdeflate_alloc_decompressor() else { return nil }
        defer { libdeflate_free_decompressor(d) }
        var ok = false
        let out = [UInt8](unsafeUninitializedCapacity: max(size, 1)) { buf, count in
            var consumed = 0
            var produced = 0
            let r = libdeflate_gzip_decompress_ex(
                d, input.baseAddress, input.count, buf.baseAddress, size,
                &consumed, &produced)
            ok = r == LIBDEFLATE_SUCCESS && consumed == input.count && produced == size
            count = ok ? produced : 0
        }
        return ok ? out : nil
    }

    /// zlib inflate with a growing output that never passes `limit`; handles concatenated members.
    static func inflateStreaming(_ input: UnsafeRawBufferPointer, limit: Int) throws(PprofError) -> [UInt8] {
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw PprofError(.decompression, "gzip: cannot initialise zlib")
        }
        defer { inflateEnd(&stream) }
        var out = [UInt8]()
        var produced = 0
        var chunk = min(max(input.count * 4, 64 << 10), limit + 1)
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        while true {
            if produced == out.count {
                if produced > limit {
                    throw PprofError(.limit, "decompressed size exceeds the limit of \(limit) bytes")
                }
                // One byte past the limit is enough to know the limit is exceeded.
                let grow = min(chunk, limit + 1 - produced)
                out.append(contentsOf: [UInt8](repeating: 0, count: grow))
                chunk = min(chunk * 2, 64 << 20)
            }
            let status: Int32 = out.withUnsafeMutableBufferPointer { buf in
                stream.next_out = buf.baseAddress! + produced
                stream.avail_out = uInt(buf.count - produced)
                let before = stream.avail_out
                let s = inflate(&stream, Z_NO_FLUSH)
                produced += Int(before - stream.avail_out)
                return s
            }
            switch status {
            case Z_STREAM_END:
                if produced > limit {
                    throw PprofError(.limit, "decompressed size exceeds the limit of \(limit) bytes")
                }
                if stream.avail_in == 0 {
                    out.removeSubrange(produced...)
                    return out
                }
                // Another gzip member follows (Go's gzip reader reads multistream payloads too).
                guard stream.avail_in >= 2, stream.next_in[0] == 0x1f, stream.next_in[1] == 0x8b else {
                    throw PprofError(.decompression, "gzip: unexpected data after the gzip stream")
                }
                inflateReset(&stream)
            case Z_OK:
                continue
            case Z_BUF_ERROR:
                if stream.avail_in == 0 {
                    throw PprofError(.decompression, "gzip: stream truncated (unexpected end of input)")
                }
                if stream.avail_out > 0 {
                    throw PprofError(.decompression, "gzip: inflate made no progress")
                }
                continue
            default:
                let why = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                throw PprofError(.decompression, "gzip: \(why)")
            }
        }
    }

    /// Compresses `bytes` into one gzip member (libdeflate, whole buffer).
    public static func compress(_ bytes: [UInt8], level: Int32 = 6) -> [UInt8] {
        guard let c = libdeflate_alloc_compressor(level) else { fatalError("libdeflate: out of memory") }
        defer { libdeflate_free_compressor(c) }
        let bound = libdeflate_gzip_compress_bound(c, bytes.count)
        return [UInt8](unsafeUninitializedCapacity: bound) { buf, count in
            count = bytes.withUnsafeBytes { src in
                libdeflate_gzip_compress(c, src.baseAddress, src.count, buf.baseAddress, bound)
            }
        }
    }
}

/// Streaming gzip compression (zlib): feed chunks, collect one gzip member. Lets a caller compress more
/// data than it wants to hold (tests build a 1 GB-of-zeros bomb this way).
public final class GzipStream {
    private var stream = z_stream()
    public private(set) var output: [UInt8] = []

    public init(level: Int32 = 6) {
        let ok = deflateInit2_(
            &stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, zlibVersion(),
            Int32(MemoryLayout<z_stream>.size))
        precondition(ok == Z_OK, "zlib deflateInit2 failed: \(ok)")
    }

    deinit { deflateEnd(&stream) }

    public func write(_ bytes: UnsafeRawBufferPointer) { run(bytes, flush: Z_NO_FLUSH) }

    /// Ends the member and returns everything written.
    public func finish() -> [UInt8] {
        run(UnsafeRawBufferPointer(start: nil, count: 0), flush: Z_FINISH)
        return output
    }

    private func run(_ bytes: UnsafeRawBufferPointer, flush: Int32) {
        stream.next_in = UnsafeMutablePointer(mutating: bytes.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(bytes.count)
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let status: Int32 = chunk.withUnsafeMutableBufferPointer { buf in
                stream.next_out = buf.baseAddress
                stream.avail_out = uInt(buf.count)
                return deflate(&stream, flush)
            }
            let produced = chunk.count - Int(stream.avail_out)
            output.append(contentsOf: chunk[0..<produced])
            if flush == Z_FINISH ? status == Z_STREAM_END : (stream.avail_in == 0 && stream.avail_out > 0) { return }
            precondition(status == Z_OK || status == Z_BUF_ERROR, "zlib deflate failed: \(status)")
        }
    }
}

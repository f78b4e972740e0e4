// Page compression codecs: LZ4_RAW (LZ4 block format) and ZSTD through the system libraries.
import CLZ4
import CZstd

/// Compresses page bodies. Holds a reusable zstd context, so one instance serves one writer at a time.
final class PageCompressor {
    let codec: CompressionCodec
    let zstdLevel: Int32
    private var zstdContext: OpaquePointer?

    init(codec: CompressionCodec, zstdLevel: Int32) throws {
        switch codec {
        case .uncompressed, .lz4Raw, .zstd: break
        default: throw ParquetError.unsupported("writing codec \(codec)")
        }
        self.codec = codec
        self.zstdLevel = zstdLevel
    }

    deinit {
        if let c = zstdContext { ZSTD_freeCCtx(c) }
    }

    /// Appends the compressed form of `input` to `out`.
    func compress(_ input: [UInt8], into out: inout [UInt8]) throws {
        switch codec {
        case .uncompressed:
            out.append(contentsOf: input)
        case .lz4Raw:
            guard input.count <= Int(LZ4_MAX_INPUT_SIZE) else { throw ParquetError.unsupported("page over LZ4 limit") }
            let bound = Int(LZ4_compressBound(Int32(input.count)))
            let start = out.count
            out.append(contentsOf: repeatElement(0, count: bound))
            let written = input.withUnsafeBytes { src in
                out.withUnsafeMutableBytes { dst in
                    LZ4_compress_default(
                        src.baseAddress?.assumingMemoryBound(to: CChar.self),
                        (dst.baseAddress! + start).assumingMemoryBound(to: CChar.self),
                        Int32(input.count), Int32(bound))
                }
            }
            guard written > 0 || input.isEmpty else { throw ParquetError.invalid("LZ4 compression failed") }
            out.removeLast(bound - Int(written))
        case .zstd:
            if zstdContext == nil { zstdContext = ZSTD_createCCtx() }
            let bound = ZSTD_compressBound(input.count)
            let start = out.count
            out.append(contentsOf: repeatElement(0, count: bound))
            let ctx = zstdContext
            let level = zstdLevel
            let written = input.withUnsafeBytes { src in
                out.withUnsafeMutableBytes { dst in
                    ZSTD_compressCCtx(ctx, dst.baseAddress! + start, bound, src.baseAddress, input.count, level)
                }
            }
            if ZSTD_isError(written) != 0 {
                throw ParquetError.invalid("zstd compression failed: \(String(cString: ZSTD_getErrorName(written)))")
            }
            out.removeLast(bound - written)
        default:
            throw ParquetError.unsupported("writing codec \(codec)")
        }
    }
}

enum PageDecompressor {
    /// Decompresses a page body whose uncompressed size the page header states.
    static func decompress(
        _ codec: CompressionCodec, _ input: UnsafeRawBufferPointer,
        uncompressedSize: Int
    ) throws -> [UInt8] {
        guard uncompressedSize >= 0 else { throw ParquetError.invalid("negative page size") }
        switch codec {
        case .uncompressed:
            return Array(input)
        case .lz4Raw:
            var out = [UInt8](repeating: 0, count: uncompressedSize)
            let n = out.withUnsafeMutableBytes { dst in
                LZ4_decompress_safe(
                    input.baseAddress?.assumingMemoryBound(to: CChar.self),
                    dst.baseAddress?.assumingMemoryBound(to: CChar.self),
                    Int32(input.count), Int32(uncompressedSize))
            }
            guard Int(n) == uncompressedSize else { throw ParquetError.invalid("LZ4_RAW page does not decompress") }
            return out
        case .zstd:
            var out = [UInt8](repeating: 0, count: uncompressedSize)
            let n = out.withUnsafeMutableBytes { dst in
                ZSTD_decompress(dst.baseAddress, uncompressedSize, input.baseAddress, input.count)
            }
            guard ZSTD_isError(n) == 0, n == uncompressedSize else {
                throw ParquetError.invalid("ZSTD page does not decompress")
            }
            return out
        default:
            throw ParquetError.unsupported("unsupported codec \(codec); Kiln reads UNCOMPRESSED, LZ4_RAW and ZSTD")
        }
    }
}

import Foundation
import ObjectStore
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct FileObjectStoreTests {
    @Test func roundTripRangesHeadDelete() async throws {
        let dir = try ScratchDir("basic")
        defer { dir.remove() }
        let store = try makeObjectStore(url: "file://" + dir.path, environment: [:])
        let bytes = patternBytes(10_000, seed: 1)
        try await store.put("t1/01HZ/samples.parquet", bytes)

        #expect(try await store.get("t1/01HZ/samples.parquet") == bytes)
        #expect(try await store.get("t1/01HZ/samples.parquet", range: .bounded(100..<200)) == Array(bytes[100..<200]))
        #expect(try await store.get("t1/01HZ/samples.parquet", range: .bounded(9_990..<20_000)) == Array(bytes[9_990...]))
        #expect(try await store.get("t1/01HZ/samples.parquet", range: .from(9_000)) == Array(bytes[9_000...]))
        #expect(try await store.get("t1/01HZ/samples.parquet", range: .suffix(8)) == Array(bytes[9_992...]))
        await expectStoreError(.invalidRange) { _ = try await store.get("t1/01HZ/samples.parquet", range: .from(10_001)) }

        let info = try #require(try await store.head("t1/01HZ/samples.parquet"))
        #expect(info.size == 10_000)
        #expect(info.key == "t1/01HZ/samples.parquet")
        #expect(abs(info.lastModified.timeIntervalSinceNow) < 600)

        // Overwriting changes the version tag.
        try await store.put("t1/01HZ/samples.parquet", [1, 2, 3])
        let after = try #require(try await store.head("t1/01HZ/samples.parquet"))
        #expect(after.size == 3)
        #expect(after.etag != info.etag)

        try await store.delete("t1/01HZ/samples.parquet")
        #expect(try await store.head("t1/01HZ/samples.parquet") == nil)
        await expectStoreError(.notFound) { _ = try await store.get("t1/01HZ/samples.parquet") }
        try await store.delete("t1/01HZ/samples.parquet")  // deleting again is fine
        // Empty folders are removed with their last object, as S3 would show no prefix.
        #expect(try await store.list(prefix: "", delimiter: "/").commonPrefixes == [])
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/t1"))
    }

    @Test func emptyObject() async throws {
        let dir = try ScratchDir("empty")
        defer { dir.remove() }
        let store = FileObjectStore(root: dir.url)
        try await store.put("a/empty", [])
        #expect(try await store.get("a/empty") == [])
        #expect(try await store.get("a/empty", range: .suffix(10)) == [])
        #expect(try await store.head("a/empty")?.size == 0)
    }

    @Test func listWithPrefixesAndDelimiter() async throws {
        let dir = try ScratchDir("list")
        defer { dir.remove() }
        let store = FileObjectStore(root: dir.url)
        let keys = ["t1/A/meta.json", "t1/A/samples.parquet", "t1/B/meta.json", "t1/B/sub/x", "t2/C/meta.json", "t10/D/meta.json", "top"]
        for key in keys { try await store.put(key, Array(key.utf8)) }

        #expect(try await store.list(prefix: "").keys == keys.sorted())
        #expect(try await store.list(prefix: "t1/").keys == ["t1/A/meta.json", "t1/A/samples.parquet", "t1/B/meta.json", "t1/B/sub/x"])
        #expect(
            try await store.list(prefix: "t1").keys == [
                "t1/A/meta.json", "t1/A/samples.parquet", "t1/B/meta.json", "t1/B/sub/x", "t10/D/meta.json",
            ])

        let top = try await store.list(prefix: "", delimiter: "/")
        #expect(top.keys == ["top"])
        #expect(top.commonPrefixes == ["t1/", "t10/", "t2/"])

        let tenant = try await store.list(prefix: "t1/", delimiter: "/")
        #expect(tenant.keys == [])
        #expect(tenant.commonPrefixes == ["t1/A/", "t1/B/"])

        let block = try await store.list(prefix: "t1/B/", delimiter: "/")
        #expect(block.keys == ["t1/B/meta.json"])
        #expect(block.commonPrefixes == ["t1/B/sub/"])
        #expect(block.objects.first?.size == "t1/B/meta.json".utf8.count)

        // A mid-segment prefix with a delimiter rolls up like S3 does.
        let partial = try await store.list(prefix: "t1/B/m", delimiter: "/")
        #expect(partial.keys == ["t1/B/meta.json"])
        #expect(try await store.list(prefix: "nothing/", delimiter: "/") == ListResult())
    }

    @Test func putIfAbsentCreatesOnlyOnce() async throws {
        let dir = try ScratchDir("ifabsent")
        defer { dir.remove() }
        let store = FileObjectStore(root: dir.url)
        #expect(try await store.putIfAbsent("b/meta.json", [1]) == true)
        #expect(try await store.putIfAbsent("b/meta.json", [2]) == false)
        #expect(try await store.get("b/meta.json") == [1])
        // Racing writers: exactly one wins.
        let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<16 { group.addTask { try await store.putIfAbsent("race/key", [UInt8(i)]) } }
            var n = 0
            for try await won in group where won { n += 1 }
            return n
        }
        #expect(wins == 1)
        #expect(try temporaryFiles(in: dir.path).isEmpty)
    }

    /// Readers racing an overwriting writer only ever see one whole version.
    @Test func overwritesAreAtomic() async throws {
        let dir = try ScratchDir("atomic")
        defer { dir.remove() }
        let store = FileObjectStore(root: dir.url)
        let size = 256 << 10
        try await store.put("k", [UInt8](repeating: 0, count: size))
        let torn = try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask {
                for version in 1...40 { try await store.put("k", [UInt8](repeating: UInt8(version), count: size)) }
                return 0
            }
            for _ in 0..<3 {
                group.addTask {
                    var bad = 0
                    for _ in 0..<60 {
                        let bytes = try await store.get("k")
                        if bytes.count != size || bytes.contains(where: { $0 != bytes[0] }) { bad += 1 }
                    }
                    return bad
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(torn == 0)
        #expect(try await store.get("k") == [UInt8](repeating: 40, count: size))
        #expect(try temporaryFiles(in: dir.path).isEmpty)
    }

    @Test func keysMayNotEscapeTheRoot() async throws {
        let dir = try ScratchDir("escape")
        defer { dir.remove() }
        let store = FileObjectStore(root: dir.url)
        await expectStoreError(.invalidKey) { try await store.put("../outside", [1]) }
        await expectStoreError(.invalidKey) { try await store.put("/etc/passwd", [1]) }
        await expectStoreError(.invalidKey) { _ = try await store.list(prefix: "../") }
    }

    /// A real full disk: a 64 KiB tmpfs. The failed write names the path and cause, leaves no temporary file,
    /// and the previous version of the object stays whole.
    @Test(.requires(.tmpfsMount)) func fullDiskLeavesNoPartialObject() async throws {
        let mount = try await TmpfsMount(sizeKiB: 64)
        defer { mount.unmount() }
        let store = FileObjectStore(root: URL(fileURLWithPath: mount.path))
        let old = patternBytes(8 << 10, seed: 7)
        try await store.put("t/01/meta.json", old)

        let error = await expectStoreError(.noSpace) { try await store.put("t/01/meta.json", patternBytes(1 << 20, seed: 8)) }
        #expect(error?.message.contains(mount.path + "/t/01/meta.json") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("No space left on device") == true, "\(error?.message ?? "")")
        #expect(error?.code == "ENOSPC")
        #expect(try await store.get("t/01/meta.json") == old)
        #expect(try temporaryFiles(in: mount.path).isEmpty)

        // A new key that does not fit is not visible at all, and the space is given back.
        await expectStoreError(.noSpace) { try await store.put("t/02/samples.parquet", patternBytes(1 << 20, seed: 9)) }
        #expect(try await store.head("t/02/samples.parquet") == nil)
        #expect(try await store.list(prefix: "").keys == ["t/01/meta.json"])
        #expect(try temporaryFiles(in: mount.path).isEmpty)
        try await store.put("t/03/small", [1, 2, 3])
        #expect(try await store.get("t/03/small") == [1, 2, 3])
    }

    /// A read-only file system (root ignores permission bits, so a read-only mount is the real refusal here).
    @Test(.requires(.tmpfsMount)) func readOnlyFileSystemIsAClearError() async throws {
        let mount = try await TmpfsMount(sizeKiB: 64)
        defer { mount.unmount() }
        let store = FileObjectStore(root: URL(fileURLWithPath: mount.path))
        try await store.put("existing", [9])
        guard try await runCommand("/bin/mount", ["-o", "remount,ro", mount.path]) == 0 else {
            Issue.record("could not remount \(mount.path) read-only")
            return
        }
        let error = await expectStoreError(.accessDenied) { try await store.put("new/key", [1]) }
        #expect(error?.message.contains(mount.path + "/new") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("Read-only file system") == true, "\(error?.message ?? "")")
        #expect(try await store.get("existing") == [9])
    }
}

/// In-progress files left in a folder tree.
func temporaryFiles(in path: String) throws -> [String] {
    guard let walker = FileManager.default.enumerator(atPath: path) else { return [] }
    return walker.compactMap { $0 as? String }.filter { ($0 as NSString).lastPathComponent.hasPrefix(".kiln-tmp-") }
}

@discardableResult
func runCommand(_ executable: String, _ arguments: [String]) async throws -> Int32 {
    try await offPool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }
}

/// A small tmpfs mounted for one test (needs root: the test is marked `.requires(.tmpfsMount)`); throws
/// when it cannot be mounted.
struct TmpfsMount {
    let dir: ScratchDir
    var path: String { dir.path }

    init(sizeKiB: Int) async throws {
        dir = try ScratchDir("tmpfs")
        let status = try await runCommand("/bin/mount", ["-t", "tmpfs", "-o", "size=\(sizeKiB)k,mode=0755", "tmpfs", dir.path])
        if status != 0 {
            dir.remove()
            throw TestFailure("mount -t tmpfs on \(dir.path) failed with status \(status)")
        }
    }

    func unmount() {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/umount")
        p.arguments = [dir.path]
        try? p.run()
        p.waitUntilExit()  // umount of an idle tmpfs returns at once; runs in a defer, so it cannot await
        dir.remove()
    }
}

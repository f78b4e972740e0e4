import Foundation
import KilnFoundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An object store in a local folder: each key is a file under `root`, '/' making sub-folders.
///
/// Writes are atomic and durable: the bytes go to a temporary file in the target folder, which is fsynced,
/// renamed (or hard-linked, for `putIfAbsent`) onto the key, and the folder is fsynced. A failed write
/// (full disk, permissions) removes its temporary file, so no partial object is ever visible.
public struct FileObjectStore: ObjectStore {
    public let root: URL
    public var location: String { "file://" + root.path }

    public init(root: URL) {
        self.root = root.standardizedFileURL
    }

    public func put(_ key: String, _ bytes: [UInt8]) async throws {
        try ObjectKey.validate(key)
        let path = self.path(for: key)
        _ = try await BlockingWork.shared.run { try Self.write(bytes, to: path, exclusive: false) }
    }

    public func putIfAbsent(_ key: String, _ bytes: [UInt8]) async throws -> Bool {
        try ObjectKey.validate(key)
        let path = self.path(for: key)
        return try await BlockingWork.shared.run { try Self.write(bytes, to: path, exclusive: true) } != nil
    }

    public func put(_ key: String, _ bytes: [UInt8], if condition: WriteCondition) async throws -> String? {
        try ObjectKey.validate(key)
        let path = self.path(for: key)
        let written = try await BlockingWork.shared.run { () throws -> stat? in
            switch condition {
            case .absent: return try Self.write(bytes, to: path, exclusive: true)
            case .matches(let etag): return try Self.replace(bytes, at: path, key: key, ifMatching: etag)
            }
        }
        return written.flatMap { Self.info(key: key, $0).etag }
    }

    public func get(_ key: String, range: ByteRange?) async throws -> [UInt8] {
        try ObjectKey.validate(key)
        try range?.validate()
        let path = self.path(for: key)
        return try await BlockingWork.shared.run { try Self.read(path: path, key: key, range: range) }
    }

    public func head(_ key: String) async throws -> ObjectInfo? {
        try ObjectKey.validate(key)
        let path = self.path(for: key)
        return try await BlockingWork.shared.run {
            var st = stat()
            if stat(path, &st) != 0 {
                if errno == ENOENT || errno == ENOTDIR { return nil }
                throw Self.error(errno, "cannot stat", path)
            }
            guard (st.st_mode & S_IFMT) == S_IFREG else { return nil }
            return Self.info(key: key, st)
        }
    }

    public func list(prefix: String, delimiter: String?) async throws -> ListResult {
        try ObjectKey.validatePrefix(prefix)
        if let delimiter, delimiter.isEmpty {
            throw ObjectStoreError(.invalidArgument, "list delimiter must not be empty")
        }
        let rootPath = root.path
        return try await BlockingWork.shared.run { try Self.list(rootPath: rootPath, prefix: prefix, delimiter: delimiter) }
    }

    public func delete(_ key: String) async throws {
        try ObjectKey.validate(key)
        let path = self.path(for: key)
        let rootPath = root.path
        try await BlockingWork.shared.run {
            if unlink(path) != 0 {
                if errno == ENOENT || errno == ENOTDIR { return }
                throw Self.error(errno, "cannot delete", path)
            }
            // Empty folders left behind would otherwise show up as common prefixes that S3 would not report.
            var dir = (path as NSString).deletingLastPathComponent
            while dir.count > rootPath.count, dir.hasPrefix(rootPath), rmdir(dir) == 0 {
                dir = (dir as NSString).deletingLastPathComponent
            }
        }
    }

    public func shutdown() async throws {}

    func path(for key: String) -> String { root.path + "/" + key }

    // MARK: - Blocking helpers (run on `Blocking`'s threads only)

    /// The new file's status (its entity tag's source), or nil when `exclusive` and the key already exists.
    @discardableResult
    static func write(_ bytes: [UInt8], to path: String, exclusive: Bool) throws -> stat? {
        let dir = (path as NSString).deletingLastPathComponent
        try makeDirectories(dir)
        let temp = dir + "/" + ObjectKey.temporaryMarker + UUID().uuidString
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 { throw error(errno, "cannot create temporary file for", path) }
        var committed = false
        var written = stat()
        defer { if !committed { unlink(temp) } }
        do {
            defer { close(fd) }
            try bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw error(errno, "cannot write", path)
                    }
                    offset += n
                }
            }
            if fsync(fd) != 0 { throw error(errno, "cannot fsync", path) }
            if fstat(fd, &written) != 0 { throw error(errno, "cannot stat", temp) }
        }
        if exclusive {
            // link() fails with EEXIST instead of replacing: an atomic create-only commit.
            if link(temp, path) != 0 {
                if errno == EEXIST { return nil }
                throw error(errno, "cannot commit (link)", path)
            }
        } else if rename(temp, path) != 0 {
            throw error(errno, "cannot commit (rename)", path)
        }
        if exclusive { unlink(temp) }
        committed = true
        try fsyncDirectory(dir, for: path)
        return written
    }

    /// Replaces the file only while its entity tag is `etag`. The old file is locked (flock) for the check
    /// and the rename, and a writer that locked a file already renamed over finds the path's inode changed,
    /// so two racing replacements of one version cannot both succeed.
    static func replace(_ bytes: [UInt8], at path: String, key: String, ifMatching etag: String) throws -> stat? {
        while true {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 {
                if errno == ENOENT || errno == ENOTDIR { return nil }
                throw error(errno, "cannot open", path)
            }
            defer { close(fd) }
            while flock(fd, LOCK_EX) != 0 {
                if errno != EINTR { throw error(errno, "cannot lock", path) }
            }
            var locked = stat()
            var current = stat()
            if fstat(fd, &locked) != 0 { throw error(errno, "cannot stat", path) }
            if stat(path, &current) != 0 {
                if errno == ENOENT || errno == ENOTDIR { return nil }
                throw error(errno, "cannot stat", path)
            }
            // Renamed over while this writer waited for the lock: look at the new file.
            if locked.st_ino != current.st_ino || locked.st_dev != current.st_dev { continue }
            guard info(key: key, locked).etag == etag else { return nil }
            return try write(bytes, to: path, exclusive: false)
        }
    }

    static func read(path: String, key: String, range: ByteRange?) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT || errno == ENOTDIR || errno == EISDIR {
                throw ObjectStoreError(.notFound, "no object \"\(key)\" (\(path) does not exist)", code: "NoSuchKey")
            }
            throw error(errno, "cannot open", path)
        }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw error(errno, "cannot stat", path) }
        if (st.st_mode & S_IFMT) != S_IFREG {
            throw ObjectStoreError(.notFound, "no object \"\(key)\" (\(path) is not a regular file)", code: "NoSuchKey")
        }
        let size = Int(st.st_size)
        let selected: Range<Int>
        if let range {
            guard let r = range.resolve(size: size) else {
                throw ObjectStoreError(.invalidRange, "\(range) is outside object \"\(key)\" of \(size) bytes (\(path))")
            }
            selected = r
        } else {
            selected = 0..<size
        }
        var out = [UInt8](repeating: 0, count: selected.count)
        var done = 0
        try out.withUnsafeMutableBytes { buffer in
            while done < selected.count {
                let n = pread(fd, buffer.baseAddress! + done, selected.count - done, off_t(selected.lowerBound + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw error(errno, "cannot read", path)
                }
                if n == 0 { break }  // truncated underneath us; return what exists
                done += n
            }
        }
        if done < out.count { out.removeSubrange(done...) }
        return out
    }

    static func list(rootPath: String, prefix: String, delimiter: String?) throws -> ListResult {
        // Start at the deepest folder the prefix names fully, so a listing of one block reads one folder.
        let startRelative: String
        if let slash = prefix.lastIndex(of: "/") { startRelative = String(prefix[...slash]) } else { startRelative = "" }
        var objects: [ObjectInfo] = []
        var prefixes = Set<String>()

        // Walks `relative` (a folder key ending in '/' or empty) depth-first.
        func walk(_ relative: String) throws {
            let dirPath = relative.isEmpty ? rootPath : rootPath + "/" + String(relative.dropLast())
            guard let dir = opendir(dirPath) else {
                if errno == ENOENT || errno == ENOTDIR { return }
                throw error(errno, "cannot list", dirPath)
            }
            defer { closedir(dir) }
            var entries: [(name: String, isDir: Bool)] = []
            while let entry = readdir(dir) {
                let name = withUnsafePointer(to: entry.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
                }
                if name == "." || name == ".." || name.hasPrefix(ObjectKey.temporaryMarker) { continue }
                var st = stat()
                if lstat(dirPath + "/" + name, &st) != 0 { continue }  // vanished meanwhile
                let type = st.st_mode & S_IFMT
                if type == S_IFDIR {
                    entries.append((name, true))
                } else if type == S_IFREG {
                    let key = relative + name
                    guard key.hasPrefix(prefix) else { continue }
                    if let delimiter, let rolled = rollUp(key, prefix: prefix, delimiter: delimiter) {
                        prefixes.insert(rolled)
                    } else {
                        objects.append(info(key: key, st))
                    }
                }
            }
            for (name, _) in entries.filter(\.isDir) {
                let child = relative + name + "/"
                // Descend only into folders that can hold keys under the prefix.
                guard child.hasPrefix(prefix) || prefix.hasPrefix(child) else { continue }
                if delimiter == "/" && child.hasPrefix(prefix) {
                    // Every key below rolls up into `child`; report it if it holds any object at all.
                    if try holdsObject(rootPath + "/" + String(child.dropLast())) { prefixes.insert(child) }
                    continue
                }
                try walk(child)
            }
        }
        try walk(startRelative)
        objects.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        return ListResult(
            objects: objects,
            commonPrefixes: prefixes.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
    }

    /// The rolled-up prefix for `key`, or nil when the key has no delimiter after the prefix.
    static func rollUp(_ key: String, prefix: String, delimiter: String) -> String? {
        let rest = key.dropFirst(prefix.count)
        guard let found = rest.range(of: delimiter) else { return nil }
        return prefix + String(rest[..<found.upperBound])
    }

    /// True if the folder tree holds at least one visible regular file; stops at the first.
    static func holdsObject(_ dirPath: String) throws -> Bool {
        guard let dir = opendir(dirPath) else { return false }
        defer { closedir(dir) }
        var subdirs: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." || name.hasPrefix(ObjectKey.temporaryMarker) { continue }
            var st = stat()
            if lstat(dirPath + "/" + name, &st) != 0 { continue }
            if (st.st_mode & S_IFMT) == S_IFREG { return true }
            if (st.st_mode & S_IFMT) == S_IFDIR { subdirs.append(dirPath + "/" + name) }
        }
        for sub in subdirs where try holdsObject(sub) { return true }
        return false
    }

    static func info(key: String, _ st: stat) -> ObjectInfo {
        let mtime = Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
        let tag =
            String(UInt64(st.st_ino), radix: 16) + "-" + String(Int64(st.st_size), radix: 16) + "-"
            + String(Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec), radix: 16)
        return ObjectInfo(key: key, size: Int(st.st_size), etag: tag, lastModified: Date(timeIntervalSince1970: mtime))
    }

    static func makeDirectories(_ dir: String) throws {
        if mkdir(dir, 0o755) == 0 || errno == EEXIST { return }
        if errno == ENOENT {
            try makeDirectories((dir as NSString).deletingLastPathComponent)
            if mkdir(dir, 0o755) == 0 || errno == EEXIST { return }
        }
        throw error(errno, "cannot create folder", dir)
    }

    static func fsyncDirectory(_ dir: String, for path: String) throws {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw error(errno, "cannot open folder to fsync after writing", path) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw error(errno, "cannot fsync folder after writing", path) }
    }

    static func error(_ code: Int32, _ what: String, _ path: String) -> ObjectStoreError {
        let cause = String(cString: strerror(code))
        let name = errnoName(code)
        let kind: ObjectStoreError.Kind =
            (code == ENOSPC || code == EDQUOT)
            ? .noSpace
            : (code == EACCES || code == EPERM || code == EROFS) ? .accessDenied : .io
        return ObjectStoreError(kind, "\(what) \(path): \(cause) (\(name))", code: name)
    }

    static func errnoName(_ code: Int32) -> String {
        switch code {
        case ENOSPC: return "ENOSPC"
        case EDQUOT: return "EDQUOT"
        case EACCES: return "EACCES"
        case EPERM: return "EPERM"
        case EROFS: return "EROFS"
        case EIO: return "EIO"
        case ENOENT: return "ENOENT"
        case ENOTDIR: return "ENOTDIR"
        case EISDIR: return "EISDIR"
        case EEXIST: return "EEXIST"
        case EMFILE: return "EMFILE"
        default: return "errno \(code)"
        }
    }
}

import Foundation
import Hummingbird
import NIOCore

/// The web UI's static files: plain HTML, CSS and JavaScript kept in `Sources/HTTPAPI/UI` and shipped as
/// SwiftPM resources, so the binary needs no npm and no separate web server.
public struct UIAssets: Sendable {
    /// The folder holding `index.html` and the files it loads.
    public let directory: URL

    public init(directory: URL) {
        self.directory = directory
    }

    /// `KILN_UI_DIR` when set (a developer edits the files and reloads the page, no rebuild), otherwise
    /// the copy SwiftPM placed beside the executable.
    public static func locate(environment: [String: String] = ProcessInfo.processInfo.environment) -> UIAssets {
        if let dir = environment["KILN_UI_DIR"], !dir.isEmpty {
            return UIAssets(directory: URL(fileURLWithPath: dir, isDirectory: true))
        }
        return bundled
    }

    /// The files compiled into the package's resource bundle.
    public static var bundled: UIAssets {
        let url = Bundle.module.url(forResource: "UI", withExtension: nil)
            ?? Bundle.module.bundleURL.appendingPathComponent("UI", isDirectory: true)
        return UIAssets(directory: url)
    }

    /// The bytes of one top-level file, or nil when the name is not a plain file name or no such file
    /// exists. Read on every request: the files are small and a live-edited folder stays current.
    public func contents(of name: String) -> [UInt8]? {
        guard Self.isPlainFileName(name) else { return nil }
        let url = directory.appendingPathComponent(name, isDirectory: false)
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        return [UInt8](data)
    }

    /// Letters, digits, `.`, `-`, `_`; no leading dot. Keeps requests inside the folder (no `..`, no `/`).
    static func isPlainFileName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first != ".", name.utf8.count <= 128 else { return false }
        return name.unicodeScalars.allSatisfy { c in
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "." || c == "-" || c == "_"
        }
    }

    /// The Content-Type a browser needs to run or style the file (scripts must not be served as text/plain).
    public static func contentType(for name: String) -> String {
        switch name.split(separator: ".").last.map({ $0.lowercased() }) {
        case "html": "text/html; charset=utf-8"
        case "js", "mjs": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "ico": "image/x-icon"
        case "json": "application/json"
        case "txt", "md": "text/plain; charset=utf-8"
        default: "application/octet-stream"
        }
    }
}

/// Serves the web UI: `GET /` is `index.html`, `GET /ui/<file>` is one of its assets.
public enum UIRoutes {
    public static let assetPrefix = "/ui/"

    public static func register<Context: RequestContext>(on router: Router<Context>, assets: UIAssets = .locate()) {
        router.get("/") { _, _ in
            response(for: "index.html", assets: assets)
        }
        router.get("/ui/{file}") { _, context in
            response(for: context.parameters.get("file") ?? "", assets: assets)
        }
    }

    static func response(for name: String, assets: UIAssets) -> Response {
        guard let bytes = assets.contents(of: name) else {
            return Response(status: .notFound, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: "no such UI file\n")))
        }
        // no-cache: the browser revalidates, so an upgraded binary or a live edit shows on reload.
        return Response(status: .ok,
                        headers: [.contentType: UIAssets.contentType(for: name), .cacheControl: "no-cache",
                                  .init("X-Content-Type-Options")!: "nosniff"],
                        body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

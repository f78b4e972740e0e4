import APICommon
import Foundation
import Hummingbird
import NIOCore

/// The web UI's static files: plain HTML, CSS and JavaScript kept in `Sources/QueryAPI/UI` and shipped as
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

    /// The files SwiftPM copied beside the executable (`<package>_QueryAPI.resources/UI`). `Bundle.module`
    /// stops the process when that folder is missing (a binary copied without it), so look before touching
    /// it; when absent, every UI request answers 404 with a hint instead.
    public static var bundled: UIAssets {
        let beside = Bundle.main.bundleURL
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: beside.path)) ?? []
        guard entries.contains(where: { $0.hasSuffix("_QueryAPI.resources") }),
            let url = Bundle.module.url(forResource: "UI", withExtension: nil)
        else {
            return UIAssets(directory: beside.appendingPathComponent("QueryAPI-resources-missing/UI", isDirectory: true))
        }
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

    /// With `access` authenticating, the pages ask for credentials too: the browser then prompts once and
    /// sends them with the UI's API calls.
    public static func register<Context: RequestContext>(
        on router: Router<Context>, assets: UIAssets = .locate(),
        access: TenantAccess = .open
    ) {
        router.get("/") { request, _ in
            guarded(request, access: access) { response(for: "index.html", assets: assets) }
        }
        router.get("/ui/{file}") { request, context in
            guarded(request, access: access) { response(for: context.parameters.get("file") ?? "", assets: assets) }
        }
    }

    /// The UI runs only its own files: no inline scripts or styles, no other origins, no framing, so an
    /// injected label value or function name can never run as code.
    public static let contentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    static func guarded(_ request: Request, access: TenantAccess, _ body: () -> Response) -> Response {
        guard access.isAuthenticating else { return body() }
        switch access.tenant(request, endpoint: "ui") {
        case .success: return body()
        case .failure(let error): return Connect.errorResponse(error)
        }
    }

    static func response(for name: String, assets: UIAssets) -> Response {
        guard let bytes = assets.contents(of: name) else {
            let hint =
                name == "index.html"
                ? "Kiln's web UI files are not in \(assets.directory.path): install the *_QueryAPI.resources folder "
                    + "beside the binary, or set KILN_UI_DIR to a copy of Sources/QueryAPI/UI.\n"
                : "no such UI file\n"
            return Response(
                status: .notFound, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: hint)))
        }
        // no-cache: the browser revalidates, so an upgraded binary or a live edit shows on reload.
        return Response(
            status: .ok,
            headers: [
                .contentType: UIAssets.contentType(for: name), .cacheControl: "no-cache",
                .init("X-Content-Type-Options")!: "nosniff",
                .init("Content-Security-Policy")!: contentSecurityPolicy,
                .init("X-Frame-Options")!: "DENY",
                .init("Referrer-Policy")!: "same-origin",
            ],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

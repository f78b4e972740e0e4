import APICommon
import AsyncHTTPClient
import Foundation
import Hummingbird
import IngestAPI
import KilnProtos
import Logging
import NIOCore
import QueryAPI
import Testing

/// A real Hummingbird server on 127.0.0.1 (port chosen by the OS) with the routes `configure` adds.
func withServer<T: Sendable>(
    _ configure: (Router<BasicRequestContext>) -> Void,
    _ body: @Sendable (String) async throws -> T
) async throws -> T {
    let router = Router()
    configure(router)
    return try await withServer(router, body)
}

func get(_ url: String) async throws -> HTTPResult {
    let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
    let bytes = try await response.body.collect(upTo: 16 << 20)
    return HTTPResult(
        status: Int(response.status.code), contentType: response.headers.first(name: "content-type"),
        body: Array(bytes.readableBytesView))
}

/// Every `/ui/<file>` that a document names in `src="…"` or `href="…"`, and every `./x.js` a module imports.
func referencedAssets(in text: String) -> [String] {
    var names: [String] = []
    let patterns = [#"(?:src|href)="/ui/([^"?#]+)""#, #"from\s+"\./([^"]+)""#, #"import\s*\(\s*"\./([^"]+)"\s*\)"#]
    for pattern in patterns {
        let regex = try! NSRegularExpression(pattern: pattern)
        for match in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            if let r = Range(match.range(at: 1), in: text) { names.append(String(text[r])) }
        }
    }
    return names
}

@Suite struct UIRoutesTests {
    @Test func indexAndEveryAssetItLoadsAreServedWithTheirContentTypes() async throws {
        try await withServer({ UIRoutes.register(on: $0, assets: .bundled) }) { base in
            let index = try await get(base + "/")
            #expect(index.status == 200)
            #expect(index.contentType == "text/html; charset=utf-8")
            #expect(index.text.contains("<canvas"), "index.html is the UI page")

            // Walk the page and, transitively, the modules it imports: each must exist with its type.
            var pending = referencedAssets(in: index.text)
            #expect(pending.contains("app.js") && pending.contains("style.css"))
            var seen = Set<String>()
            while let name = pending.popLast() {
                guard seen.insert(name).inserted else { continue }
                let asset = try await get(base + "/ui/" + name)
                #expect(asset.status == 200, "index.html or a module references \(name), which is not served")
                let expected: String =
                    switch (name as NSString).pathExtension {
                    case "js": "text/javascript; charset=utf-8"
                    case "css": "text/css; charset=utf-8"
                    case "svg": "image/svg+xml"
                    case "html": "text/html; charset=utf-8"
                    default: "unexpected extension"
                    }
                #expect(asset.contentType == expected, "\(name)")
                if name.hasSuffix(".js") || name.hasSuffix(".html") { pending += referencedAssets(in: asset.text) }
            }
            #expect(
                seen.isSuperset(of: [
                    "app.js", "api.js", "flamegraph.js", "table.js", "timeline.js", "format.js", "rules.html", "rules.js", "rule-form.js",
                ]))
        }
    }

    @Test func namesOutsideTheFolderAndUnknownFilesAreNotFound() async throws {
        try await withServer({ UIRoutes.register(on: $0, assets: .bundled) }) { base in
            for path in ["/ui/nope.js", "/ui/..", "/ui/.hidden", "/ui/%2e%2e%2fUIRoutes.swift", "/ui/app.js/extra"] {
                let r = try await get(base + path)
                #expect(r.status == 404, "\(path) answered \(r.status)")
            }
        }
    }

    @Test func kilnUIDirServesALiveEditedFolder() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-ui-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("<!doctype html><p>first".utf8).write(to: dir.appendingPathComponent("index.html"))
        let assets = UIAssets.locate(environment: ["KILN_UI_DIR": dir.path])
        try await withServer({ UIRoutes.register(on: $0, assets: assets) }) { base in
            #expect(try await get(base + "/").text.hasSuffix("first"))
            // An edit shows on the next request, no restart.
            try Data("<!doctype html><p>second".utf8).write(to: dir.appendingPathComponent("index.html"))
            #expect(try await get(base + "/").text.hasSuffix("second"))
            #expect(try await get(base + "/ui/app.js").status == 404, "only the given folder is served")
        }
    }

    @Test func missingBundleAnswersWithAHintInsteadOfStopping() async throws {
        let assets = UIAssets(directory: URL(fileURLWithPath: "/nonexistent-kiln-ui"))
        try await withServer({ UIRoutes.register(on: $0, assets: assets) }) { base in
            let r = try await get(base + "/")
            #expect(r.status == 404)
            #expect(r.text.contains("KILN_UI_DIR"))
        }
    }
}

import APICommon
import AsyncHTTPClient
import Foundation
import Hummingbird
import IngestAPI
import KilnProtos
import Logging
import ProfileModel
import Query
import QueryAPI
import Scrape
import SwiftProtobuf
import TestSupport
import Testing

/// Authentication of the ingest and query endpoints with a credentials file: who gets in, which tenant
/// they act for, what a refusal looks like, and that secrets never appear in answers.
@Suite struct AuthTests {
    static let pushToken = "push-token-0123456789"
    static let grafanaPassword = "grafana pass:word"

    /// One bearer token for tenant shop, one basic-auth user for shop and ads (hashed), one for any tenant.
    static let file = """
        {"credentials": [
          {"name": "shop-push", "bearer_token": "\(pushToken)", "tenants": ["shop"]},
          {"name": "grafana", "username": "grafana", "password_sha256": "\(sha256Hex(grafanaPassword))", "tenants": ["shop", "ads"]},
          {"username": "ops", "password": "ops-secret", "tenants": ["*"]}
        ]}
        """

    static var access: TenantAccess { TenantAccess(credentials: try! Credentials(json: Array(file.utf8))) }

    static func basic(_ user: String, _ password: String) -> String {
        "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
    }

    static func sha256Hex(_ text: String) -> String {
        // Independent of the code under test: sha256sum as an operator would run it.
        let pipe = Pipe()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "printf %s \"$0\" | sha256sum", text]
        p.standardOutput = pipe
        try! p.run()
        p.waitUntilExit()
        return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: " ")[0].description
    }

    @Test func credentialsFileRefusesMistakesWithoutEchoingSecrets() throws {
        let parsed = try Credentials(json: Array(Self.file.utf8))
        #expect(parsed.entries.map(\.name) == ["shop-push", "grafana", "ops"])
        let bad: [(String, String)] = [
            (#"{"credentials": [{"bearer_token": "s3cr3t-A", "bearer_token_sha256": "00", "tenants": ["a"]}]}"#, "not both"),
            (#"{"credentials": [{"bearer_token_sha256": "s3cr3t-B", "tenants": ["a"]}]}"#, "64 hexadecimal digits"),
            (#"{"credentials": [{"bearer_token": "s3cr3t-C"}]}"#, "tenants"),
            (#"{"credentials": [{"bearer_token": "s3cr3t-D", "tenants": ["a/b"]}]}"#, "not allowed"),
            (#"{"credentials": [{"bearer_token": "s3cr3t-E", "tenant": ["a"]}]}"#, "unknown field \"tenant\""),
            (#"{"credentials": [{"username": "u", "tenants": ["a"]}]}"#, "either a bearer token or a username"),
            (
                #"{"credentials": [{"bearer_token": "s3cr3t-F", "tenants": ["a"]}, {"bearer_token": "s3cr3t-F", "tenants": ["b"]}]}"#,
                "twice"
            ),
            (#"{"users": []}"#, "credentials"),
        ]
        for (text, expected) in bad {
            do {
                _ = try Credentials(json: Array(text.utf8))
                Issue.record("accepted \(text)")
            } catch {
                #expect("\(error)".contains(expected), "\(error)")
                #expect(!"\(error)".contains("s3cr3t"), "the error echoes a secret: \(error)")
            }
        }
    }

    @Test func tenantFollowsTheCredential() throws {
        let access = Self.access
        func tenant(_ auth: String?, _ org: String? = nil) -> Result<String, APIError> {
            access.tenant(authorization: auth, scopeOrgID: org, endpoint: "test")
        }
        #expect(try tenant("Bearer \(Self.pushToken)").get() == "shop")
        #expect(try tenant("bearer  \(Self.pushToken) ", "shop").get() == "shop")
        #expect(try tenant(Self.basic("grafana", Self.grafanaPassword), "ads").get() == "ads")
        #expect(try tenant(Self.basic("grafana", Self.grafanaPassword)).get() == "shop", "no header: the first tenant")
        #expect(try tenant(Self.basic("ops", "ops-secret"), "anything").get() == "anything")
        #expect(try tenant(Self.basic("ops", "ops-secret")).get() == "anonymous")

        func kind(_ r: Result<String, APIError>) -> APIError.Kind? { if case .failure(let e) = r { e.kind } else { nil } }
        #expect(kind(tenant(nil)) == .missingCredentials)
        #expect(kind(tenant("Bearer \(Self.pushToken)x")) == .missingCredentials)
        #expect(kind(tenant("Bearer \(Self.pushToken.dropLast())")) == .missingCredentials)
        #expect(kind(tenant(Self.basic("grafana", "wrong"))) == .missingCredentials)
        #expect(kind(tenant(Self.basic("ops", Self.grafanaPassword))) == .missingCredentials, "a password of another user")
        #expect(kind(tenant("Basic !!!")) == .missingCredentials)
        #expect(kind(tenant("Digest abc")) == .missingCredentials)
        #expect(kind(tenant("Bearer \(Self.pushToken)", "ads")) == .forbidden)
        #expect(kind(tenant(Self.basic("grafana", Self.grafanaPassword), "other")) == .forbidden)
        if case .failure(let e) = tenant("Bearer \(Self.pushToken)", "ads") {
            #expect(e.message.contains("shop-push") && e.message.contains("ads"))
            #expect(!e.message.contains(Self.pushToken))
        }
    }

    @Test(.requires(.fixtures)) func ingestEndpointsAuthenticate() async throws {
        let publisher = GatedPublisher()
        publisher.open()
        var options = IngestOptions()
        options.access = Self.access
        let body = try fixture("go_heap_pyroscope.pb.gz")
        try await withIngestServer(publisher: publisher, options: options) { url in
            let ingest = url + "/ingest?name=checkout&format=pprof"
            let missing = try await post(ingest, body: body)
            #expect(missing.status == 401)
            #expect(missing.text.contains("authentication required"))
            let wrong = try await post(ingest, body: body, headers: [("Authorization", "Bearer nope-\(Self.pushToken)")])
            #expect(wrong.status == 401)
            #expect(!wrong.text.contains(Self.pushToken))
            let ok = try await post(ingest, body: body, headers: [("Authorization", "Bearer \(Self.pushToken)")])
            #expect(ok.status == 200, "\(ok.text)")
            let foreign = try await post(
                ingest, body: body, headers: [("Authorization", "Bearer \(Self.pushToken)"), ("X-Scope-OrgID", "ads")])
            #expect(foreign.status == 403)

            let push = url + IngestRoutes.connectPushPath
            let request = try PushIngestTests().pushRequest([body], labels: [("service_name", "checkout")]).serializedBytes() as [UInt8]
            let connectMissing = try await post(push, body: request, headers: [("Content-Type", "application/proto")])
            #expect(connectMissing.status == 401)
            #expect(connectMissing.connectCode == "unauthenticated")
            let connectOK = try await post(
                push, body: request,
                headers: [
                    ("Content-Type", "application/proto"), ("X-Scope-OrgID", "ads"),
                    ("Authorization", Self.basic("grafana", Self.grafanaPassword)),
                ])
            #expect(connectOK.status == 200, "\(connectOK.text)")
            let connectForeign = try await post(
                push, body: request,
                headers: [
                    ("Content-Type", "application/proto"), ("X-Scope-OrgID", "x"),
                    ("Authorization", Self.basic("grafana", Self.grafanaPassword)),
                ])
            #expect(connectForeign.status == 403)
            #expect(connectForeign.connectCode == "permission_denied")
        }
        #expect(publisher.published.map(\.tenant) == ["shop", "ads"])
    }

    @Test func challengeNamesBothSchemes() async throws {
        var options = IngestOptions()
        options.access = Self.access
        let publisher = GatedPublisher()
        try await withIngestServer(publisher: publisher, options: options) { url in
            var request = HTTPClientRequest(url: url + "/ingest?name=a")
            request.method = .POST
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            #expect(response.status.code == 401)
            let challenges = response.headers["WWW-Authenticate"].joined(separator: ", ")
            #expect(challenges.contains(#"Basic realm="kiln""#) && challenges.contains(#"Bearer realm="kiln""#), "\(challenges)")
        }
    }

    @Test func queryRenderAndUIAuthenticate() async throws {
        var queryOptions = QueryOptions()
        queryOptions.access = Self.access
        let options = queryOptions
        try await SyntheticBlocks.with { blocks in
            let router = Router()
            QueryRoutes.register(on: router, engine: QueryEngine(store: blocks.store), logger: Logger(label: "test"), options: options)
            UIRoutes.register(on: router, access: options.access)
            try await withServer(router) { url in
                let types = url + QueryRoutes.servicePath + "ProfileTypes"
                let json = [("Content-Type", "application/json")]
                #expect(try await post(types, body: Array("{}".utf8), headers: json).status == 401)
                let ok = try await post(
                    types, body: Array("{}".utf8), headers: json + [("Authorization", Self.basic("grafana", Self.grafanaPassword))])
                #expect(ok.status == 200, "\(ok.text)")
                let foreign = try await post(
                    types, body: Array("{}".utf8),
                    headers: json + [("Authorization", "Bearer \(Self.pushToken)"), ("X-Scope-OrgID", "ads")])
                #expect(foreign.status == 403)
                let render = url + "/pyroscope/render?query=process_cpu:cpu:nanoseconds:cpu:nanoseconds%7B%7D&from=now-1h&until=now"
                #expect(try await get(render).status == 401)
                #expect(try await get(render, headers: [("Authorization", "Bearer \(Self.pushToken)")]).status == 200)
                #expect(try await get(url + "/").status == 401)
                #expect(try await get(url + "/", headers: [("Authorization", Self.basic("ops", "ops-secret"))]).status != 401)
            }
        }
    }

    @Test func openServersKeepPyroscopeTenancy() throws {
        let open = TenantAccess.open
        #expect(try open.tenant(authorization: nil, scopeOrgID: "team-a", endpoint: "t").get() == "team-a")
        #expect(try open.tenant(authorization: "Bearer whatever", scopeOrgID: nil, endpoint: "t").get() == "anonymous")
    }

    @Test(.requires(.fixtures)) func forwarderPushesToAnAuthenticatedKiln() async throws {
        let publisher = GatedPublisher()
        publisher.open()
        var options = IngestOptions()
        options.access = Self.access
        let body = try fixture("go_heap_pyroscope.pb.gz")
        let scraped = PushForwarderTests.scraped(body: body, cumulative: false)
        try await withIngestServer(publisher: publisher, options: options) { url in
            var credentials = ScrapeCredentials()
            credentials.basicAuth = BasicAuth(username: "ops", password: "ops-secret", passwordFile: nil)
            let forwarder = PushForwarder(endpoints: [WriteEndpoint(url: url, credentials: credentials)], attempts: 1)
            try await forwarder.publish(scraped)

            var wrong = ScrapeCredentials()
            wrong.bearerToken = "not-a-token"
            let refused = PushForwarder(endpoints: [WriteEndpoint(url: url, credentials: wrong)], attempts: 1)
            await #expect { try await refused.publish(scraped) } throws: { error in
                "\(error)".contains("401") && !"\(error)".contains("not-a-token")
            }
        }
        #expect(publisher.published.map(\.tenant) == ["team-a"])
    }

    @Test func writeEndpointAuthParsesFromAlloyConfig() throws {
        let config = try ScrapeConfiguration.parse(
            """
            pyroscope.write "kiln" {
              endpoint {
                url = "http://kiln:4100"
                basic_auth {
                  username = "ops"
                  password = "ops-secret"
                }
              }
              endpoint {
                url = "http://other:4100"
                bearer_token = "tok"
              }
            }
            """, file: "t.alloy")
        let endpoints = try #require(config.writers["kiln"]).endpoints
        #expect(endpoints[0].credentials.basicAuth?.username == "ops")
        #expect(endpoints[1].credentials.bearerToken == "tok")
        #expect {
            try ScrapeConfiguration.parse(
                """
                pyroscope.write "kiln" {
                  endpoint {
                    url = "http://kiln:4100"
                    bearer_token = "a"
                    basic_auth {
                      username = "u"
                      password = "p"
                    }
                  }
                }
                """, file: "t.alloy")
        } throws: { error in "\(error)".contains("at most one of basic_auth, bearer_token and bearer_token_file") }
    }

    /// docker/auth.json and the Grafana data source provisioned with it agree: Grafana's password opens
    /// the query API.
    @Test func dockerExampleCredentialsWork() throws {
        let docker = TestEnvironment.repoRoot.appendingPathComponent("docker")
        let credentials = try Credentials.load(contentsOf: docker.appendingPathComponent("auth.json"))
        let datasource = try String(contentsOf: docker.appendingPathComponent("grafana/datasource.yaml"), encoding: .utf8)
        func value(_ key: String) -> String? {
            datasource.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(key + ":") }
                .map { String($0.split(separator: ":", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces) }
        }
        let user = try #require(value("basicAuthUser"))
        let password = try #require(value("basicAuthPassword"))
        let access = TenantAccess(credentials: credentials)
        #expect(try access.tenant(authorization: Self.basic(user, password), scopeOrgID: nil, endpoint: "t").get() == "anonymous")
        let compose = try String(contentsOf: docker.appendingPathComponent("compose.yaml"), encoding: .utf8)
        #expect(compose.components(separatedBy: "--auth-file").count - 1 == 2, "kiln-scraper and kiln-query run with --auth-file")
    }
}

import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ObjectStore
import TestSupport
import Testing

/// moto accepts any credentials by default. With authentication switched on (its /moto-api/reset-auth
/// switch, the server-mode form of INITIAL_NO_AUTH_ACTION_COUNT) it recomputes every request's SigV4
/// signature with botocore and checks IAM policies. That switch is process-wide, so these tests run their
/// own moto server instead of the shared one.
@Suite(.serialized) struct S3AuthTests {
    /// A private moto server with two IAM users — one allowed s3:*, one with no policy — and auth on.
    struct AuthMoto {
        let endpoint: String
        let process: HelperProcess
        let dir: ScratchDir
        let allowed: AWSCredentials
        let denied: AWSCredentials
    }

    /// The test is marked `.requires(.venvTool("moto_server"))`.
    static func startAuthMoto() async throws -> AuthMoto {
        let motoServer = TestEnvironment.repoRoot.appendingPathComponent(".venv/bin/moto_server").path
        let dir = try ScratchDir("authmoto")
        let port = closedLocalPort()
        let process = try HelperProcess(
            python, pythonScriptArguments(motoServer, ["-H", "127.0.0.1", "-p", String(port)]),
            log: dir.url.appendingPathComponent("moto.log"), name: "moto_server (auth)")
        do {
            try await waitUntil("moto_server on port \(port)", timeout: .seconds(60)) {
                guard process.process.isRunning else { throw TestFailure("moto_server exited; log in \(dir.path)") }
                return portAccepts(port)
            }
            let endpoint = "http://127.0.0.1:\(port)"
            // Set up IAM while moto still accepts anything.
            let root = AWSCredentials(accessKeyID: "AKIAROOTSETUP0000000", secretAccessKey: "setup")
            let allowed = try await createUser("kiln-writer", endpoint: endpoint, signer: root, policy: true)
            let denied = try await createUser("kiln-nobody", endpoint: endpoint, signer: root, policy: false)
            let (status, body) = try await rawRequest(method: .POST, url: endpoint + "/moto-api/reset-auth", body: Array("0".utf8))
            guard status == 200 else { throw TestFailure("reset-auth answered \(status): \(String(decoding: body, as: UTF8.self))") }
            return AuthMoto(endpoint: endpoint, process: process, dir: dir, allowed: allowed, denied: denied)
        } catch {
            await process.stop()
            dir.remove()
            throw error
        }
    }

    /// CreateUser, CreateAccessKey and (optionally) PutUserPolicy allowing s3:* — IAM's query API.
    static func createUser(_ name: String, endpoint: String, signer: AWSCredentials, policy: Bool) async throws -> AWSCredentials {
        _ = try await iam(["Action": "CreateUser", "UserName": name], endpoint: endpoint, credentials: signer)
        let keyXML = try await iam(["Action": "CreateAccessKey", "UserName": name], endpoint: endpoint, credentials: signer)
        guard let id = xmlValue("AccessKeyId", in: keyXML), let secret = xmlValue("SecretAccessKey", in: keyXML) else {
            throw TestFailure("CreateAccessKey answer has no key: \(keyXML)")
        }
        if policy {
            let document = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#
            _ = try await iam(
                ["Action": "PutUserPolicy", "UserName": name, "PolicyName": "s3-all", "PolicyDocument": document],
                endpoint: endpoint, credentials: signer)
        }
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret)
    }

    static func iam(_ params: [String: String], endpoint: String, credentials: AWSCredentials) async throws -> String {
        let form = (params.merging(["Version": "2010-05-08"]) { a, _ in a })
            .sorted { $0.key < $1.key }
            .map { "\(SigV4Signer.uriEncode($0.key, keepSlash: false))=\(SigV4Signer.uriEncode($0.value, keepSlash: false))" }
            .joined(separator: "&")
        let body = Array(form.utf8)
        let host = String(endpoint.dropFirst("http://".count))
        let signed = SigV4Signer(credentials: credentials, region: "us-east-1", service: "iam")
            .sign(
                method: "POST", path: "/", query: [],
                headers: [("Host", host), ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
                payloadHash: SigV4Signer.sha256Hex(body), date: Date())
        let (status, answer) = try await rawRequest(method: .POST, url: endpoint + "/", headers: signed.headers, body: body)
        let text = String(decoding: answer, as: UTF8.self)
        guard status == 200 else { throw TestFailure("IAM \(params["Action"] ?? "") answered \(status): \(text)") }
        return text
    }

    static func rawRequest(method: HTTPMethod, url: String, headers: [(String, String)] = [], body: [UInt8]) async throws -> (Int, [UInt8])
    {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        var buffer = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), buffer.readBytes(length: buffer.readableBytes) ?? [])
    }

    static func xmlValue(_ tag: String, in xml: String) -> String? {
        guard let start = xml.range(of: "<\(tag)>"), let end = xml.range(of: "</\(tag)>", range: start.upperBound..<xml.endIndex) else {
            return nil
        }
        return String(xml[start.upperBound..<end.lowerBound])
    }

    /// One server for every case below (starting moto takes seconds); each case uses its own bucket.
    @Test(.requires(.venvTool("moto_server"))) func signaturesAreCheckedForReal() async throws {
        let moto = try await Self.startAuthMoto()
        do {
            try await checkValidCredentialsWork(moto)
            try await checkWrongSecret(moto)
            try await checkUnknownKey(moto)
            try await checkNoPolicy(moto)
        } catch {
            await moto.process.stop()
            moto.dir.remove()
            throw error
        }
        await moto.process.stop()
        moto.dir.remove()
    }

    /// Every operation's signature (path encoding, query canonicalisation, Range, Content-MD5, multipart
    /// query parameters) passes botocore's recomputation.
    func checkValidCredentialsWork(_ moto: AuthMoto) async throws {
        var config = s3Config(endpoint: moto.endpoint, bucket: uniqueBucket("auth"), prefix: "signed/prefix", credentials: moto.allowed)
        config.listPageSize = 2
        config.multipartThreshold = 6 << 20
        config.partSize = 5 << 20
        try await withStore(config) { store in
            try await store.createBucket()
            let keys = ["t/a b/1", "t/a b/2", "t/ü~x/3", "t/plus+eq=/4", "t/5"]
            for key in keys { try await store.put(key, Array(key.utf8)) }
            #expect(try await store.list(prefix: "t/").keys == keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
            #expect(try await store.list(prefix: "t/", delimiter: "/").commonPrefixes.count == 3)
            #expect(try await store.get("t/a b/1", range: .bounded(2..<5)) == Array("a b".utf8))
            #expect(try await store.head("t/5")?.size == 3)
            #expect(try await store.putIfAbsent("t/5", [0]) == false)
            let big = patternBytes((10 << 20) + 1, seed: 31)
            try await store.put("big", big)
            #expect(try await store.get("big") == big)
            try await store.delete("t/5")
            #expect(try await store.head("t/5") == nil)
        }
    }

    func checkWrongSecret(_ moto: AuthMoto) async throws {
        var wrong = moto.allowed
        wrong.secretAccessKey += "x"
        let bucket = uniqueBucket("authsig")
        try await withStore(s3Config(endpoint: moto.endpoint, bucket: bucket, credentials: wrong)) { store in
            let error = await expectStoreError(.signatureMismatch) { try await store.put("k", [1]) }
            #expect(error?.code == "SignatureDoesNotMatch")
            #expect(error?.message.contains(wrong.accessKeyID) == true, "\(error?.message ?? "")")
            #expect(error?.message.contains("AWS_SECRET_ACCESS_KEY") == true, "\(error?.message ?? "")")
        }
    }

    func checkUnknownKey(_ moto: AuthMoto) async throws {
        let unknown = AWSCredentials(accessKeyID: "AKIANOSUCHKEY0000000", secretAccessKey: "nope")
        try await withStore(s3Config(endpoint: moto.endpoint, bucket: uniqueBucket("authkey"), credentials: unknown)) { store in
            let error = await expectStoreError(.invalidCredentials) { _ = try await store.list(prefix: "") }
            #expect(error?.code == "InvalidAccessKeyId")
            #expect(error?.message.contains("AKIANOSUCHKEY0000000") == true, "\(error?.message ?? "")")
        }
    }

    func checkNoPolicy(_ moto: AuthMoto) async throws {
        let bucket = uniqueBucket("authdeny")
        try await withStore(s3Config(endpoint: moto.endpoint, bucket: bucket, credentials: moto.allowed)) { try await $0.createBucket() }
        try await withStore(s3Config(endpoint: moto.endpoint, bucket: bucket, credentials: moto.denied)) { store in
            let error = await expectStoreError(.accessDenied) { try await store.put("t/k", [1]) }
            #expect(error?.message.contains(bucket) == true, "\(error?.message ?? "")")
            #expect(error?.message.contains(moto.denied.accessKeyID) == true, "\(error?.message ?? "")")
        }
    }
}

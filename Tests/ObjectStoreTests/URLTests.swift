import Foundation
import ObjectStore
import Testing

@Suite struct ObjectStoreURLTests {
    let env = ["AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "SECRET", "AWS_SESSION_TOKEN": "TOKEN"]

    @Test func fileURL() throws {
        guard case .file(let root) = try ObjectStoreURL.parse("file:///var/lib/kiln%20data", environment: [:]) else {
            Issue.record("not a file store")
            return
        }
        #expect(root.path == "/var/lib/kiln data")
        guard case .file(let local) = try ObjectStoreURL.parse("file://localhost/tmp/x", environment: [:]) else {
            Issue.record("not a file store")
            return
        }
        #expect(local.path == "/tmp/x")
    }

    @Test func s3URLWithEverything() throws {
        let url =
            "s3://my-bucket/blocks/prod/?endpoint=http://127.0.0.1:9000&region=eu-west-1&part_size=8MiB&multipart_threshold=32MiB&max_attempts=7&timeout=2.5&verify_checksums=false"
        guard case .s3(let c) = try ObjectStoreURL.parse(url, environment: env) else {
            Issue.record("not s3")
            return
        }
        #expect(c.bucket == "my-bucket")
        #expect(c.prefix == "blocks/prod")
        #expect(c.endpoint == "http://127.0.0.1:9000")
        #expect(c.region == "eu-west-1")
        #expect(c.partSize == 8 << 20)
        #expect(c.multipartThreshold == 32 << 20)
        #expect(c.retry.maxAttempts == 7)
        #expect(c.requestTimeout == .milliseconds(2500))
        #expect(c.verifyChecksums == false)
        #expect(c.credentials == AWSCredentials(accessKeyID: "AKID", secretAccessKey: "SECRET", sessionToken: "TOKEN"))
    }

    @Test func s3DefaultsToAWSEndpointForRegion() throws {
        guard
            case .s3(let c) = try ObjectStoreURL.parse(
                "s3://bucket.one", environment: env.merging(["AWS_REGION": "ap-south-1"]) { a, _ in a })
        else {
            Issue.record("not s3")
            return
        }
        #expect(c.prefix == "")
        #expect(c.region == "ap-south-1")
        #expect(c.endpoint == "https://s3.ap-south-1.amazonaws.com")
        guard case .s3(let d) = try ObjectStoreURL.parse("s3://bucket", environment: env) else {
            Issue.record("not s3")
            return
        }
        #expect(d.region == "us-east-1")
    }

    @Test func explicitCredentialsWin() throws {
        let explicit = AWSCredentials(accessKeyID: "X", secretAccessKey: "Y")
        guard case .s3(let c) = try ObjectStoreURL.parse("s3://bucket", credentials: explicit, environment: env) else {
            Issue.record("not s3")
            return
        }
        #expect(c.credentials == explicit)
    }

    @Test(arguments: [
        ("/no/scheme", "no scheme"),
        ("ftp://host/x", "unsupported scheme"),
        ("file://relative/path", "absolute path"),
        ("s3://", "no bucket name"),
        ("s3://Upper_Case/x", "breaks S3's rules"),
        ("s3://bucket/x?endpoint=ftp://h", "not an http(s)"),
        ("s3://bucket/x?regoin=us-east-1", "unknown parameter \"regoin\""),
        ("s3://bucket/x?part_size=1MiB", "minimum of 5 MiB"),
        ("s3://bucket/x?max_attempts=0", "max_attempts"),
        ("s3://bucket/a/../b", "'.' and '..'"),
    ])
    func badURLsSayWhy(url: String, why: String) {
        do {
            _ = try ObjectStoreURL.parse(url, environment: env)
            Issue.record("\(url) parsed")
        } catch let error as ObjectStoreError {
            #expect(error.kind == .invalidURL || error.kind == .invalidKey, "\(error)")
            #expect(error.message.contains(why), "\(error.message)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func missingCredentialsNameTheVariables() {
        do {
            _ = try ObjectStoreURL.parse("s3://bucket/p", environment: [:])
            Issue.record("parsed without credentials")
        } catch let error as ObjectStoreError {
            #expect(error.kind == .invalidCredentials)
            #expect(error.message.contains("AWS_ACCESS_KEY_ID") && error.message.contains("AWS_SECRET_ACCESS_KEY"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func factoryMakesTheRightStore() async throws {
        let file = try makeObjectStore(url: "file:///tmp/kiln-url-test", environment: [:])
        #expect(file is FileObjectStore)
        #expect(file.location == "file:///tmp/kiln-url-test")
        let s3 = try makeObjectStore(url: "s3://bucket/pre?endpoint=http://127.0.0.1:1", environment: env)
        #expect(s3 is S3ObjectStore)
        #expect(s3.location == "s3://bucket/pre")
        try await s3.shutdown()
    }

    @Test func keyRules() {
        for good in ["a", "tenant/01HZ/meta.json", "x/y z/ü.parquet"] {
            #expect(throws: Never.self) { try ObjectKey.validate(good) }
        }
        for bad in ["", "/abs", "a//b", "a/./b", "../x", "a/", "a/.kiln-tmp-1", "a\u{0}b", "line\nbreak"] {
            #expect(throws: ObjectStoreError.self, "\(bad)") { try ObjectKey.validate(bad) }
        }
    }

    @Test func byteRangeResolution() {
        #expect(ByteRange.bounded(2..<5).resolve(size: 10) == 2..<5)
        #expect(ByteRange.bounded(8..<50).resolve(size: 10) == 8..<10)
        #expect(ByteRange.bounded(10..<12).resolve(size: 10) == nil)
        #expect(ByteRange.from(10).resolve(size: 10) == 10..<10)
        #expect(ByteRange.from(11).resolve(size: 10) == nil)
        #expect(ByteRange.suffix(4).resolve(size: 10) == 6..<10)
        #expect(ByteRange.suffix(40).resolve(size: 10) == 0..<10)
        #expect(ByteRange.bounded(0..<10).httpHeaderValue == "bytes=0-9")
        #expect(ByteRange.suffix(8).httpHeaderValue == "bytes=-8")
        #expect(ByteRange.from(3).httpHeaderValue == "bytes=3-")
    }
}

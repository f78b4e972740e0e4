import Foundation
import ObjectStore
import Testing

/// AWS's published SigV4 examples. The S3 ones are from "Authenticating Requests: Using the Authorization
/// Header" (sig-v4-header-based-auth, examplebucket, 2013-05-24); the signing-key one from the general
/// "Calculate the signature" page. Expected values are AWS's, not computed here.
@Suite struct SigV4Tests {
    let s3Example = SigV4Signer(
        credentials: AWSCredentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1", service: "s3")
    let may24 = Date(timeIntervalSince1970: 1_369_353_600)  // 2013-05-24T00:00:00Z
    let host = ("Host", "examplebucket.s3.amazonaws.com")

    @Test func getObjectWithRange() {
        let signed = s3Example.sign(
            method: "GET", path: "/test.txt", query: [],
            headers: [host, ("Range", "bytes=0-9")],
            payloadHash: SigV4Signer.emptyPayloadHash, date: may24)
        #expect(
            signed.canonicalRequest == """
                GET
                /test.txt

                host:examplebucket.s3.amazonaws.com
                range:bytes=0-9
                x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                x-amz-date:20130524T000000Z

                host;range;x-amz-content-sha256;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """)
        #expect(
            signed.stringToSign == """
                AWS4-HMAC-SHA256
                20130524T000000Z
                20130524/us-east-1/s3/aws4_request
                7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972
                """)
        #expect(signed.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(
            signed.authorization
                == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        )
        // The headers to send carry what was signed.
        let sent = Dictionary(signed.headers.map { ($0.0.lowercased(), $0.1) }, uniquingKeysWith: { a, _ in a })
        #expect(sent["x-amz-date"] == "20130524T000000Z")
        #expect(sent["x-amz-content-sha256"] == SigV4Signer.emptyPayloadHash)
    }

    @Test func putObjectWithDollarInKey() {
        let body = Array("Welcome to Amazon S3.".utf8)
        let hash = SigV4Signer.sha256Hex(body)
        #expect(hash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let path = SigV4Signer.encodePath("/test$file.text")
        #expect(path == "/test%24file.text")
        let signed = s3Example.sign(
            method: "PUT", path: path, query: [],
            headers: [
                host, ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
                ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ],
            payloadHash: hash, date: may24)
        #expect(signed.signedHeaders == "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class")
        #expect(signed.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    @Test func getBucketLifecycleQueryWithoutValue() {
        let signed = s3Example.sign(
            method: "GET", path: "/", query: [("lifecycle", "")], headers: [host],
            payloadHash: SigV4Signer.emptyPayloadHash, date: may24)
        #expect(signed.canonicalRequest.hasPrefix("GET\n/\nlifecycle=\n"))
        #expect(signed.signature == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    @Test func listObjectsSortsTheQuery() {
        // Given out of order on purpose: the canonical query must sort by name.
        let signed = s3Example.sign(
            method: "GET", path: "/", query: [("prefix", "J"), ("max-keys", "2")], headers: [host],
            payloadHash: SigV4Signer.emptyPayloadHash, date: may24)
        #expect(signed.canonicalRequest.hasPrefix("GET\n/\nmax-keys=2&prefix=J\n"))
        #expect(signed.signature == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test func signingKeyDerivation() {
        let key = SigV4Signer.signingKey(
            secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", dateStamp: "20150830",
            region: "us-east-1", service: "iam")
        #expect(SigV4Signer.hex(key) == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9")
    }

    @Test func uriEncodingRules() {
        #expect(SigV4Signer.uriEncode("a-b_c.d~e", keepSlash: false) == "a-b_c.d~e")
        #expect(SigV4Signer.uriEncode("a b/c+d=é", keepSlash: false) == "a%20b%2Fc%2Bd%3D%C3%A9")
        #expect(SigV4Signer.uriEncode("tenant/01J/meta data.json", keepSlash: true) == "tenant/01J/meta%20data.json")
        #expect(SigV4Signer.canonicalQuery([("b", "2"), ("a", "x y"), ("a", "1")]) == "a=1&a=x%20y&b=2")
    }

    @Test func sessionTokenIsSigned() {
        var creds = s3Example.credentials
        creds.sessionToken = "token/with+chars"
        let signer = SigV4Signer(credentials: creds, region: "us-east-1")
        let signed = signer.sign(
            method: "GET", path: "/", query: [], headers: [host],
            payloadHash: SigV4Signer.emptyPayloadHash, date: may24)
        #expect(signed.signedHeaders == "host;x-amz-content-sha256;x-amz-date;x-amz-security-token")
        #expect(signed.headers.contains { $0.0 == "x-amz-security-token" && $0.1 == "token/with+chars" })
        // Same request without the token signs differently.
        let plain = s3Example.sign(
            method: "GET", path: "/", query: [], headers: [host],
            payloadHash: SigV4Signer.emptyPayloadHash, date: may24)
        #expect(plain.signature != signed.signature)
    }
}

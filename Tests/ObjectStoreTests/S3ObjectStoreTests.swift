import Crypto
import Foundation
import ObjectStore
import TestSupport
import Testing

/// Against the real moto S3 server from scripts/test-env.sh (KILN_TEST_S3_ENDPOINT).
@Suite struct S3ObjectStoreTests {
    @Test(.requires(.s3)) func roundTripRangesHeadDelete() async throws {
        let endpoint = try s3Endpoint()
        let bucket = uniqueBucket("basic")
        try await withStore(s3Config(endpoint: endpoint, bucket: bucket, prefix: "blocks/dev")) { store in
            try await store.createBucket()
            try await store.createBucket()  // already ours: fine
            let bytes = patternBytes(100_000, seed: 11)
            let key = "tenant a/01HZX/samples.parquet"  // a space: exercises path encoding in signing
            try await store.put(key, bytes)

            #expect(try await store.get(key) == bytes)
            #expect(try await store.get(key, range: .bounded(10..<20)) == Array(bytes[10..<20]))
            #expect(try await store.get(key, range: .bounded(99_990..<200_000)) == Array(bytes[99_990...]))
            #expect(try await store.get(key, range: .from(50_000)) == Array(bytes[50_000...]))
            #expect(try await store.get(key, range: .suffix(8)) == Array(bytes[99_992...]))
            #expect(try await store.get(key, range: .bounded(5..<5)) == [])
            await expectStoreError(.invalidRange) { _ = try await store.get(key, range: .from(100_001)) }

            let info = try #require(try await store.head(key))
            #expect(info.size == 100_000)
            #expect(info.etag == md5Hex(bytes))
            #expect(abs(info.lastModified.timeIntervalSinceNow) < 300)

            // The prefix is applied on the wire and stripped in listings.
            let raw = try await withStore(s3Config(endpoint: endpoint, bucket: bucket)) { try await $0.list(prefix: "") }
            #expect(raw.keys == ["blocks/dev/" + key])
            #expect(try await store.list(prefix: "").keys == [key])
            // A listing's LastModified (ISO 8601, milliseconds) and HEAD's Last-Modified (an HTTP date) agree.
            let listed = try #require(try await store.list(prefix: "").objects.first)
            #expect(abs(listed.lastModified.timeIntervalSince(info.lastModified)) < 1)

            try await store.put("empty", [])
            #expect(try await store.get("empty") == [])
            #expect(try await store.head("empty")?.size == 0)

            try await store.delete(key)
            #expect(try await store.head(key) == nil)
            let missing = await expectStoreError(.notFound) { _ = try await store.get(key) }
            #expect(missing?.message.contains(key) == true)
            #expect(missing?.message.contains(bucket) == true)
            try await store.delete(key)  // deleting a missing key succeeds, as on S3
        }
    }

    @Test(.requires(.s3)) func listFollowsEveryPage() async throws {
        let endpoint = try s3Endpoint()
        var config = s3Config(endpoint: endpoint, bucket: uniqueBucket("list"), prefix: "p")
        config.listPageSize = 7  // 40 keys -> 6 pages; the server stops at max-keys, so all must be followed
        try await withStore(config) { store in
            try await store.createBucket()
            var expected: [String] = []
            for block in 0..<8 {
                for file in ["meta.json", "samples.parquet", "series.parquet", "stacks.parquet", "strings.parquet"] {
                    expected.append("t1/block\(block)/\(file)")
                }
            }
            let others = ["t2/blockX/meta.json", "t10/blockY/meta.json", "top"]
            try await withThrowingTaskGroup(of: Void.self) { group in
                for key in expected + others { group.addTask { try await store.put(key, Array(key.utf8)) } }
                try await group.waitForAll()
            }
            let all = try await store.list(prefix: "t1/")
            #expect(all.keys == expected.sorted())
            #expect(all.objects.allSatisfy { $0.size == $0.key.utf8.count })
            #expect(all.objects.allSatisfy { $0.etag == md5Hex(Array($0.key.utf8)) })

            let blocks = try await store.list(prefix: "t1/", delimiter: "/")
            #expect(blocks.keys == [])
            #expect(blocks.commonPrefixes == (0..<8).map { "t1/block\($0)/" })

            let top = try await store.list(prefix: "", delimiter: "/")
            #expect(top.keys == ["top"])
            #expect(top.commonPrefixes == ["t1/", "t10/", "t2/"])
            #expect(try await store.list(prefix: "t1").keys.count == 41)
            #expect(try await store.list(prefix: "none/", delimiter: "/") == ListResult())
        }
    }

    @Test(.requires(.s3)) func multipartUploadRoundTrips() async throws {
        let endpoint = try s3Endpoint()
        var config = s3Config(endpoint: endpoint, bucket: uniqueBucket("multipart"))
        config.multipartThreshold = 6 << 20
        config.partSize = 5 << 20
        config.partConcurrency = 2
        try await withStore(config) { store in
            try await store.createBucket()
            let bytes = patternBytes((12 << 20) + 12_345, seed: 21)  // 3 parts: 5 MiB, 5 MiB, 2 MiB + change
            try await store.put("big/object", bytes)
            let info = try #require(try await store.head("big/object"))
            #expect(info.size == bytes.count)
            #expect(info.etag?.hasSuffix("-3") == true, "multipart ETag expected, got \(info.etag ?? "nil")")
            #expect(try await store.get("big/object") == bytes)
            // A range across the first part boundary.
            let boundary = 5 << 20
            #expect(
                try await store.get("big/object", range: .bounded(boundary - 100..<boundary + 100))
                    == Array(bytes[boundary - 100..<boundary + 100]))

            // Below the threshold: a single PUT (plain MD5 ETag).
            let small = patternBytes(5 << 20, seed: 22)
            try await store.put("big/small", small)
            #expect(try await store.head("big/small")?.etag == md5Hex(small))

            // Conditional multipart: the second attempt is refused and leaves the first intact.
            #expect(try await store.putIfAbsent("big/once", bytes) == true)
            #expect(try await store.putIfAbsent("big/once", patternBytes(bytes.count, seed: 23)) == false)
            #expect(try await store.get("big/once") == bytes)
        }
    }

    @Test(.requires(.s3)) func putIfAbsent() async throws {
        let endpoint = try s3Endpoint()
        try await withStore(s3Config(endpoint: endpoint, bucket: uniqueBucket("ifabsent"))) { store in
            try await store.createBucket()
            #expect(try await store.putIfAbsent("t/b/meta.json", [1, 2]) == true)
            #expect(try await store.putIfAbsent("t/b/meta.json", [3]) == false)
            #expect(try await store.get("t/b/meta.json") == [1, 2])
            // The same bytes again count as this writer's own earlier attempt (a retry after a lost response).
            #expect(try await store.putIfAbsent("t/b/meta.json", [1, 2]) == true)
        }
    }

    @Test(.requires(.s3)) func missingBucketIsNamed() async throws {
        let endpoint = try s3Endpoint()
        let bucket = uniqueBucket("missing")
        try await withStore(s3Config(endpoint: endpoint, bucket: bucket)) { store in
            for call in [
                { _ = try await store.get("k") },
                { try await store.put("k", [1]) },
                { _ = try await store.head("k") },
                { _ = try await store.list(prefix: "") },
            ] as [() async throws -> Void] {
                let error = await expectStoreError(.noSuchBucket, call)
                #expect(error?.message.contains("bucket \"\(bucket)\" does not exist") == true, "\(error?.message ?? "")")
                #expect(error?.message.contains(endpoint) == true, "\(error?.message ?? "")")
            }
        }
    }

    @Test func connectionRefusedNamesTheEndpointQuickly() async throws {
        let endpoint = "http://127.0.0.1:\(closedLocalPort())"
        var config = s3Config(endpoint: endpoint, bucket: "kiln-nobody-home")
        config.retry = RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(20), maxDelay: .milliseconds(100))
        try await withStore(config) { store in
            let started = ContinuousClock.now
            let error = await expectStoreError(.connectionFailed) { try await store.put("k", [1]) }
            // Refused connects fail at once; only the two backoffs (≤ 100 ms each) take time.
            #expect(ContinuousClock.now - started < .seconds(30))  // refused, not retried until a long timeout
            #expect(error?.message.contains(endpoint) == true, "\(error?.message ?? "")")
            #expect(error?.message.contains("connection refused") == true, "\(error?.message ?? "")")
            #expect(error?.message.contains("3 attempt") == true, "\(error?.message ?? "")")
        }
    }
}

/// MD5 hex of the bytes (moto computes its ETags with Python's hashlib, so this is an independent check).
func md5Hex(_ bytes: [UInt8]) -> String {
    Insecure.MD5.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
}

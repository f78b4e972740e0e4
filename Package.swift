// swift-tools-version: 6.1
import PackageDescription

// One target per concern; data flows down this list, never up. Executables only wire.
// docs/architecture.md is the map: keep the two in step.
let package = Package(
    name: "Kiln",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "kiln", targets: ["kiln"]),
        .executable(name: "kiln-scraper", targets: ["kiln-scraper"]),
        .executable(name: "kiln-normalizer", targets: ["kiln-normalizer"]),
        .executable(name: "kiln-compactor", targets: ["kiln-compactor"]),
        .executable(name: "kiln-query", targets: ["kiln-query"]),
        .executable(name: "kiln-ruler", targets: ["kiln-ruler"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C libraries from Debian, through pkg-config.
        .systemLibrary(
            name: "CRdKafka", path: "Sources/CShims/CRdKafka", pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(
            name: "CZlib", path: "Sources/CShims/CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(
            name: "CDeflate", path: "Sources/CShims/CDeflate", pkgConfig: "libdeflate",
            providers: [.apt(["libdeflate-dev"])]),
        .systemLibrary(
            name: "CLZ4", path: "Sources/CShims/CLZ4", pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(
            name: "CZstd", path: "Sources/CShims/CZstd", pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]),
        // Header only: a cache prefetch for hash-table probes.
        .systemLibrary(name: "CPrefetch", path: "Sources/CShims/CPrefetch"),
        // Header only: a vector decoder for short varints (pprof location ids).
        .systemLibrary(name: "CVarint", path: "Sources/CShims/CVarint"),
        .systemLibrary(name: "CMalloc", path: "Sources/CShims/CMalloc"),

        // Libraries, lowest first. docs/architecture.md draws this graph and says where a new feature goes.

        // Shared primitives with no dependencies: varints, the duration grammar, off-pool blocking work.
        .target(name: "KilnFoundation"),
        .target(name: "ProfileModel"),
        .target(name: "PprofCodec", dependencies: ["CZlib", "CDeflate", "CPrefetch", "CVarint", "KilnFoundation"]),
        .target(name: "Records", dependencies: ["ProfileModel", "KilnFoundation"]),
        .target(name: "Normalization", dependencies: ["CPrefetch", "KilnFoundation", "PprofCodec", "ProfileModel", "Records"]),
        .target(
            name: "KafkaClient",
            dependencies: [
                "CRdKafka", "KilnFoundation",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "ObjectStore",
            dependencies: [
                "KilnFoundation",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        .target(name: "Parquet", dependencies: ["CLZ4", "CZstd", "KilnFoundation"]),
        .target(
            name: "Blocks",
            dependencies: [
                "Parquet", "ObjectStore", "ProfileModel", "KilnFoundation",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "Query",
            dependencies: [
                "Blocks", "ObjectStore", "ProfileModel", "KilnFoundation",
                .product(name: "Logging", package: "swift-log"),
            ]),
        // Pyroscope's protobuf messages: the .proto files (proto/) and the Swift generated from them
        // (scripts/gen-proto.sh).
        .target(
            name: "KilnProtos",
            dependencies: [
                .product(name: "SwiftProtobuf", package: "swift-protobuf")
            ], exclude: ["proto"]),
        // Alloy configuration, discovery, relabeling and the scrape loop.
        .target(
            name: "Scrape",
            dependencies: [
                "ProfileModel", "KilnFoundation", "KilnProtos",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]),

        // What every service process shares: flags, logging, metrics, readiness, the admin server, the bootstrap.
        .target(
            name: "KilnService",
            dependencies: [
                "CMalloc", "KilnFoundation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCertificateReloading", package: "swift-nio-extras"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        // What services that talk to Kafka share: Kafka and topic flags, topic creation, the health probe.
        .target(
            name: "KafkaService",
            dependencies: [
                "KilnService", "KafkaClient",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),

        // HTTP APIs. APICommon: the Connect unary codec, API errors, tenants, authentication and limits,
        // shared by push ingest (IngestAPI, in kiln-scraper) and queries (QueryAPI and the web UI, in kiln-query).
        .target(
            name: "APICommon",
            dependencies: [
                "PprofCodec", "KilnFoundation",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .target(
            name: "IngestAPI",
            dependencies: [
                "APICommon", "KilnProtos", "Records", "ProfileModel", "PprofCodec", "KilnFoundation",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]),
        // OTLP profiles ingest: the OTLP → pprof mapping, `POST /v1development/profiles` and the gRPC
        // ProfilesService server, all ending in IngestAPI's `PushIngester`.
        .target(
            name: "OTLPIngest",
            dependencies: [
                "APICommon", "IngestAPI", "KilnProtos", "Records", "ProfileModel", "PprofCodec", "KilnFoundation",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "NIOCertificateReloading", package: "swift-nio-extras"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ]),
        // Recording rules ("metrics from profiles"): the per-tenant rule store the API edits and the ruler reads,
        // and their evaluation over sample batches. RemoteWrite: Prometheus remote write 1.0 (snappy, retries).
        .target(
            name: "Recording",
            dependencies: [
                "APICommon", "KilnProtos", "Query", "ObjectStore", "ProfileModel", "Records", "KilnFoundation",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]),
        .target(
            name: "RemoteWrite",
            dependencies: [
                "KilnFoundation", "KilnProtos",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]),
        .target(
            name: "QueryAPI",
            dependencies: [
                "APICommon", "KilnProtos", "Query", "Recording", "Blocks", "ObjectStore", "ProfileModel", "KilnFoundation", "PprofCodec",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ], resources: [.copy("UI")]),

        // Pipeline stages as services: the loops that connect Kafka, the codecs and the store, one target
        // per executable. ScraperStage: pushes and scrapes into the raw topic. NormalizerService: raw topic to
        // batches and the DLQ. CompactorService: batches to blocks, level compaction, retention.
        .target(
            name: "ScraperStage",
            dependencies: [
                "KafkaClient", "KafkaService", "KilnService", "Records", "ProfileModel", "Scrape", "IngestAPI",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .target(
            name: "NormalizerService",
            dependencies: [
                "KafkaClient", "KafkaService", "Records", "Normalization", "ProfileModel", "KilnFoundation",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .target(
            name: "RulerService",
            dependencies: [
                "KafkaClient", "KafkaService", "Records", "ProfileModel", "Recording", "RemoteWrite", "ObjectStore", "KilnFoundation",
                "KilnProtos",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .target(
            name: "CompactorService",
            dependencies: [
                "KafkaClient", "KafkaService", "Records", "ProfileModel", "Blocks", "ObjectStore", "KilnFoundation",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),

        // `kiln replay`: a raw or DLQ topic, between fixed bounds, through the normaliser into a new output.
        .target(
            name: "Replay",
            dependencies: [
                "KafkaClient", "Records", "Normalization", "PprofCodec", "ProfileModel", "Blocks", "ObjectStore", "KilnFoundation",
                .product(name: "Logging", package: "swift-log"),
            ]),

        // `kiln dev`: the whole stack on one machine, as child processes behind one front address.
        .target(
            name: "DevStack",
            dependencies: [
                "KilnService",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),

        // `kiln report`: reports kiln-query computes, fetched and rendered as Markdown, JSON or HTML.
        .target(
            name: "Reports",
            dependencies: [
                "Query",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),

        // `kiln bench`: each benchmark runs Kiln beside a baseline in the same run and reports the ratio.
        .target(
            name: "KilnBench",
            dependencies: [
                "KafkaClient", "PprofCodec", "ObjectStore", "Parquet", "Normalization", "Records",
                "IngestAPI", "OTLPIngest", "APICommon", "KilnProtos", "Blocks", "Query", "KilnFoundation", "ProfileModel", "Scrape",
                "Recording", "LoadGen", "CMalloc",
            ]),

        // `kiln loadgen`: a synthetic fleet built from real pprof, pushed at a rate, with the pipeline measured.
        .target(
            name: "LoadGen",
            dependencies: [
                "PprofCodec", "Records", "ProfileModel", "KafkaClient", "KilnFoundation",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),

        // Executables: flags and wiring only. Each links just what it runs.
        .executableTarget(
            name: "kiln",
            dependencies: [
                "KilnService", "KafkaService", "KilnFoundation", "PprofCodec", "KafkaClient",
                "ObjectStore", "KilnBench", "Blocks", "DevStack", "Replay", "LoadGen", "Reports",
            ]),
        .executableTarget(
            name: "kiln-scraper",
            dependencies: [
                "KilnService", "KafkaService", "ScraperStage", "Scrape", "IngestAPI", "OTLPIngest",
                "APICommon", "KafkaClient",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .executableTarget(
            name: "kiln-normalizer", dependencies: ["KilnService", "KafkaService", "NormalizerService", "PprofCodec", "Normalization"]),
        .executableTarget(
            name: "kiln-compactor", dependencies: ["KilnService", "KafkaService", "CompactorService", "ObjectStore", "Blocks"]),
        .executableTarget(name: "kiln-query", dependencies: ["KilnService", "APICommon", "QueryAPI", "ObjectStore", "Query", "Recording"]),
        .executableTarget(
            name: "kiln-ruler",
            dependencies: ["KilnService", "KafkaService", "KilnFoundation", "RulerService", "Recording", "RemoteWrite", "ObjectStore"]),

        // Tests. Integration tests find their broker and S3 server through KILN_TEST_* variables
        // that `make test` sets after starting them (scripts/test-env.sh).
        .target(
            name: "TestSupport",
            dependencies: [
                "ProfileModel", "Blocks", "ObjectStore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ], path: "Tests/TestSupport"),
        .testTarget(name: "KafkaClientTests", dependencies: ["KafkaClient", "TestSupport"]),
        .testTarget(
            name: "ObjectStoreTests",
            dependencies: [
                "ObjectStore", "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        .testTarget(name: "PprofCodecTests", dependencies: ["PprofCodec", "TestSupport"]),
        .testTarget(name: "RecordsTests", dependencies: ["Records", "KilnFoundation", "TestSupport"]),
        .testTarget(
            name: "RecordingTests",
            dependencies: [
                "Recording", "RemoteWrite", "KilnFoundation", "KilnProtos", "ProfileModel", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "KilnFoundationTests", dependencies: ["KilnFoundation"]),
        .testTarget(
            name: "KilnServiceTests",
            dependencies: [
                "KilnService", "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .testTarget(name: "NormalizationTests", dependencies: ["Normalization", "PprofCodec", "Records", "TestSupport"]),
        .testTarget(name: "BlocksTests", dependencies: ["Blocks", "ObjectStore", "Parquet", "ProfileModel", "TestSupport"]),
        .testTarget(name: "ParquetTests", dependencies: ["Parquet", "TestSupport"]),
        .testTarget(
            name: "ScrapeTests",
            dependencies: [
                "Scrape", "KilnFoundation", "PprofCodec", "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]),
        .testTarget(
            name: "StagesTests",
            dependencies: [
                "NormalizerService", "CompactorService", "ScraperStage", "KafkaService", "KafkaClient", "Records", "PprofCodec",
                "TestSupport", "Blocks", "ObjectStore",
                "APICommon", "IngestAPI", "QueryAPI", "KilnProtos", "Scrape",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]),
        .testTarget(
            name: "APITests",
            dependencies: [
                "APICommon", "IngestAPI", "QueryAPI", "KilnProtos", "Records", "ProfileModel", "PprofCodec", "TestSupport", "Query",
                "ObjectStore", "Blocks", "Scrape", "Normalization", "OTLPIngest",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]),
        .testTarget(
            name: "ReplayTests",
            dependencies: [
                "Replay", "NormalizerService", "CompactorService", "KafkaClient", "Records", "Normalization", "PprofCodec",
                "ProfileModel", "Blocks", "ObjectStore", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "DevStackTests",
            dependencies: [
                "DevStack", "Query", "KilnProtos", "PprofCodec", "TestSupport", "LoadGen", "KilnFoundation",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]),
        .testTarget(
            name: "QueryTests",
            dependencies: [
                "Query", "Reports", "Blocks", "ObjectStore", "ProfileModel", "Normalization", "Records", "KilnBench", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "LoadGenTests",
            dependencies: [
                "LoadGen", "PprofCodec", "TestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
            ]),
        .testTarget(name: "ExecutableTests", dependencies: ["TestSupport", "Scrape"]),
        // Faults against the real binaries: broker restart, S3 errors, kills, full disk (issue 8).
        .testTarget(
            name: "ReliabilityTests",
            dependencies: [
                "TestSupport", "KafkaClient", "KilnFoundation", "Records", "Normalization", "PprofCodec", "ProfileModel", "Blocks",
                "ObjectStore", "Replay",
            ]),
    ]
)

// `make fuzz` only (scripts/fuzz.sh sets KILN_FUZZ=1 and builds with -sanitize=fuzzer): a libFuzzer target over
// the HTTP request decoders. It needs libFuzzer's driver, so a normal build could not link it.
if Context.environment["KILN_FUZZ"] == "1" {
    package.products.append(.executable(name: "request-decoder-fuzz", targets: ["RequestDecoderFuzz"]))
    package.targets.append(
        .executableTarget(
            name: "RequestDecoderFuzz",
            dependencies: [
                "APICommon", "IngestAPI", "KilnProtos", "ProfileModel", "Query", "QueryAPI",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Fuzz/RequestDecoderFuzz"))
}

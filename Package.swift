// swift-tools-version: 6.1
import PackageDescription

// One target per concern; data flows down this list, never up. Executables only wire.
let package = Package(
    name: "Kiln",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "kiln", targets: ["kiln"]),
        .executable(name: "kiln-scraper", targets: ["kiln-scraper"]),
        .executable(name: "kiln-normalizer", targets: ["kiln-normalizer"]),
        .executable(name: "kiln-compactor", targets: ["kiln-compactor"]),
        .executable(name: "kiln-query", targets: ["kiln-query"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // C libraries from Debian, through pkg-config.
        .systemLibrary(name: "CRdKafka", path: "Sources/CShims/CRdKafka", pkgConfig: "rdkafka",
                       providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CShims/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CDeflate", path: "Sources/CShims/CDeflate", pkgConfig: "libdeflate",
                       providers: [.apt(["libdeflate-dev"])]),
        .systemLibrary(name: "CLZ4", path: "Sources/CShims/CLZ4", pkgConfig: "liblz4",
                       providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CZstd", path: "Sources/CShims/CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        // Header only: a cache prefetch for hash-table probes.
        .systemLibrary(name: "CPrefetch", path: "Sources/CShims/CPrefetch"),
        // Header only: a vector decoder for short varints (pprof location ids).
        .systemLibrary(name: "CVarint", path: "Sources/CShims/CVarint"),
        .systemLibrary(name: "CMalloc", path: "Sources/CShims/CMalloc"),

        // Libraries, lowest first.
        .target(name: "ProfileModel"),
        .target(name: "PprofCodec", dependencies: ["CZlib", "CDeflate", "CPrefetch", "CVarint"]),
        .target(name: "Normalization", dependencies: ["CPrefetch", "PprofCodec", "ProfileModel", "Records"]),
        .target(name: "Records", dependencies: ["ProfileModel"]),
        .target(name: "KafkaClient", dependencies: [
            "CRdKafka",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "ObjectStore", dependencies: [
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        .target(name: "Parquet", dependencies: ["CLZ4", "CZstd"]),
        .target(name: "Blocks", dependencies: [
            "Parquet", "ObjectStore", "ProfileModel",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Query", dependencies: [
            "Blocks", "ObjectStore", "ProfileModel",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Scrape", dependencies: [
            "ProfileModel",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        .target(name: "KilnService", dependencies: [
            "KafkaClient", "CMalloc",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),

        // Push ingest routes, Connect codec and the generated protobuf types (scripts/gen-proto.sh).
        .target(name: "HTTPAPI", dependencies: [
            "Records", "ProfileModel", "PprofCodec", "Query",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], resources: [.copy("UI")]),

        // Pipeline stages as services: the loops that connect Kafka, the codecs and the store.
        .target(name: "Stages", dependencies: [
            "KafkaClient", "Records", "Normalization", "ProfileModel", "Blocks", "ObjectStore", "Scrape", "HTTPAPI",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),

        // `kiln replay`: a raw or DLQ topic, between fixed bounds, through the normaliser into a new output.
        .target(name: "Replay", dependencies: [
            "KafkaClient", "Records", "Normalization", "PprofCodec", "ProfileModel", "Blocks", "ObjectStore", "Stages",
            .product(name: "Logging", package: "swift-log"),
        ]),

        // `kiln dev`: the whole stack on one machine, as child processes behind one front address.
        .target(name: "DevStack", dependencies: [
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),

        // `kiln bench`: each benchmark runs Kiln beside a baseline in the same run and reports the ratio.
        .target(name: "KilnBench", dependencies: ["KafkaClient", "PprofCodec", "ObjectStore", "Parquet", "Normalization", "Records", "TestSupport", "HTTPAPI", "Blocks", "Query"]),

        // `kiln loadgen`: a synthetic fleet built from real pprof, pushed at a rate, with the pipeline measured.
        .target(name: "LoadGen", dependencies: [
            "PprofCodec", "Records", "ProfileModel", "KafkaClient",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),

        // Executables: flag parsing and wiring only.
        .executableTarget(name: "kiln", dependencies: ["KilnService", "PprofCodec", "KafkaClient", "ObjectStore", "KilnBench", "Blocks", "DevStack", "Replay", "LoadGen"]),
        .executableTarget(name: "kiln-scraper", dependencies: ["KilnService", "Stages", "Scrape", "HTTPAPI", "KafkaClient"]),
        .executableTarget(name: "kiln-normalizer", dependencies: ["KilnService", "Stages", "KafkaClient"]),
        .executableTarget(name: "kiln-compactor", dependencies: ["KilnService", "ObjectStore", "Records", "KafkaClient", "Blocks", "Stages"]),
        .executableTarget(name: "kiln-query", dependencies: ["KilnService", "ObjectStore", "Query", "HTTPAPI"]),

        // Tests. Integration tests find their broker and S3 server through KILN_TEST_* variables
        // that `make test` sets after starting them (scripts/test-env.sh).
        .target(name: "TestSupport", dependencies: ["ProfileModel", "Blocks", "ObjectStore"], path: "Tests/TestSupport"),
        .testTarget(name: "KafkaClientTests", dependencies: ["KafkaClient", "TestSupport"]),
        .testTarget(name: "ObjectStoreTests", dependencies: [
            "ObjectStore", "TestSupport",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        .testTarget(name: "PprofCodecTests", dependencies: ["PprofCodec", "TestSupport"]),
        .testTarget(name: "RecordsTests", dependencies: ["Records"]),
        .testTarget(name: "NormalizationTests", dependencies: ["Normalization", "PprofCodec", "Records", "TestSupport"]),
        .testTarget(name: "BlocksTests", dependencies: ["Blocks", "ObjectStore", "Parquet", "ProfileModel", "TestSupport"]),
        .testTarget(name: "ParquetTests", dependencies: ["Parquet", "TestSupport"]),
        .testTarget(name: "ScrapeTests", dependencies: ["Scrape", "PprofCodec", "TestSupport"]),
        .testTarget(name: "StagesTests", dependencies: ["Stages", "KafkaClient", "Records", "PprofCodec", "TestSupport", "Blocks", "ObjectStore", "HTTPAPI", "Scrape",
                                                        .product(name: "AsyncHTTPClient", package: "async-http-client")]),
        .testTarget(name: "HTTPAPITests", dependencies: ["HTTPAPI", "Records", "ProfileModel", "PprofCodec", "TestSupport", "Query", "Blocks", "Scrape",
                                                         .product(name: "AsyncHTTPClient", package: "async-http-client"),
                                                         .product(name: "Hummingbird", package: "hummingbird")]),
        .testTarget(name: "ReplayTests", dependencies: ["Replay", "Stages", "KafkaClient", "Records", "Normalization", "PprofCodec",
                                                       "ProfileModel", "Blocks", "ObjectStore", "TestSupport",
                                                       .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "DevStackTests", dependencies: ["DevStack", "TestSupport",
                                                          .product(name: "AsyncHTTPClient", package: "async-http-client")]),
        .testTarget(name: "QueryTests", dependencies: ["Query", "Blocks", "ObjectStore", "ProfileModel", "Normalization", "Records", "TestSupport"]),
        .testTarget(name: "LoadGenTests", dependencies: ["LoadGen", "PprofCodec", "TestSupport",
                                                         .product(name: "Hummingbird", package: "hummingbird")]),
        .testTarget(name: "ExecutableTests", dependencies: ["TestSupport", "Scrape"]),
        // Faults against the real binaries: broker restart, S3 errors, kills, full disk (issue 8).
        .testTarget(name: "ReliabilityTests", dependencies: ["TestSupport", "KafkaClient", "Records", "Normalization", "PprofCodec", "ProfileModel", "Blocks", "ObjectStore"]),
    ]
)

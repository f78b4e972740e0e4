import ArgumentParser
import Blocks
import Foundation
import KafkaService
import KilnService
import ObjectStore
import Replay

/// `kiln blocks ls|inspect|verify|audit --store URL`
struct BlocksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blocks",
        abstract: "List, inspect and verify the blocks in an object store, or audit them against the raw topic.",
        subcommands: [List.self, Inspect.self, Verify.self, Audit.self]
    )

    struct StoreOption: ParsableArguments {
        @Option(
            help:
                "Object store URL: file:///path or s3://bucket/prefix?endpoint=...&region=... [env: KILN_STORE] (default: file://./data/blocks)"
        )
        var store: String?

        func open() throws -> any ObjectStore {
            var url = store ?? ProcessInfo.processInfo.environment["KILN_STORE"] ?? "file://./data/blocks"
            if url.hasPrefix("file://") && !url.hasPrefix("file:///") {
                url = "file://" + URL(fileURLWithPath: String(url.dropFirst(7))).standardizedFileURL.path
            }
            return try makeObjectStore(url: url)
        }
    }

    static func time(_ nanos: Int64) -> String {
        let f = ISO8601DateFormatter()
        return f.string(from: Date(timeIntervalSince1970: Double(nanos) / 1e9))
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List blocks per tenant (live ones unless --all).")
        @OptionGroup var options: StoreOption
        @Option(help: "Only this tenant.") var tenant: String?
        @Flag(help: "Also list superseded, marked and partial blocks.") var all = false

        func run() async throws {
            let store = try options.open()
            var tenants: [String] = []
            if let tenant { tenants = [tenant] } else { tenants = try await BlockIndex.tenants(in: store) }
            print("TENANT\tULID\tLEVEL\tRESOLUTION\tMIN_TIME\tMAX_TIME\tSAMPLES\tBYTES\tSTATE")
            for t in tenants {
                let listing = try await BlockIndex.list(store, tenant: t)
                let live = Set(BlockIndex.live(listing.metas, deletionMarks: listing.deletionMarks).map(\.ulid))
                for m in listing.metas.sorted(by: { $0.ulid < $1.ulid }) {
                    let state = live.contains(m.ulid) ? "live" : (listing.deletionMarks[m.ulid] != nil ? "marked" : "superseded")
                    guard all || state == "live" else { continue }
                    let resolution = m.resolutionMillis.map { $0 >= 3_600_000 ? "\($0 / 3_600_000)h" : "\($0 / 60_000)m" } ?? "full"
                    print(
                        "\(t)\t\(m.ulid)\t\(m.compaction.level)\t\(resolution)\t\(time(m.minTime))\t\(time(m.maxTime))\t\(m.stats.samples)\t\(m.files.reduce(0) { $0 + $1.sizeBytes })\t\(state)"
                    )
                }
                if all { for (u, _) in listing.partial.sorted(by: { $0.key < $1.key }) { print("\(t)\t\(u)\t-\t-\t-\t-\t-\t-\tpartial") } }
            }
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Print a block's meta.json and per-table sizes.")
        @OptionGroup var options: StoreOption
        @Argument(help: "tenant/ULID") var block: String

        func run() async throws {
            let store = try options.open()
            let (tenant, ulid) = try parseBlockRef(block)
            let reader = try await BlockReader.open(store: store, tenant: tenant, ulid: ulid)
            print(String(decoding: try reader.meta.encoded(), as: UTF8.self))
            let bytes = reader.meta.files.reduce(0) { $0 + $1.sizeBytes }
            if reader.meta.stats.samples > 0 {
                print(String(format: "bytes per sample: %.2f", Double(bytes) / Double(reader.meta.stats.samples)))
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Check checksums and that every stack, frame, function and series reference resolves.")
        @OptionGroup var options: StoreOption
        @Argument(help: "tenant/ULID blocks to verify (default: every block with a meta.json)") var blocks: [String] = []

        func run() async throws {
            let store = try options.open()
            var targets: [BlockMeta] = []
            if blocks.isEmpty {
                for t in try await BlockIndex.tenants(in: store) { targets += try await BlockIndex.list(store, tenant: t).metas }
            } else {
                for b in blocks {
                    let (tenant, ulid) = try parseBlockRef(b)
                    targets.append(try await BlockReader.open(store: store, tenant: tenant, ulid: ulid).meta)
                }
            }
            var bad = 0
            for m in targets {
                let problems = await BlockReader(store: store, meta: m).verify()
                if problems.isEmpty {
                    print("ok\t\(m.tenant)/\(m.ulid)\t\(m.stats.samples) samples")
                } else {
                    bad += 1
                    for p in problems { print("FAIL\t\(m.tenant)/\(m.ulid)\t\(p)") }
                }
            }
            try? await store.shutdown()
            print("\(targets.count - bad)/\(targets.count) blocks ok")
            if bad > 0 { throw ExitCode(1) }
        }
    }
}

extension BlocksCommand {
    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "audit",
            abstract: "Check that every raw record of a tenant is in exactly one live block, with exact totals.",
            discussion: """
                Reads the raw topic from its start to its current end, normalises the tenant's records as \
                kiln-normalizer does, and compares their offsets and totals per profile type with what the \
                live blocks hold (their raw provenance and totals). Exits 1 when a record is lost or held \
                twice, or the totals differ. Non-cumulative profiles only.
                """)
        @OptionGroup var options: StoreOption
        @OptionGroup var kafka: KafkaOptions
        @Option(help: "Topic of raw profiles. [env: KILN_RAW_TOPIC] (default: kiln.profiles.raw)") var rawTopic: String?
        @Option(help: "The tenant to audit.") var tenant = "anonymous"
        @Option(help: "Seconds to keep reading the store until it matches (blocks may still be on their way).") var wait: Double = 0
        @Option(help: "Also write the audit as JSON to this file.") var json: String?

        func run() async throws {
            let store = try options.open()
            try await store.shutDown { try await audit(store) }
        }

        func audit(_ store: any ObjectStore) async throws {
            let ledger = try await DeliveryAudit.readTopic(
                kafka: try kafka.kafkaConfig(clientID: "kiln-audit"),
                topic: EnvironmentFallback.resolve(rawTopic, env: "KILN_RAW_TOPIC", default: "kiln.profiles.raw"), tenant: tenant)
            let deadline = Date().addingTimeInterval(wait)
            var audit = try await DeliveryAudit.compare(ledger, store: store, tenant: tenant)
            while !audit.exact, Date() < deadline {
                try await Task.sleep(for: .seconds(2))
                audit = try await DeliveryAudit.compare(ledger, store: store, tenant: tenant)
            }
            for type in Set(audit.expected.keys).union(audit.stored.keys).sorted() {
                let (e, s) = (audit.expected[type] ?? 0, audit.stored[type] ?? 0)
                print("\(type)\traw \(e)\tstored \(s)\t\(e == s ? "ok" : "DIFFERENT")")
            }
            print(
                "\(audit.exact ? "exact" : "NOT EXACT"): \(audit.records) raw records of \(tenant) with samples, lost \(audit.lost), "
                    + "duplicated \(audit.duplicated), refused by the normaliser \(audit.refused)")
            if let json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try encoder.encode(audit).write(to: URL(fileURLWithPath: json))
            }
            if !audit.exact { throw ExitCode(1) }
        }
    }
}

private func parseBlockRef(_ text: String) throws -> (String, ULID) {
    let parts = text.split(separator: "/")
    guard parts.count == 2, let ulid = ULID(string: String(parts[1])) else {
        throw ValidationError("expected tenant/ULID, got \(text)")
    }
    return (String(parts[0]), ulid)
}

import Foundation

/// Health of one scrape loop (a target × profile type), as served at `/targets`.
public struct TargetHealth: Sendable, Codable, Equatable {
    public enum State: String, Sendable, Codable { case unknown, up, down }

    /// `pyroscope.scrape.<label>`
    public var component: String
    public var job: String
    public var tenant: String
    public var profile: String
    public var url: String
    public var labels: LabelSet
    public var health: State
    public var lastError: String?
    public var lastScrape: Date?
    public var lastScrapeDurationSeconds: Double?
    public var lastBodyBytes: Int?
    public var scrapeIntervalSeconds: Double
    public var scrapeTimeoutSeconds: Double
    public var scrapesTotal: UInt64
    public var failuresTotal: UInt64

    public var up: Bool { health == .up }
}

/// Counters of a scrape manager, for `/metrics`.
public struct ScrapeStats: Sendable, Codable, Equatable {
    public var scrapesTotal: UInt64 = 0
    public var scrapeFailuresTotal: UInt64 = 0
    public var bytesScrapedTotal: UInt64 = 0
    public var profilesPublishedTotal: UInt64 = 0
    public var publishFailuresTotal: UInt64 = 0
    /// Scraped profiles not published, by reason (`buffer_full`, `buffer_bytes_full`, `shutdown`).
    public var droppedTotal: [String: UInt64] = [:]
    public var bufferedProfiles: Int = 0
    public var bufferedBytes: Int = 0
    public var activeLoops: Int = 0
    /// Targets this replica skipped because another shard owns them.
    public var targetsSkippedByShard: Int = 0
}

/// A snapshot of everything the HTTP layer shows.
public struct ScrapeStatus: Sendable, Codable, Equatable {
    public var shard: String
    public var targets: [TargetHealth]
    public var stats: ScrapeStats
    public var discoveryErrors: [String: String]

    /// JSON for `/targets` (sorted keys, ISO-8601 dates).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.dateEncodingStrategy = .iso8601
        return try encoder.encode(self)
    }

    /// Prometheus text-format lines (the HTTP layer appends them to `/metrics`).
    public func prometheusText() -> String {
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n")
        }
        var out = ""
        out += "# HELP kiln_scrape_target_up 1 if the last scrape of the target and profile succeeded.\n"
        out += "# TYPE kiln_scrape_target_up gauge\n"
        var durations = "# HELP kiln_scrape_duration_seconds Duration of the last scrape.\n# TYPE kiln_scrape_duration_seconds gauge\n"
        for t in targets {
            let labels =
                "job=\"\(esc(t.job))\",instance=\"\(esc(t.labels["instance"] ?? ""))\",profile=\"\(esc(t.profile))\",tenant=\"\(esc(t.tenant))\""
            out += "kiln_scrape_target_up{\(labels)} \(t.up ? 1 : 0)\n"
            if let d = t.lastScrapeDurationSeconds { durations += "kiln_scrape_duration_seconds{\(labels)} \(d)\n" }
        }
        out += durations
        let counters: [(String, String, UInt64)] = [
            ("kiln_scrapes_total", "Scrapes attempted.", stats.scrapesTotal),
            ("kiln_scrape_failures_total", "Scrapes that failed.", stats.scrapeFailuresTotal),
            ("kiln_scrape_bytes_total", "Bytes of profile bodies scraped.", stats.bytesScrapedTotal),
            ("kiln_scrape_profiles_published_total", "Profiles handed to the sink.", stats.profilesPublishedTotal),
            ("kiln_scrape_publish_failures_total", "Profiles the sink rejected.", stats.publishFailuresTotal),
        ]
        for (name, help, value) in counters {
            out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n\(name) \(value)\n"
        }
        out +=
            "# HELP kiln_scrape_dropped_total Scraped profiles dropped before publishing, by reason.\n# TYPE kiln_scrape_dropped_total counter\n"
        for (reason, value) in stats.droppedTotal.sorted(by: { $0.key < $1.key }) {
            out += "kiln_scrape_dropped_total{reason=\"\(esc(reason))\"} \(value)\n"
        }
        out +=
            "# HELP kiln_scrape_buffered_profiles Profiles waiting for the sink.\n# TYPE kiln_scrape_buffered_profiles gauge\nkiln_scrape_buffered_profiles \(stats.bufferedProfiles)\n"
        out +=
            "# HELP kiln_scrape_buffered_bytes Bytes waiting for the sink.\n# TYPE kiln_scrape_buffered_bytes gauge\nkiln_scrape_buffered_bytes \(stats.bufferedBytes)\n"
        return out
    }
}

import ArgumentParser
import Foundation
import Reports

/// `kiln report regressions`: what got more expensive between two selections, from a kiln-query address.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Reports computed by kiln-query.",
        subcommands: [RegressionsCommand.self]
    )
}

struct RegressionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "regressions",
        abstract: "Which functions got more expensive between a baseline and a comparison, and whether it is more than noise.",
        discussion: """
            Each side is a query (profile type and selector) over a time range. Compare two windows of one \
            service (--baseline-from/--baseline-until against --compare-from/--compare-until) or two label sets \
            over the same window (--baseline '…{version="1.2"}' --compare '…{version="1.3"}'). Times take now, \
            now-1h, Unix seconds or milliseconds, or RFC 3339.
            """
    )

    @Option(help: "kiln-query or kiln dev address.")
    var url = "http://127.0.0.1:4040"

    @Option(help: "Tenant (X-Scope-OrgID); none sends no header.")
    var tenant: String?

    @Option(help: "Baseline query, e.g. process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name=\"api\"}.")
    var baseline: String

    @Option(help: "Comparison query (default: the baseline's).")
    var compare: String?

    @Option(help: "Start of both ranges unless a side sets its own.")
    var from = "now-1h"

    @Option(help: "End of both ranges unless a side sets its own.")
    var until = "now"

    @Option var baselineFrom: String?
    @Option var baselineUntil: String?
    @Option var compareFrom: String?
    @Option var compareUntil: String?

    @Option(help: "False discovery rate a change must pass.")
    var alpha: Double?

    @Option(help: "Smallest change of total share reported, as a fraction (0.001 = 0.1 percentage points).")
    var minShareChange: Double?

    @Option(help: "Rows per list.")
    var limit: Int?

    @Option(help: "markdown, json or html.")
    var format = "markdown"

    @Option(name: .shortAndLong, help: "Write to this file instead of standard output.")
    var output: String?

    func validate() throws {
        guard ["markdown", "json", "html"].contains(format) else { throw ValidationError("--format must be markdown, json or html") }
        if baselineFrom == nil && compareFrom == nil && baselineUntil == nil && compareUntil == nil && compare == nil {
            throw ValidationError("both sides are the same: give --compare, or a range of its own to one side")
        }
    }

    func run() async throws {
        var parameters = [
            ("baselineQuery", baseline), ("comparisonQuery", compare ?? baseline),
            ("baselineFrom", baselineFrom ?? from), ("baselineUntil", baselineUntil ?? until),
            ("comparisonFrom", compareFrom ?? from), ("comparisonUntil", compareUntil ?? until),
        ]
        if let alpha { parameters.append(("alpha", String(alpha))) }
        if let minShareChange { parameters.append(("minShareChange", String(minShareChange))) }
        if let limit { parameters.append(("limit", String(limit))) }
        let text: String
        do {
            let report = try await RegressionReportClient(baseURL: url, tenant: tenant).report(parameters)
            switch format {
            case "json": text = try RegressionReportJSON.render(report)
            case "html": text = RegressionReportHTML.render(report)
            default: text = RegressionReportMarkdown.render(report)
            }
        } catch {
            FileHandle.standardError.write(Data("kiln report regressions: \(error)\n".utf8))
            throw ExitCode(1)
        }
        if let output {
            try Data(text.utf8).write(to: URL(fileURLWithPath: output))
        } else {
            print(text, terminator: text.hasSuffix("\n") ? "" : "\n")
        }
    }
}

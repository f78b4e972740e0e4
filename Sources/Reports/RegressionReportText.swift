import Foundation
import Query

/// A regression report as Markdown: what a person pastes into a pull request or an incident note.
public enum RegressionReportMarkdown {
    /// Regressions whose call paths are listed (the JSON has them for every row).
    static let pathRows = 5

    public static func render(_ report: RegressionReport) -> String {
        var out = "# Regression report\n\n"
        out += "| | query | range | profiles | total |\n|---|---|---|---:|---:|\n"
        for (name, side) in [("baseline", report.baseline), ("comparison", report.comparison)] {
            out +=
                "| \(name) | `\(cell(side.query))` | \(ReportFormat.time(side.fromMillis)) – \(ReportFormat.time(side.untilMillis)) "
                + "| \(side.profiles) | \(ReportFormat.value(Double(side.total), unit: report.unit)) |\n"
        }
        out += "\n\(ReportFormat.methodLine(report))\n"
        out += section("Regressions", report.regressions, report: report, paths: true)
        out += section("Improvements", report.improvements, report: report, paths: false)
        if !report.insignificant.isEmpty {
            out += "\n## Largest changes judged noise\n\n" + table(report.insignificant, report: report)
        }
        for (title, list) in [("New functions", report.newFunctions), ("Vanished functions", report.vanishedFunctions)] where !list.isEmpty
        {
            out += "\n## \(title)\n\n| function | total share | self share |\n|---|---:|---:|\n"
            for f in list {
                out += "| `\(cell(f.function))` | \(ReportFormat.percent(f.totalShare)) | \(ReportFormat.percent(f.selfShare)) |\n"
            }
        }
        return out
    }

    static func section(_ title: String, _ rows: [RegressionReport.FunctionChange], report: RegressionReport, paths: Bool) -> String {
        var out = "\n## \(title)\n\n"
        guard !rows.isEmpty else { return out + "None significant.\n" }
        out += table(rows, report: report)
        if paths {
            // The top rows' paths: further down they mostly repeat the paths above (callers and callees).
            for row in rows.prefix(pathRows) where !row.paths.isEmpty {
                out += "\n**`\(cell(row.function))`** — the call paths that carry it:\n\n"
                for path in row.paths {
                    out +=
                        "- \(ReportFormat.percent(path.share.before)) → \(ReportFormat.percent(path.share.after)): `"
                        + cell(path.frames.joined(separator: " › ")) + "`\n"
                }
            }
        }
        return out
    }

    static func table(_ rows: [RegressionReport.FunctionChange], report: RegressionReport) -> String {
        var out = "| # | function | total share | change | self share | per profile | q | P(higher) |\n"
        out += "|---:|---|---:|---:|---:|---:|---:|---:|\n"
        for (i, r) in rows.enumerated() {
            out +=
                "| \(i + 1) | `\(cell(r.function))` | \(ReportFormat.percent(r.totalShare.before)) → \(ReportFormat.percent(r.totalShare.after)) "
                + "| \(ReportFormat.points(r.totalShare.change)) "
                + "| \(ReportFormat.percent(r.selfShare.before)) → \(ReportFormat.percent(r.selfShare.after)) "
                + "| \(ReportFormat.value(r.totalPerProfile.before, unit: report.unit)) → \(ReportFormat.value(r.totalPerProfile.after, unit: report.unit)) "
                + "| \(ReportFormat.probability(r.q)) | \(String(format: "%.2f", r.superiority)) |\n"
        }
        return out
    }

    /// Table cells and code spans must not end early at a `|` or a backtick in a function name.
    static func cell(_ text: String) -> String {
        text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "`", with: "'")
    }
}

/// Numbers as the report's readers read them.
enum ReportFormat {
    static func percent(_ share: Double) -> String { String(format: "%.2f %%", share * 100) }

    static func points(_ change: Double) -> String { String(format: "%+.2f pp", change * 100) }

    static func probability(_ q: Double) -> String { q < 0.0001 ? String(format: "%.0e", q) : String(format: "%.4f", q) }

    static func time(_ millis: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
    }

    /// A value in the profile type's unit, scaled: CPU nanoseconds as seconds, bytes as MiB.
    static func value(_ v: Double, unit: String) -> String {
        switch unit {
        case "nanoseconds":
            return v >= 1e9 ? String(format: "%.2f s", v / 1e9) : String(format: "%.2f ms", v / 1e6)
        case "bytes":
            let (mib, gib) = (1024.0 * 1024, 1024.0 * 1024 * 1024)
            return v >= gib ? String(format: "%.2f GiB", v / gib) : String(format: "%.2f MiB", v / mib)
        default:
            return String(format: "%.0f %@", v, unit)
        }
    }

    static func methodLine(_ report: RegressionReport) -> String {
        let m = report.method
        return "\(m.test); \(m.correction) over \(m.functionsSeen) functions (\(m.functionsTested) tested), "
            + "q < \(m.alpha), change ≥ \(String(format: "%.2f", m.minShareChange * 100)) pp of the total."
    }
}

/// A regression report as indented JSON, the same fields `/kiln/v1/regressions` answers.
public enum RegressionReportJSON {
    public static func render(_ report: RegressionReport) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(report), as: UTF8.self) + "\n"
    }
}

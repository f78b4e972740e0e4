import Foundation
import Query

/// A regression report as one self-contained HTML page: the ranked tables and, for the top regressions,
/// the diff flame graph focused on the function (SVG, no scripts, no external files).
public enum RegressionReportHTML {
    public static func render(_ report: RegressionReport) -> String {
        var body = "<h1>Regression report</h1>\n<table><tr><th></th><th>query</th><th>range</th><th>profiles</th><th>total</th></tr>\n"
        for (name, side) in [("baseline", report.baseline), ("comparison", report.comparison)] {
            body +=
                "<tr><td>\(name)</td><td><code>\(escape(side.query))</code></td><td>\(ReportFormat.time(side.fromMillis)) – "
                + "\(ReportFormat.time(side.untilMillis))</td><td class=n>\(side.profiles)</td>"
                + "<td class=n>\(escape(ReportFormat.value(Double(side.total), unit: report.unit)))</td></tr>\n"
        }
        body += "</table>\n<p class=method>\(escape(ReportFormat.methodLine(report)))</p>\n"
        body += section("Regressions", report.regressions, report)
        for row in report.regressions {
            guard let focus = row.focus, !focus.names.isEmpty else { continue }
            body += "<h3><code>\(escape(row.function))</code>: its callees, before against after</h3>\n"
            body += flameGraph(focus, before: Double(report.baseline.total), after: Double(report.comparison.total))
            body += "<ul class=paths>"
            for path in row.paths {
                body +=
                    "<li>\(ReportFormat.percent(path.share.before)) → \(ReportFormat.percent(path.share.after)): "
                    + "<code>\(escape(path.frames.joined(separator: " › ")))</code></li>"
            }
            body += "</ul>\n"
        }
        body += section("Improvements", report.improvements, report)
        if !report.insignificant.isEmpty { body += "<h2>Largest changes judged noise</h2>\n" + table(report.insignificant, report) }
        for (title, list) in [("New functions", report.newFunctions), ("Vanished functions", report.vanishedFunctions)] where !list.isEmpty
        {
            body += "<h2>\(title)</h2>\n<table><tr><th>function</th><th>total share</th><th>self share</th></tr>\n"
            for f in list {
                body +=
                    "<tr><td><code>\(escape(f.function))</code></td><td class=n>\(ReportFormat.percent(f.totalShare))</td>"
                    + "<td class=n>\(ReportFormat.percent(f.selfShare))</td></tr>\n"
            }
            body += "</table>\n"
        }
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Kiln regression report</title>
            <style>
            body { font: 14px system-ui, sans-serif; margin: 24px; color: #1d1d1f; max-width: 1240px; }
            table { border-collapse: collapse; margin: 8px 0 16px; }
            th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; }
            td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
            .up { color: #b3261e; } .down { color: #1e7b34; } .method { color: #555; }
            svg text { font: 11px ui-monospace, monospace; pointer-events: none; }
            ul.paths { color: #333; }
            </style></head><body>
            \(body)
            </body></html>

            """
    }

    static func section(_ title: String, _ rows: [RegressionReport.FunctionChange], _ report: RegressionReport) -> String {
        "<h2>\(title)</h2>\n" + (rows.isEmpty ? "<p>None significant.</p>\n" : table(rows, report))
    }

    static func table(_ rows: [RegressionReport.FunctionChange], _ report: RegressionReport) -> String {
        var out =
            "<table><tr><th class=n>#</th><th>function</th><th class=n>total share</th><th class=n>change</th>"
            + "<th class=n>self share</th><th class=n>per profile</th><th class=n>q</th><th class=n>P(higher)</th></tr>\n"
        for (i, r) in rows.enumerated() {
            out +=
                "<tr><td class=n>\(i + 1)</td><td><code>\(escape(r.function))</code></td>"
                + "<td class=n>\(ReportFormat.percent(r.totalShare.before)) → \(ReportFormat.percent(r.totalShare.after))</td>"
                + "<td class=\"n \(r.totalShare.change > 0 ? "up" : "down")\">\(ReportFormat.points(r.totalShare.change))</td>"
                + "<td class=n>\(ReportFormat.percent(r.selfShare.before)) → \(ReportFormat.percent(r.selfShare.after))</td>"
                + "<td class=n>\(escape(ReportFormat.value(r.totalPerProfile.before, unit: report.unit))) → "
                + "\(escape(ReportFormat.value(r.totalPerProfile.after, unit: report.unit)))</td>"
                + "<td class=n>\(ReportFormat.probability(r.q))</td><td class=n>\(String(format: "%.2f", r.superiority))</td></tr>\n"
        }
        return out + "</table>\n"
    }

    /// An icicle (the function on top, callees below): a node's width is its share of each side's total,
    /// both sides added, as Pyroscope's diff view sizes it; red where its share grew, green where it shrank.
    static func flameGraph(_ focus: RegressionReport.FocusTree, before: Double, after: Double) -> String {
        let width = 1200.0
        let rowHeight = 18.0
        let count = focus.names.count
        func share(_ v: Int64, _ total: Double) -> Double { total > 0 ? Double(v) / total : 0 }
        let weight = (0..<count).map { share(focus.before[$0], before) + share(focus.after[$0], after) }
        var children = [[Int]](repeating: [], count: count)
        for i in 1..<max(count, 1) where focus.parents[i] >= 0 { children[focus.parents[i]].append(i) }
        var boxes = ""
        var depthMax = 0
        var pending: [(node: Int, x: Double, depth: Int)] = [(0, 0, 0)]
        while let (node, x, depth) = pending.popLast() {
            let w = weight[0] > 0 ? weight[node] / weight[0] * width : 0
            guard w >= 0.5 else { continue }
            depthMax = max(depthMax, depth)
            let (b, a) = (share(focus.before[node], before), share(focus.after[node], after))
            let tip =
                "\(focus.names[node]): \(ReportFormat.percent(b)) → \(ReportFormat.percent(a)) of the total (\(ReportFormat.points(a - b)))"
            let y = Double(depth) * rowHeight
            boxes +=
                "<g><title>\(escape(tip))</title><rect x=\"\(fixed(x))\" y=\"\(fixed(y))\" width=\"\(fixed(max(w - 1, 0.5)))\" "
                + "height=\"\(fixed(rowHeight - 1))\" fill=\"\(colour(before: b, after: a))\"/>"
            let characters = Int((w - 6) / 6.6)
            if characters >= 3 {
                let name = focus.names[node]
                let shown = name.count <= characters ? name : "…" + name.suffix(characters - 1)
                boxes += "<text x=\"\(fixed(x + 3))\" y=\"\(fixed(y + 13))\">\(escape(String(shown)))</text>"
            }
            boxes += "</g>\n"
            var childX = x
            for c in children[node] {
                pending.append((c, childX, depth + 1))
                childX += weight[0] > 0 ? weight[c] / weight[0] * width : 0
            }
        }
        let height = Double(depthMax + 1) * rowHeight
        return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
            + "viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\">\n\(boxes)</svg>\n"
    }

    /// Grey when unchanged, towards red as the share grows up to threefold, towards green as it shrinks.
    static func colour(before: Double, after: Double) -> String {
        let ratio = before > 0 ? after / before : (after > 0 ? 3 : 1)
        let strength = min(1, abs(log(max(ratio, 1e-9))) / log(3))
        let (r, g, b): (Double, Double, Double) = ratio >= 1 ? (229, 57, 53) : (67, 160, 71)
        func mix(_ c: Double) -> Int { Int(200 + (c - 200) * strength) }
        return "rgb(\(mix(r)),\(mix(g)),\(mix(b)))"
    }

    static func fixed(_ v: Double) -> String { String(format: "%.1f", v) }

    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }
}

import CortexCore
import CortexSecurity
import Foundation

/// A run's report as one self-contained HTML page beside summary.md: inline CSS and SVG charts drawn
/// here (phase timeline, work items per master and worker, token spend against budget, findings by
/// severity with their SLA, the plan graph), links to the per-master sections and the files written
/// beside it. No script, no font, no image and no request to anywhere: it opens from a mail attachment
/// or an air-gapped laptop the same. Colours are the Okabe–Ito palette (distinguishable with every
/// common colour-vision deficiency) and every chart also says its numbers in text.
enum ReportHTML {
    static let fileName = "report.html"

    /// Okabe–Ito colours by meaning.
    static let palette = ["blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "vermillion": "#D55E00", "sky": "#56B4E9",
                          "purple": "#CC79A7", "yellow": "#F0E442", "grey": "#6b6b6b"]
    static let masterColour: [MasterRole: String] = [.security: "#D55E00", .development: "#0072B2", .inventory: "#009E73", .cicd: "#E69F00",
                                                     .testing: "#CC79A7", .monitoring: "#56B4E9"]
    static let outcomeColour: [String: String] = ["succeeded": "#009E73", "partial": "#E69F00", "failed": "#D55E00", "skipped": "#6b6b6b", "denied": "#6b6b6b"]

    /// `files`: the files written beside the page (paths relative to the run's directory), linked from it.
    static func render(_ o: RunOutcome, files: [String]) -> String {
        var body = ""
        body += "<header><h1>Cortex run <code>\(esc(o.request.runID))</code></h1>"
        body += "<p class=\"verdict \(esc(o.status.rawValue))\"><strong>\(esc(o.status.rawValue.uppercased()))</strong>\(o.reason.map { " — " + esc($0) } ?? "")</p>"
        body += "<dl><dt>Goal</dt><dd>\(esc(o.request.goal))</dd><dt>Targets</dt><dd>\(o.request.targets.map { "<code>\(esc($0))</code>" }.joined(separator: ", "))</dd>"
        body += "<dt>Started</dt><dd>\(esc(Timestamp.format(o.startedAt)))</dd><dt>Duration</dt><dd>\(esc(ReportWriter.duration(o.startedAt, o.finishedAt)))</dd>"
        body += "<dt>Model</dt><dd>\(esc(o.model ?? "none"))</dd></dl></header>"
        body += "<nav aria-label=\"Sections\"><ul><li><a href=\"#timeline\">Timeline</a></li><li><a href=\"#work\">Work items</a></li><li><a href=\"#budget\">Budget</a></li>"
            + "<li><a href=\"#findings\">Findings</a></li>" + (o.plan == nil ? "" : "<li><a href=\"#plan\">Plan</a></li>") + "<li><a href=\"#masters\">Masters</a></li>"
            + "<li><a href=\"#files\">Files</a></li></ul></nav>"
        body += section("timeline", "Phase timeline", timeline(o))
        body += section("work", "Work items per master and worker", workItems(o))
        body += section("budget", "Token spend against budget", budget(o))
        body += section("findings", "Findings by severity", findings(o))
        if let plan = o.plan { body += section("plan", "Plan (\(esc(plan.planner)), rule \(esc(plan.rule)))", planGraph(plan, o)) }
        body += section("masters", "Masters", masters(o, files: files))
        body += section("files", "Files", "<ul>" + files.sorted().map { "<li><a href=\"\(attr($0))\">\(esc($0))</a></li>" }.joined() + "</ul>")
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
            <title>Cortex run \(esc(o.request.runID))</title>
            <style>\(css)</style></head><body>\(body)</body></html>

            """
    }

    static let css = """
        body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1a1a1a;background:#fff;margin:0 auto;max-width:1100px;padding:1rem 1.5rem}
        h1{font-size:1.5rem}h2{font-size:1.2rem;border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
        code{font:13px ui-monospace,monospace;background:#f3f3f3;padding:0 .2rem}
        dl{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem}dt{font-weight:600}dd{margin:0}
        nav ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:1rem}a{color:#0057a3}
        table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}th{background:#f3f3f3}
        td.n{text-align:right;font-variant-numeric:tabular-nums}
        .verdict{font-size:1.1rem;padding:.3rem .6rem;border-left:6px solid #6b6b6b}.verdict.succeeded{border-color:#009E73}
        .verdict.partial{border-color:#E69F00}.verdict.failed{border-color:#D55E00}
        svg text{font:12px system-ui,sans-serif;fill:#1a1a1a}pre{white-space:pre-wrap;background:#f7f7f7;padding:.5rem;font-size:12px}
        .legend span{display:inline-block;margin-right:1rem}.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
        """

    // MARK: - Sections

    static func section(_ id: String, _ title: String, _ content: String) -> String {
        "<section id=\"\(id)\"><h2>\(title)</h2>\(content)</section>"
    }

    /// Gantt: one row per phase (until the next phase or the end), then one per master task.
    static func timeline(_ o: RunOutcome) -> String {
        let total = max(0.001, o.finishedAt.timeIntervalSince(o.startedAt))
        var rows: [(label: String, start: Double, end: Double, colour: String, note: String)] = []
        for (i, p) in o.phases.enumerated() {
            let end = i + 1 < o.phases.count ? o.phases[i + 1].startedAt : o.finishedAt
            rows.append(("phase \(p.phase) \(p.name)", p.startedAt.timeIntervalSince(o.startedAt), end.timeIntervalSince(o.startedAt), "#0072B2", ""))
        }
        for r in o.reports.sorted(by: { $0.startedAt < $1.startedAt }) {
            rows.append(("\(r.master.processName) · \(RepositoryCheckout.name(of: r.target))", r.startedAt.timeIntervalSince(o.startedAt),
                         r.finishedAt.timeIntervalSince(o.startedAt), masterColour[r.master] ?? "#6b6b6b", r.status.rawValue))
        }
        guard !rows.isEmpty else { return "<p>No phase was recorded.</p>" }
        let labelWidth = 250.0, width = 820.0, rowHeight = 22.0
        let scale = (width - labelWidth - 70) / total
        var svg = "<svg role=\"img\" aria-labelledby=\"tl-t\" viewBox=\"0 0 \(Int(width)) \(Int(Double(rows.count) * rowHeight + 30))\" width=\"100%\"><title id=\"tl-t\">Phase and task timeline</title>"
        for (i, row) in rows.enumerated() {
            let y = Double(i) * rowHeight + 4
            let x = labelWidth + max(0, row.start) * scale, w = max(2, (row.end - row.start) * scale)
            svg += "<text x=\"0\" y=\"\(fmt(y + 14))\">\(esc(String(row.label.prefix(38))))</text>"
            svg += "<rect x=\"\(fmt(x))\" y=\"\(fmt(y))\" width=\"\(fmt(w))\" height=\"16\" fill=\"\(row.colour)\"><title>\(esc(row.label)): \(fmt(row.end - row.start)) s</title></rect>"
            svg += "<text x=\"\(fmt(x + w + 4))\" y=\"\(fmt(y + 13))\">\(fmt(row.end - row.start)) s\(row.note.isEmpty ? "" : " · " + esc(row.note))</text>"
        }
        let axisY = Double(rows.count) * rowHeight + 20
        svg += "<text x=\"\(Int(labelWidth))\" y=\"\(fmt(axisY))\">0 s</text><text x=\"\(fmt(labelWidth + total * scale - 30))\" y=\"\(fmt(axisY))\">\(fmt(total)) s</text></svg>"
        return svg
    }

    /// Stacked bars: items per worker, by master; the table beside it says the same in numbers.
    static func workItems(_ o: RunOutcome) -> String {
        let items = o.reports.flatMap { r in r.items.map { (master: r.master, item: $0) } }
        guard !items.isEmpty else { return "<p>No work item ran.</p>" }
        let workers = Array(Set(items.map(\.item.worker))).sorted()
        let masters = MasterRole.allCases.filter { m in items.contains { $0.master == m } }
        let most = workers.map { w in items.filter { $0.item.worker == w }.count }.max() ?? 1
        let barWidth = 520.0, rowHeight = 24.0, labelWidth = 160.0
        var svg = "<svg role=\"img\" aria-labelledby=\"wi-t\" viewBox=\"0 0 760 \(Int(Double(workers.count) * rowHeight + 10))\" width=\"100%\"><title id=\"wi-t\">Work items per worker, by master</title>"
        for (i, w) in workers.enumerated() {
            let y = Double(i) * rowHeight + 4
            svg += "<text x=\"0\" y=\"\(fmt(y + 14))\">\(esc(String(w.prefix(24))))</text>"
            var x = labelWidth
            for m in masters {
                let n = items.filter { $0.item.worker == w && $0.master == m }.count
                guard n > 0 else { continue }
                let width = Double(n) / Double(most) * barWidth
                svg += "<rect x=\"\(fmt(x))\" y=\"\(fmt(y))\" width=\"\(fmt(width))\" height=\"18\" fill=\"\(masterColour[m] ?? "#6b6b6b")\" stroke=\"#fff\"><title>\(esc(w)): \(n) \(m.rawValue) items</title></rect>"
                x += width
            }
            svg += "<text x=\"\(fmt(x + 4))\" y=\"\(fmt(y + 14))\">\(items.filter { $0.item.worker == w }.count)</text>"
        }
        svg += "</svg>"
        let legend = "<p class=\"legend\">" + masters.map { "<span><i style=\"background:\(masterColour[$0] ?? "#6b6b6b")\"></i>\($0.rawValue)</span>" }.joined() + "</p>"
        var table = "<table><thead><tr><th>Master</th><th>Items</th><th>Succeeded</th><th>Failed</th><th>Other</th><th>Workers</th><th>Nodes</th></tr></thead><tbody>"
        for m in masters {
            let mine = items.filter { $0.master == m }.map(\.item)
            let ok = mine.filter { $0.status == .succeeded }.count, failed = mine.filter { $0.status == .failed }.count
            table += "<tr><td>\(m.rawValue)</td><td class=\"n\">\(mine.count)</td><td class=\"n\">\(ok)</td><td class=\"n\">\(failed)</td><td class=\"n\">\(mine.count - ok - failed)</td>"
                + "<td>\(esc(Set(mine.map(\.worker)).sorted().joined(separator: ", ")))</td><td>\(esc(Set(mine.map(\.node)).sorted().joined(separator: ", ")))</td></tr>"
        }
        return svg + legend + table + "</tbody></table>"
    }

    /// Per account: used (solid), reserved (outlined), the limit as the bar's full width.
    static func budget(_ o: RunOutcome) -> String {
        guard !o.budget.isEmpty else { return "<p>No token account for this run (it ended before phase 2, or budgets are off).</p>" }
        let rowHeight = 26.0, labelWidth = 180.0, barWidth = 460.0
        var svg = "<svg role=\"img\" aria-labelledby=\"bu-t\" viewBox=\"0 0 820 \(Int(Double(o.budget.count) * rowHeight + 10))\" width=\"100%\"><title id=\"bu-t\">Tokens used and reserved against each account's limit</title>"
        for (i, a) in o.budget.enumerated() {
            let y = Double(i) * rowHeight + 4
            let limit = Double(max(1, a.limit))
            let used = min(1, Double(a.used) / limit) * barWidth, reserved = min(1, Double(a.reserved) / limit) * barWidth
            svg += "<text x=\"0\" y=\"\(fmt(y + 14))\">\(esc(a.name))</text>"
            svg += "<rect x=\"\(labelWidth)\" y=\"\(fmt(y))\" width=\"\(barWidth)\" height=\"18\" fill=\"#f3f3f3\" stroke=\"#888\"/>"
            svg += "<rect x=\"\(labelWidth)\" y=\"\(fmt(y))\" width=\"\(fmt(used))\" height=\"18\" fill=\"\(a.used > a.limit ? "#D55E00" : "#0072B2")\"><title>\(esc(a.name)): \(a.used) used</title></rect>"
            if reserved > 0 { svg += "<rect x=\"\(fmt(labelWidth + used))\" y=\"\(fmt(y))\" width=\"\(fmt(reserved))\" height=\"18\" fill=\"none\" stroke=\"#E69F00\" stroke-width=\"2\" stroke-dasharray=\"4 2\"/>" }
            svg += "<text x=\"\(fmt(labelWidth + barWidth + 6))\" y=\"\(fmt(y + 14))\">\(a.used) / \(a.limit)\(a.reserved > 0 ? " (+\(a.reserved) reserved)" : "")</text>"
        }
        svg += "</svg><p class=\"legend\"><span><i style=\"background:#0072B2\"></i>used</span><span><i style=\"border:2px dashed #E69F00\"></i>reserved, not yet spent</span><span><i style=\"background:#f3f3f3;border:1px solid #888\"></i>limit</span></p>"
        return svg
    }

    /// Findings of the security master (vulnerabilities, configuration, secrets) and the cicd master, by severity, with the SLA's fix-by time.
    static func findings(_ o: RunOutcome) -> String {
        var counts: [CVSS3.Severity: (vulnerabilities: Int, configuration: Int, secrets: Int, pipelines: Int)] = [:]
        var reportedAt: Date?
        var vulnerabilitiesChecked = true
        for r in o.reports {
            switch r.master {
            case .security:
                reportedAt = max(reportedAt ?? r.finishedAt, r.finishedAt)
                if r.notChecked?.isEmpty == false { vulnerabilitiesChecked = false }
                for v in r.details["vulnerabilities"]?.arrayValue ?? [] { if let s = v["severity"]?.stringValue.flatMap(CVSS3.Severity.init) { counts[s, default: (0, 0, 0, 0)].vulnerabilities += 1 } }
                for c in r.details["config"]?.arrayValue ?? [] { if let s = c["severity"]?.stringValue.flatMap(CVSS3.Severity.init) { counts[s, default: (0, 0, 0, 0)].configuration += 1 } }
                for k in r.details["secrets"]?.arrayValue ?? [] { if let rule = k["rule"]?.stringValue { counts[SARIFLog.secretSeverity(rule), default: (0, 0, 0, 0)].secrets += 1 } }
            case .cicd:
                for f in r.details["findings"]?.arrayValue ?? [] where f["category"]?.stringValue == "security" && f["persona"] == nil && f["ignoredBy"] == nil {
                    if let s = f["severity"]?.stringValue.flatMap(CVSS3.Severity.init) { counts[s, default: (0, 0, 0, 0)].pipelines += 1 }
                }
            default: break
            }
        }
        let order = CVSS3.Severity.allCases
        let most = max(1, order.map { s in counts[s].map { $0.vulnerabilities + $0.configuration + $0.secrets + $0.pipelines } ?? 0 }.max() ?? 1)
        var svg = "<svg role=\"img\" aria-labelledby=\"fi-t\" viewBox=\"0 0 760 \(order.count * 26 + 10)\" width=\"100%\"><title id=\"fi-t\">Findings by severity</title>"
        let colour: [CVSS3.Severity: String] = [.critical: "#D55E00", .high: "#E69F00", .medium: "#F0E442", .low: "#56B4E9"]
        for (i, s) in order.enumerated() {
            let c = counts[s] ?? (0, 0, 0, 0)
            let n = c.vulnerabilities + c.configuration + c.secrets + c.pipelines
            let y = Double(i) * 26 + 4
            svg += "<text x=\"0\" y=\"\(fmt(y + 14))\">\(s.rawValue)</text><rect x=\"100\" y=\"\(fmt(y))\" width=\"\(fmt(Double(n) / Double(most) * 500))\" height=\"18\" fill=\"\(colour[s] ?? "#6b6b6b")\" stroke=\"#1a1a1a\" stroke-width=\".5\"/>"
            svg += "<text x=\"\(fmt(106 + Double(n) / Double(most) * 500))\" y=\"\(fmt(y + 14))\">\(n)</text>"
        }
        svg += "</svg>"
        var table = "<table><thead><tr><th>Severity</th><th>Vulnerabilities</th><th>Configuration</th><th>Secrets</th><th>Pipelines</th><th>SLA</th><th>Fix by (UTC)</th></tr></thead><tbody>"
        for s in order {
            let c = counts[s] ?? (0, 0, 0, 0)
            let any = c.vulnerabilities + c.configuration + c.secrets + c.pipelines > 0
            let due = any ? (reportedAt.map { Timestamp.format($0.addingTimeInterval(Double(s.slaHours) * 3600)) } ?? "-") : "-"
            table += "<tr><td>\(s.rawValue)</td><td class=\"n\">\(vulnerabilitiesChecked ? "\(c.vulnerabilities)" : "not checked")</td><td class=\"n\">\(c.configuration)</td><td class=\"n\">\(c.secrets)</td>"
                + "<td class=\"n\">\(c.pipelines)</td><td class=\"n\">\(s.slaHours) h</td><td>\(esc(due))</td></tr>"
        }
        return svg + table + "</tbody></table>"
    }

    /// The plan as layers by dependency depth, an arrow per dependency, each box coloured by outcome.
    static func planGraph(_ plan: Plan, _ o: RunOutcome) -> String {
        let outcomes = ReportWriter.subtaskOutcomes(o)
        var depth: [String: Int] = [:]
        func level(_ id: String, _ seen: Set<String> = []) -> Int {
            if let d = depth[id] { return d }
            guard !seen.contains(id), let s = plan.subtasks.first(where: { $0.id == id }) else { return 0 }
            let d = s.dependsOn.map { level($0, seen.union([id])) + 1 }.max() ?? 0
            depth[id] = d
            return d
        }
        for s in plan.subtasks { _ = level(s.id) }
        let layers = Dictionary(grouping: plan.subtasks) { depth[$0.id] ?? 0 }
        let boxW = 170.0, boxH = 44.0, gapX = 40.0, gapY = 18.0
        let columns = (layers.keys.max() ?? 0) + 1, rows = layers.values.map(\.count).max() ?? 1
        var position: [String: (x: Double, y: Double)] = [:]
        for (d, subtasks) in layers { for (i, s) in subtasks.sorted(by: { $0.id < $1.id }).enumerated() { position[s.id] = (Double(d) * (boxW + gapX) + 4, Double(i) * (boxH + gapY) + 4) } }
        let width = Double(columns) * (boxW + gapX), height = Double(rows) * (boxH + gapY) + 10
        var svg = "<svg role=\"img\" aria-labelledby=\"pl-t\" viewBox=\"0 0 \(fmt(width)) \(fmt(height))\" width=\"\(fmt(min(1050, width)))\"><title id=\"pl-t\">Plan: subtasks and their dependencies</title>"
        svg += "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"#444\"/></marker></defs>"
        for s in plan.subtasks {
            guard let to = position[s.id] else { continue }
            for dep in s.dependsOn { if let from = position[dep] {
                svg += "<line x1=\"\(fmt(from.x + boxW))\" y1=\"\(fmt(from.y + boxH / 2))\" x2=\"\(fmt(to.x))\" y2=\"\(fmt(to.y + boxH / 2))\" stroke=\"#444\" marker-end=\"url(#arrow)\"/>"
            } }
        }
        for s in plan.subtasks {
            guard let p = position[s.id] else { continue }
            let outcome = s.notRun != nil ? "not run" : outcomes[s.id] ?? "?"
            svg += "<rect x=\"\(fmt(p.x))\" y=\"\(fmt(p.y))\" width=\"\(boxW)\" height=\"\(boxH)\" rx=\"4\" fill=\"#fff\" stroke=\"\(outcomeColour[outcome] ?? "#6b6b6b")\" stroke-width=\"3\"><title>\(esc(s.id)): \(esc(outcome))</title></rect>"
            svg += "<text x=\"\(fmt(p.x + 6))\" y=\"\(fmt(p.y + 17))\">\(esc(String(s.id.prefix(24))))</text><text x=\"\(fmt(p.x + 6))\" y=\"\(fmt(p.y + 34))\">\(esc(s.kind.rawValue)) · \(esc(outcome))</text>"
        }
        return svg + "</svg><p>Each box: subtask id, kind and outcome (its border: green succeeded, orange partial, red failed, grey not run); arrows point from a dependency to what waits for it.</p>"
    }

    static func masters(_ o: RunOutcome, files: [String]) -> String {
        var html = "<table><thead><tr><th>Master</th><th>Target</th><th>Outcome</th><th>Summary</th><th>Files</th></tr></thead><tbody>"
        var sections = ""
        for r in o.reports {
            let base = "\(r.master.rawValue)-\(r.taskID.split(separator: ".").last ?? "0")"
            let anchor = "master-\(base)"
            let mine = files.filter { $0.hasPrefix("masters/\(base).") || $0.hasPrefix("masters/\(base)-files/") }.sorted()
            html += "<tr><td><a href=\"#\(attr(anchor))\">\(esc(r.master.processName))</a></td><td>\(esc(RepositoryCheckout.name(of: r.target)))</td>"
                + "<td>\(esc(r.status.rawValue))\(r.reason.map { ": " + esc($0) } ?? "")</td><td>\(esc(r.summary))</td>"
                + "<td>\(mine.map { "<a href=\"\(attr($0))\">\(esc(PathText.lastComponent($0)))</a>" }.joined(separator: " "))</td></tr>"
            sections += "<article id=\"\(attr(anchor))\"><h3>\(esc(r.master.processName)) — \(esc(RepositoryCheckout.name(of: r.target)))</h3>"
                + "<p>\(esc(r.summary))</p><details><summary>The section as in \(esc("masters/\(base).md"))</summary><pre>\(esc(ReportWriter.masterMarkdown(r)))</pre></details></article>"
        }
        return html + "</tbody></table>" + sections
    }

    // MARK: - Text

    static func esc(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(ch)
            }
        }
        return out
    }

    /// An attribute value (a relative link): escaped, and never a scheme (javascript:, http:) from data.
    static func attr(_ s: String) -> String { esc(s.contains(":") ? s.replacingOccurrences(of: ":", with: "%3A") : s) }

    static func fmt(_ x: Double) -> String { String(format: "%.1f", x) }
}

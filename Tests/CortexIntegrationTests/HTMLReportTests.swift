import CortexControl
import CortexCore
import CortexOrchestration
import Foundation
import Testing

/// The HTML report of a real full run (the golden fixture: six masters, findings, a plan), rendered by
/// headless Chromium through the DevTools protocol (scripts/render-html): the page loads with no
/// network request, no console message of level error and no exception, holds its charts as inline
/// SVG, and has no script. The PNG is kept where CORTEX_REPORT_PNG says (for a person to look at).
@Suite(.serialized) struct HTMLReportTests {
    @Test func theReportOfAFullRunRendersOfflineInChromium() async throws {
        let (_, state) = try await GoldenRunTests.fullRun("cortex-html")
        let dir = URL(fileURLWithPath: try #require(state.reportDir))
        let page = dir.appendingPathComponent("report.html")
        let html = try String(contentsOf: page, encoding: .utf8)
        #expect(!html.lowercased().contains("<script"), "no JavaScript")
        #expect(html.range(of: #"(src|href)="(https?:)?//"#, options: .regularExpression) == nil, "no remote resource")
        for section in ["timeline", "work", "budget", "findings", "plan", "masters", "files"] { #expect(html.contains("<section id=\"\(section)\">"), "\(section)") }
        #expect(html.contains("href=\"masters/security-0.sarif\""), "links the SARIF file")
        #expect(html.contains("<a href=\"#master-security-0\">security-master</a>"))

        let png = try ProcessInfo.processInfo.environment["CORTEX_REPORT_PNG"].map { URL(fileURLWithPath: $0) } ?? (try temporaryDirectory("cortex-html-png")).appendingPathComponent("report.png")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try CatalogAPITests.python(SecurityMasterTests.root))
        process.arguments = [SecurityMasterTests.root.appendingPathComponent("scripts/render-html").path, page.path, png.path]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(stderr)")
        let result = try JSONText.parse(Array(stdout))
        print("render-html: \(String(decoding: stdout, as: UTF8.self))")
        #expect(result["requests"]?.arrayValue?.isEmpty == true, "network requests: \(result["requests"] ?? .null)")
        #expect(result["exceptions"]?.arrayValue?.isEmpty == true, "\(result["exceptions"] ?? .null)")
        let errors = (result["console"]?.arrayValue ?? []).filter { ["error", "assert"].contains($0["type"]?.stringValue ?? "") }
        #expect(errors.isEmpty, "console errors: \(errors)")
        #expect((result["svg_charts"]?.intValue ?? 0) >= 5)
        #expect(result["title"]?.stringValue == "Cortex run \(state.runID)")
        let size = (try FileManager.default.attributesOfItem(atPath: png.path)[.size] as? Int) ?? 0
        #expect(size > 20_000, "a PNG of \(size) bytes")
    }
}

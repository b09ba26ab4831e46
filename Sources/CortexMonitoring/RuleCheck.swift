import CortexCore
import Foundation

/// `promtool check rules` on generated rule files, when promtool is installed.
public enum RuleCheck {
    public enum Outcome: Sendable, Equatable {
        case passed(String)
        case failed(String)
        /// promtool is not on this machine (the report says so).
        case unavailable
    }

    /// promtool on PATH (or the usual places), if any.
    public static func promtool() -> String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/bin:/usr/local/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/promtool"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// `check` on a thread of its own (promtool is a subprocess; the cooperative pool must not wait on it).
    public static func checkOffloaded(_ text: String, name: String = "rules.yaml") async -> Outcome {
        do {
            return try await BlockingExecutor.offload("cortex-promtool") { check(text, name: name) }
        } catch {
            return .failed("could not run promtool: \(error)")
        }
    }

    /// Checks `text` as a rule file (written to a temporary file named `name`).
    public static func check(_ text: String, name: String = "rules.yaml", promtool given: String? = promtool()) -> Outcome {
        guard let promtool = given else { return .unavailable }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cortex-rules-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let file = dir.appendingPathComponent(name)
            try Data(text.utf8).write(to: file)
            let result = try Subprocess.run(promtool, ["check", "rules", file.path], timeout: .seconds(60))
            let output = (result.stdoutText + result.stderrText).replacingOccurrences(of: file.path, with: name).trimmingCharacters(in: .whitespacesAndNewlines)
            if result.timedOut { return .failed("promtool did not finish within 60 s") }
            return result.status == 0 ? .passed(output) : .failed(output)
        } catch {
            return .failed("could not run promtool: \(error)")
        }
    }
}

/// Grafana's HTTP API: dashboards created or replaced with `POST /api/dashboards/db`
/// (https://grafana.com/docs/grafana/latest/developers/http_api/dashboard/), over libcurl.
public struct GrafanaClient: Sendable {
    public var baseURL: String
    var token: String
    public var folderUID: String?

    public init(baseURL: String, token: String, folderUID: String? = nil) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        self.folderUID = folderUID
    }

    public struct APIError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Creates or replaces the dashboard (matched by its uid); returns its URL in Grafana.
    public func push(_ dashboard: JSONValue, message: String) async throws -> String {
        var board = dashboard.objectValue ?? [:]
        board["id"] = .null  // a new dashboard or, with overwrite, the one with this uid
        var body: [String: JSONValue] = ["dashboard": .object(board), "overwrite": true, "message": .string(message)]
        if let folderUID { body["folderUid"] = .string(folderUID) }
        let response: HTTPResponse
        do {
            response = try await HTTPClient.request("POST", url: baseURL + "/api/dashboards/db",
                                                    headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json", "Accept": "application/json"],
                                                    body: Array(JSONValue.object(body).description.utf8), timeout: .seconds(30))
        } catch {
            throw APIError(description: "Grafana \(baseURL) unreachable: \(error)")
        }
        let json = (try? JSONText.parse(response.text)) ?? .null
        guard response.status == 200, let url = json["url"]?.stringValue else {
            throw APIError(description: "Grafana refused dashboard \(dashboard["uid"]?.stringValue ?? "?"): HTTP \(response.status) \(json["message"]?.stringValue ?? response.text.prefix(200).description)")
        }
        return baseURL + url
    }
}

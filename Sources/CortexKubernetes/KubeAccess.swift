import CortexCore
import Foundation
import Yams

/// How to reach a Kubernetes API server: its URL, a bearer token or a client certificate, and the CA
/// to trust. From inside a pod (the service account) or from a kubeconfig's current context.
public struct KubeAccess: Sendable, Equatable {
    public var server: String
    public var bearerToken: String?
    public var tls: TLSOptions
    /// Where the access came from, for messages ("in-cluster", "kubeconfig /root/.kube/config context k3s").
    public var origin: String

    public init(server: String, bearerToken: String? = nil, tls: TLSOptions = TLSOptions(), origin: String) {
        self.server = server.hasSuffix("/") ? String(server.dropLast()) : server
        self.bearerToken = bearerToken
        self.tls = tls
        self.origin = origin
    }

    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// In a pod: KUBERNETES_SERVICE_HOST/PORT, the mounted service-account token and CA. Nil outside a cluster.
    public static func inCluster(environment: [String: String] = ProcessInfo.processInfo.environment,
                                 directory: String = serviceAccountDirectory) throws -> KubeAccess? {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else { return nil }
        let port = environment["KUBERNETES_SERVICE_PORT"] ?? "443"
        guard let token = try? String(contentsOfFile: "\(directory)/token", encoding: .utf8) else {
            throw KubeConfigError("KUBERNETES_SERVICE_HOST is set but no service-account token at \(directory)/token (automountServiceAccountToken: false?)")
        }
        let ca = FileManager.default.contents(atPath: "\(directory)/ca.crt").map { [UInt8]($0) }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return KubeAccess(server: "https://\(hostPart):\(port)", bearerToken: token.trimmingCharacters(in: .whitespacesAndNewlines),
                          tls: TLSOptions(caPEM: ca), origin: "in-cluster service account")
    }

    /// The current (or named) context of a kubeconfig file.
    public static func kubeconfig(path: String, context wanted: String? = nil) throws -> KubeAccess {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw KubeConfigError("cannot read kubeconfig \(path)") }
        let base = URL(fileURLWithPath: path).deletingLastPathComponent()
        return try kubeconfig(yaml: text, origin: path, relativeTo: base, context: wanted)
    }

    /// Parses kubeconfig YAML (files it names are read relative to `relativeTo`).
    public static func kubeconfig(yaml text: String, origin: String, relativeTo base: URL, context wanted: String? = nil) throws -> KubeAccess {
        let root: [String: Any]
        do {
            guard let parsed = try Yams.load(yaml: text) as? [String: Any] else { throw KubeConfigError("\(origin) is not a kubeconfig (not a YAML mapping)") }
            root = parsed
        } catch let e as KubeConfigError {
            throw e
        } catch {
            throw KubeConfigError("\(origin) is not valid YAML: \(error)")
        }
        func named(_ list: String, _ name: String) throws -> [String: Any] {
            let items = root[list] as? [[String: Any]] ?? []
            guard let item = items.first(where: { $0["name"] as? String == name }) else {
                throw KubeConfigError("\(origin): no \(list.dropLast()) named '\(name)'")
            }
            return item[String(list.dropLast())] as? [String: Any] ?? [:]
        }
        guard let contextName = wanted ?? root["current-context"] as? String, !contextName.isEmpty else {
            throw KubeConfigError("\(origin) has no current-context (set one with kubectl config use-context)")
        }
        let context = try named("contexts", contextName)
        guard let clusterName = context["cluster"] as? String else { throw KubeConfigError("\(origin): context '\(contextName)' names no cluster") }
        let cluster = try named("clusters", clusterName)
        guard let server = cluster["server"] as? String, !server.isEmpty else { throw KubeConfigError("\(origin): cluster '\(clusterName)' has no server") }
        let user = try (context["user"] as? String).map { try named("users", $0) } ?? [:]

        func material(_ data: String, _ file: String, in object: [String: Any]) throws -> [UInt8]? {
            if let b64 = object[data] as? String {
                guard let bytes = Data(base64Encoded: b64.filter { !$0.isWhitespace }) else { throw KubeConfigError("\(origin): \(data) is not base64") }
                return [UInt8](bytes)
            }
            if let f = object[file] as? String {
                let url = f.hasPrefix("/") ? URL(fileURLWithPath: f) : base.appendingPathComponent(f)
                guard let bytes = FileManager.default.contents(atPath: url.path) else { throw KubeConfigError("\(origin): cannot read \(file) \(url.path)") }
                return [UInt8](bytes)
            }
            return nil
        }
        if let exec = user["exec"] as? [String: Any] {
            throw KubeConfigError("\(origin): context '\(contextName)' authenticates with an exec plugin (\(exec["command"] as? String ?? "?")), which Cortex does not support; give it a service-account token or a client certificate")
        }
        if user["auth-provider"] != nil {
            throw KubeConfigError("\(origin): context '\(contextName)' uses an auth-provider, which Cortex does not support; use a token or a client certificate")
        }
        var token = user["token"] as? String
        if token == nil, let file = user["tokenFile"] as? String {
            token = try String(contentsOfFile: file.hasPrefix("/") ? file : base.appendingPathComponent(file).path, encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let tls = TLSOptions(
            caPEM: try material("certificate-authority-data", "certificate-authority", in: cluster),
            clientCertificatePEM: try material("client-certificate-data", "client-certificate", in: user),
            clientKeyPEM: try material("client-key-data", "client-key", in: user),
            insecureSkipVerify: cluster["insecure-skip-tls-verify"] as? Bool ?? false
        )
        if (tls.clientCertificatePEM == nil) != (tls.clientKeyPEM == nil) {
            throw KubeConfigError("\(origin): user of context '\(contextName)' has a client certificate without a key (or a key without a certificate)")
        }
        return KubeAccess(server: server, bearerToken: token, tls: tls, origin: "kubeconfig \(origin) context \(contextName)")
    }

    /// The access CORTEX_KUBERNETES asks for: nil when `off`, or `auto` finds none; an error when `on` finds none.
    public static func configured(_ mode: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> KubeAccess? {
        switch mode {
        case "off": return nil
        case "on": return try discover(environment: environment)
        case "auto": return try? discover(environment: environment)
        default: throw ConfigurationError("CORTEX_KUBERNETES must be on, off or auto, got '\(mode)'")
        }
    }

    /// In-cluster when running in a pod, else KUBECONFIG (its first file) or ~/.kube/config.
    public static func discover(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> KubeAccess {
        if let access = try inCluster(environment: environment) { return access }
        let path = environment["KUBECONFIG"].flatMap { $0.split(separator: ":").first.map(String.init) }
            ?? "\(environment["HOME"] ?? NSHomeDirectory())/.kube/config"
        return try kubeconfig(path: path)
    }
}

/// A kubeconfig or service-account problem, said plainly.
public struct KubeConfigError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

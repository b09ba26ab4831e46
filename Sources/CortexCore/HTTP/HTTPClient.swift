import CCurl
import Foundation

/// An HTTP response: status, headers (lower-cased names) and body.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [String: String]
    public var body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// A failed HTTP exchange (no response at all); HTTP error statuses are responses, not errors.
public struct HTTPClientError: Error, CustomStringConvertible {
    public var description: String
}

/// TLS material for a request: a CA bundle to trust, a client certificate and key (all PEM, in memory),
/// or no verification at all (only when a kubeconfig asks for it).
public struct TLSOptions: Sendable, Equatable {
    public var caPEM: [UInt8]?
    public var clientCertificatePEM: [UInt8]?
    public var clientKeyPEM: [UInt8]?
    public var insecureSkipVerify: Bool

    public init(caPEM: [UInt8]? = nil, clientCertificatePEM: [UInt8]? = nil, clientKeyPEM: [UInt8]? = nil, insecureSkipVerify: Bool = false) {
        self.caPEM = caPEM
        self.clientCertificatePEM = clientCertificatePEM
        self.clientKeyPEM = clientKeyPEM
        self.insecureSkipVerify = insecureSkipVerify
    }

    /// Sets these options on a libcurl easy handle (the blobs are copied by libcurl).
    func apply(to handle: UnsafeMutableRawPointer) {
        if let ca = caPEM { ca.withUnsafeBytes { _ = cortex_curl_set_blob(handle, CURLOPT_CAINFO_BLOB, $0.baseAddress, $0.count) } }
        if let cert = clientCertificatePEM {
            cert.withUnsafeBytes { _ = cortex_curl_set_blob(handle, CURLOPT_SSLCERT_BLOB, $0.baseAddress, $0.count) }
            cortex_curl_set_string(handle, CURLOPT_SSLCERTTYPE, "PEM")
        }
        if let key = clientKeyPEM {
            key.withUnsafeBytes { _ = cortex_curl_set_blob(handle, CURLOPT_SSLKEY_BLOB, $0.baseAddress, $0.count) }
            cortex_curl_set_string(handle, CURLOPT_SSLKEYTYPE, "PEM")
        }
        if insecureSkipVerify {
            cortex_curl_set_long(handle, CURLOPT_SSL_VERIFYPEER, 0)
            cortex_curl_set_long(handle, CURLOPT_SSL_VERIFYHOST, 0)
        }
    }
}

/// A small blocking HTTP client over libcurl; each request runs on its own thread, never on the cooperative pool.
///
/// Credentials never come back out: the values of the request's credential headers (`Authorization`,
/// `x-api-key`, …) are replaced by `[REDACTED]` in every error response's body and headers (and in every
/// response when `redactAll` is set), so a server that echoes the key cannot put it into a log line,
/// a report or Redis.
public enum HTTPClient {
    static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    /// The largest response body read (64 MiB by default): a larger one fails the request instead of
    /// filling memory.
    public static let defaultMaxResponseBytes = 64 * 1024 * 1024

    /// Performs one request.
    public static func request(
        _ method: String = "GET", url: String, headers: [String: String] = [:], body: [UInt8]? = nil,
        timeout: Duration = .seconds(10), tls: TLSOptions? = nil, redactAll: Bool = false,
        maxResponseBytes: Int = defaultMaxResponseBytes
    ) async throws -> HTTPResponse {
        let executor = BlockingExecutor(name: "cortex-http")
        defer { executor.shutdown() }
        let response = try await executor.run {
            try perform(method, url: url, headers: headers, body: body, timeout: timeout, tls: tls, maxResponseBytes: maxResponseBytes)
        }
        guard redactAll || response.status >= 400 else { return response }
        return Redaction(secrets: Redaction.credentials(in: headers)).apply(to: response)
    }

    private final class Sink {
        var body: [UInt8] = []
        var headers: [String: String] = [:]
        var limit = Int.max
        var overflowed = false
    }

    static func perform(_ method: String, url: String, headers: [String: String], body: [UInt8]?, timeout: Duration, tls: TLSOptions? = nil,
                        maxResponseBytes: Int = defaultMaxResponseBytes) throws -> HTTPResponse {
        _ = globalInit
        guard let handle = curl_easy_init() else { throw HTTPClientError(description: "curl_easy_init failed") }
        defer { curl_easy_cleanup(handle) }
        let sink = Sink()
        sink.limit = maxResponseBytes
        var list: UnsafeMutablePointer<curl_slist>?
        for (k, v) in headers { list = curl_slist_append(list, "\(k): \(v)") }
        defer { curl_slist_free_all(list) }

        cortex_curl_set_string(handle, CURLOPT_URL, url)
        cortex_curl_set_string(handle, CURLOPT_CUSTOMREQUEST, method)
        cortex_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
        cortex_curl_set_long(handle, CURLOPT_TIMEOUT_MS, Int(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
        cortex_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, 5000)
        if let list { cortex_curl_set_slist(handle, CURLOPT_HTTPHEADER, list) }
        tls?.apply(to: handle)
        let unmanaged = Unmanaged.passRetained(sink)
        defer { unmanaged.release() }
        cortex_curl_set_pointer(handle, CURLOPT_WRITEDATA, unmanaged.toOpaque())
        cortex_curl_set_pointer(handle, CURLOPT_HEADERDATA, unmanaged.toOpaque())
        cortex_curl_set_write_function(handle) { ptr, size, count, context in
            let n = size * count
            guard let ptr, let context else { return n }
            let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
            if sink.body.count + n > sink.limit {
                sink.overflowed = true
                return 0  // anything but n makes libcurl abort the transfer (CURLE_WRITE_ERROR)
            }
            sink.body.append(contentsOf: UnsafeRawBufferPointer(start: ptr, count: n))
            return n
        }
        cortex_curl_set_header_function(handle) { ptr, size, count, context in
            let n = size * count
            guard let ptr, let context else { return n }
            let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
            let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: n), as: UTF8.self)
            if let colon = line.firstIndex(of: ":") {
                let name = line[..<colon].lowercased()
                sink.headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
            }
            return n
        }
        var bodyCopy = body ?? []
        let code: CURLcode = bodyCopy.withUnsafeMutableBytes { raw in
            if body != nil {
                cortex_curl_set_long(handle, CURLOPT_POSTFIELDSIZE, raw.count)
                cortex_curl_set_pointer(handle, CURLOPT_POSTFIELDS, raw.baseAddress)
            }
            return curl_easy_perform(handle)
        }
        if sink.overflowed {
            throw HTTPClientError(description: "\(method) \(url): response larger than \(maxResponseBytes) bytes; not read")
        }
        guard code == CURLE_OK else {
            throw HTTPClientError(description: "\(method) \(url): \(String(cString: curl_easy_strerror(code)))")
        }
        var status = 0
        cortex_curl_get_response_code(handle, &status)
        return HTTPResponse(status: status, headers: sink.headers, body: sink.body)
    }
}

/// Replaces known secret values in text with `[REDACTED]`.
public struct Redaction: Sendable {
    /// The values to hide (shorter than 6 characters are ignored: they would redact ordinary words).
    public let secrets: [String]

    public init(secrets: [String]) {
        // Longest first, so a token is not half-replaced by a shorter secret it contains.
        self.secrets = Array(Set(secrets.filter { $0.utf8.count >= 6 })).sorted { $0.utf8.count > $1.utf8.count }
    }

    /// Request headers that carry credentials (lower-cased names).
    public static let credentialHeaders: Set<String> = [
        "authorization", "proxy-authorization", "x-api-key", "api-key", "private-token", "x-auth-token", "cookie",
    ]

    /// The credential values in request headers: the whole value and, for `Bearer x` / `token x` /
    /// `Basic x`, the part after the scheme.
    public static func credentials(in headers: [String: String]) -> [String] {
        var out: [String] = []
        for (name, value) in headers where credentialHeaders.contains(name.lowercased()) {
            out.append(value)
            if let space = value.firstIndex(of: " ") {
                out.append(String(value[value.index(after: space)...]).trimmingCharacters(in: .whitespaces))
            }
        }
        return out
    }

    /// `text` with every secret replaced.
    public func apply(to text: String) -> String {
        guard !secrets.isEmpty else { return text }
        var out = text
        for secret in secrets where out.contains(secret) {
            out = out.replacingOccurrences(of: secret, with: "[REDACTED]")
        }
        return out
    }

    /// The response with its body and header values redacted (the body only when it contains a secret).
    public func apply(to response: HTTPResponse) -> HTTPResponse {
        guard !secrets.isEmpty else { return response }
        var r = response
        let text = response.text
        let redacted = apply(to: text)
        if redacted != text { r.body = Array(redacted.utf8) }
        r.headers = response.headers.mapValues { apply(to: $0) }
        return r
    }
}

import CCurl
import Foundation

/// One line of a streamed response body, or the response's status and headers (first).
public enum HTTPStreamPart: Sendable {
    case head(status: Int, headers: [String: String])
    case line(String)
}

extension HTTPClient {
    /// A GET whose body is read line by line as it arrives (a Kubernetes `?watch=1` stream: one JSON
    /// event per line). The stream ends when the server closes the response or `timeout` passes; it is
    /// cancelled (the transfer aborted at the next received bytes) when the consumer stops iterating.
    /// An error status still yields its head and body lines: the caller decides what a 410 means.
    public static func streamLines(url: String, headers: [String: String] = [:], timeout: Duration, tls: TLSOptions? = nil) -> AsyncThrowingStream<HTTPStreamPart, Error> {
        AsyncThrowingStream { continuation in
            let sink = LineSink(continuation: continuation)
            continuation.onTermination = { _ in sink.cancelled.withLock { $0 = true } }
            // A thread of its own: the transfer blocks for as long as the watch lasts.
            let thread = Thread {
                do {
                    try performStreaming(url: url, headers: headers, timeout: timeout, tls: tls, sink: sink)
                    sink.flush()
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            thread.name = "cortex-http-stream"
            thread.start()
        }
    }

    final class LineSink: @unchecked Sendable {
        let continuation: AsyncThrowingStream<HTTPStreamPart, Error>.Continuation
        let cancelled = Locked(false)
        var buffer: [UInt8] = []
        var headers: [String: String] = [:]
        var headSent = false
        var handle: UnsafeMutableRawPointer?

        init(continuation: AsyncThrowingStream<HTTPStreamPart, Error>.Continuation) { self.continuation = continuation }

        func sendHead() {
            guard !headSent, let handle else { return }
            headSent = true
            var status = 0
            cortex_curl_get_response_code(handle, &status)
            continuation.yield(.head(status: status, headers: headers))
        }

        func take(_ bytes: UnsafeRawBufferPointer) {
            sendHead()
            buffer.append(contentsOf: bytes)
            while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                if !line.trimmingCharacters(in: .whitespaces).isEmpty { continuation.yield(.line(line)) }
            }
        }

        func flush() {
            sendHead()
            if !buffer.isEmpty, !String(decoding: buffer, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                continuation.yield(.line(String(decoding: buffer, as: UTF8.self)))
            }
            buffer = []
        }
    }

    static func performStreaming(url: String, headers: [String: String], timeout: Duration, tls: TLSOptions?, sink: LineSink) throws {
        _ = globalInit
        guard let handle = curl_easy_init() else { throw HTTPClientError(description: "curl_easy_init failed") }
        defer { curl_easy_cleanup(handle) }
        sink.handle = handle
        var list: UnsafeMutablePointer<curl_slist>?
        for (k, v) in headers { list = curl_slist_append(list, "\(k): \(v)") }
        defer { curl_slist_free_all(list) }
        cortex_curl_set_string(handle, CURLOPT_URL, url)
        cortex_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
        cortex_curl_set_long(handle, CURLOPT_TIMEOUT_MS, Int(timeout / .milliseconds(1)))
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
            let sink = Unmanaged<LineSink>.fromOpaque(context).takeUnretainedValue()
            if sink.cancelled.value { return 0 }  // aborts the transfer: nobody reads the stream any more
            sink.take(UnsafeRawBufferPointer(start: ptr, count: n))
            return n
        }
        cortex_curl_set_header_function(handle) { ptr, size, count, context in
            let n = size * count
            guard let ptr, let context else { return n }
            let sink = Unmanaged<LineSink>.fromOpaque(context).takeUnretainedValue()
            let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: n), as: UTF8.self)
            if line.hasPrefix("HTTP/") { sink.headers = [:] }
            if let colon = line.firstIndex(of: ":") {
                sink.headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
            }
            return n
        }
        let code = curl_easy_perform(handle)
        if sink.cancelled.value { return }
        // A watch that runs into its own timeout ended normally: the caller reconnects from its resourceVersion.
        guard code == CURLE_OK || code == CURLE_OPERATION_TIMEDOUT else {
            throw HTTPClientError(description: "GET \(url): \(String(cString: curl_easy_strerror(code)))")
        }
    }
}

import CortexCatalog
import CortexCore
import Foundation
import GraphQL
import HummingbirdWebSocket
import Logging

/// GraphQL over WebSocket with the graphql-transport-ws protocol (the `graphql-ws` library's protocol):
/// connection_init / connection_ack, ping / pong, subscribe / next / error / complete, and its close
/// codes (4400 bad message, 4401 unauthorized, 4403 forbidden, 4408 init timeout, 4409 duplicate id,
/// 4429 repeated init).
public struct GraphQLTransportWS: Sendable {
    public static let subprotocol = "graphql-transport-ws"
    let service: GraphQLService
    let auth: CatalogAuth
    let metrics: CortexMetrics
    let logger: Logger
    var initTimeout: Duration = .seconds(10)

    /// Runs one connection until the client or the server closes it.
    /// `upgradeAuthorization` is the Authorization header of the upgrade request, if any.
    func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, upgradeAuthorization: String?) async throws {
        metrics.catalogSubscribers(transport: "websocket", delta: 1)
        defer { metrics.catalogSubscribers(transport: "websocket", delta: -1) }
        // One writer task: subscription tasks and the reader all send through this stream.
        let (outgoing, send) = AsyncStream.makeStream(of: Outgoing.self)
        let writer = Task {
            for await item in outgoing {
                switch item {
                case .message(let text): try? await outbound.write(.text(text))
                case .close(let code, let reason):
                    try? await outbound.close(.unknown(code), reason: reason)
                    return
                }
            }
        }
        let state = Locked(ConnectionState())
        let timeout = Task {
            try await Task.sleep(for: initTimeout)
            if state.value.principal == nil { send.yield(.close(4408, "Connection initialisation timeout")) }
        }
        defer {
            timeout.cancel()
            for task in state.value.operations.values { task.cancel() }
            send.finish()
        }
        do {
            for try await message in inbound.messages(maxSize: 1 << 20) {
                guard case .text(let text) = message else {
                    send.yield(.close(4400, "binary messages are not part of graphql-transport-ws"))
                    break
                }
                if !handle(text, state: state, send: send, upgradeAuthorization: upgradeAuthorization) { break }
            }
        } catch {
            logger.debug("websocket ended: \(error)")
        }
        send.finish()
        _ = await writer.result
    }

    enum Outgoing: Sendable {
        case message(String)
        case close(UInt16, String)
    }

    struct ConnectionState: Sendable {
        var initReceived = false
        var principal: Principal?
        var operations: [String: Task<Void, Never>] = [:]
    }

    /// Handles one client message; false when the connection is being closed.
    func handle(_ text: String, state: Locked<ConnectionState>, send: AsyncStream<Outgoing>.Continuation, upgradeAuthorization: String?) -> Bool {
        guard let json = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)), let type = json["type"]?.stringValue else {
            send.yield(.close(4400, "Invalid message received: not a JSON object with a type"))
            return false
        }
        switch type {
        case "connection_init":
            if state.value.initReceived {
                send.yield(.close(4429, "Too many initialisation requests"))
                return false
            }
            state.withLock { $0.initReceived = true }
            let payload = json["payload"]
            let token = payload?["authorization"]?.stringValue ?? payload?["Authorization"]?.stringValue
                ?? payload?["token"]?.stringValue.map { "Bearer \($0)" } ?? upgradeAuthorization
            do {
                let principal = try auth.authorize(token, requires: .read)
                state.withLock { $0.principal = principal }
                send.yield(.message(#"{"type":"connection_ack"}"#))
                return true
            } catch {
                send.yield(.close(4403, "Forbidden: \(error)"))
                return false
            }
        case "ping":
            send.yield(.message(#"{"type":"pong"}"#))
            return true
        case "pong":
            return true
        case "subscribe":
            guard let principal = state.value.principal else {
                send.yield(.close(4401, "Unauthorized"))
                return false
            }
            guard let id = json["id"]?.stringValue, !id.isEmpty, let payload = json["payload"] else {
                send.yield(.close(4400, "Invalid message received: subscribe needs an id and a payload"))
                return false
            }
            if state.value.operations[id] != nil {
                send.yield(.close(4409, "Subscriber for \(id) already exists"))
                return false
            }
            let request: GraphQLRequestBody
            do {
                request = try GraphQLRequestBody(json: payload)
            } catch {
                send.yield(.close(4400, "Invalid message received: \(error)"))
                return false
            }
            let task = Task { await run(id: id, request: request, principal: principal, send: send, state: state) }
            state.withLock { $0.operations[id] = task }
            return true
        case "complete":
            if let id = json["id"]?.stringValue, let task = state.withLock({ $0.operations.removeValue(forKey: id) }) { task.cancel() }
            return true
        default:
            send.yield(.close(4400, "Invalid message received: unknown type '\(type)'"))
            return false
        }
    }

    /// Runs one operation: a subscription streams `next` until it ends or the client completes it;
    /// a query or mutation sends one `next`. Errors before execution are an `error` message.
    func run(id: String, request: GraphQLRequestBody, principal: Principal, send: AsyncStream<Outgoing>.Continuation, state: Locked<ConnectionState>) async {
        func message(_ type: String, _ payload: String?) -> String {
            let idText = JSONValue.string(id).description
            return payload.map { #"{"id":\#(idText),"type":"\#(type)","payload":\#($0)}"# } ?? #"{"id":\#(idText),"type":"\#(type)"}"#
        }
        defer { _ = state.withLock { $0.operations.removeValue(forKey: id) } }
        let prepared: GraphQLService.Prepared
        do {
            // The connection authenticated at connection_init; each operation still needs its scope.
            prepared = try service.prepare(request) { scope in
                if scope > principal.scope {
                    throw CatalogError(.forbidden, "this connection has \(principal.scope.rawValue) scope; \(scope.rawValue) is needed")
                }
                return principal
            }
        } catch {
            send.yield(.message(message("error", errorsJSON(error.errors))))
            return
        }
        if prepared.operation == .subscription {
            switch await service.subscribe(prepared, principal: principal) {
            case .failure(let errors):
                send.yield(.message(message("error", errorsJSON(errors.errors))))
                return
            case .success(let stream):
                do {
                    for try await result in stream {
                        send.yield(.message(message("next", GraphQLService.encode(GraphQLService.withCodes(result)))))
                    }
                } catch {
                    if Task.isCancelled { return }
                    send.yield(.message(message("error", errorsJSON([GraphQLError(message: "\(error)")]))))
                    return
                }
            }
        } else {
            do {
                send.yield(.message(message("next", try await service.executeJSON(prepared))))
            } catch {
                // Refused before it ran (the client's concurrency limit): an `error` message, as for
                // any operation that could not start.
                send.yield(.message(message("error", errorsJSON(error.errors))))
                return
            }
        }
        if !Task.isCancelled { send.yield(.message(message("complete", nil))) }
    }

    func errorsJSON(_ errors: [GraphQLError]) -> String { GraphQLService.encode(errors) }
}

import CortexCore
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1

/// Serves HTTP/1 with the WebSocket upgrade, and closes connections whose first request head does not
/// arrive in time (slowloris).
///
/// Hummingbird's `idleTimeout` closes a connection that has had no complete request part for that
/// long — which covers idle keep-alive connections and slow heads of later requests, since a head
/// read byte by byte is no part until it is complete. With the WebSocket upgrade, though, that
/// handler joins the pipeline only once the first head has been read (the upgrade decision needs it),
/// so the first head has no deadline. `FirstHeadTimeoutHandler`, placed right after the HTTP decoder
/// from the start, gives it one and leaves the pipeline when the head has arrived.
struct TimedHTTPChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let headTimeout: Duration
    let refusals: RefusalLog

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try pipeline.addHandler(
                FirstHeadTimeoutHandler(timeout: .init(headTimeout), refusals: refusals, remote: channel.remoteAddress?.description ?? "unknown"),
                position: .after(decoder)
            )
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// Closes the connection when no complete request head has arrived `timeout` after it opened; once
/// one has, removes itself (later requests are the idle timeout's, and after a WebSocket upgrade the
/// pipeline carries frames, not HTTP parts).
final class FirstHeadTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    let timeout: TimeAmount
    let refusals: RefusalLog
    let remote: String
    private var timer: Scheduled<Void>?
    private var headSeen = false

    init(timeout: TimeAmount, refusals: RefusalLog, remote: String) {
        self.timeout = timeout
        self.refusals = refusals
        self.remote = remote
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !headSeen, case .head = unwrapInboundIn(data) {
            headSeen = true
            disarm()
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireChannelRead(data)
    }

    private func arm(_ context: ChannelHandlerContext) {
        guard timer == nil, !headSeen else { return }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) { [self] in
            let context = loopBound.value
            timer = nil
            guard !headSeen, context.channel.isActive else { return }
            refusals.refused("header_timeout", client: remote, query: nil,
                             "no complete request head within \(timeout.nanoseconds / 1_000_000) ms; connection closed")
            // Told as the client giving up on its request (input closed) before closing: the upgrade
            // handler downstream then ends quietly, where a bare close would have it log an error.
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            if context.channel.isActive { context.close(promise: nil) }
        }
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
    }
}

extension HTTPServerBuilder {
    /// HTTP/1 with the WebSocket upgrade on `webSocketRouter`, an idle timeout, and a deadline for
    /// the first request head (see `TimedHTTPChannel`).
    static func catalog<WSRouter: HTTPResponderBuilder & _HB_SendableMetatype>(
        webSocketRouter: WSRouter, headTimeout: Duration, idleTimeout: Duration, refusals: RefusalLog
    ) -> HTTPServerBuilder where WSRouter.Responder.Context: WebSocketRequestContext {
        let webSocketResponder = webSocketRouter.buildResponder()
        return .init { responder in
            TimedHTTPChannel(
                base: HTTP1WebSocketUpgradeChannel(
                    responder: responder, webSocketResponder: webSocketResponder,
                    configuration: .init(http1: .init(idleTimeout: .init(idleTimeout)))
                ),
                headTimeout: headTimeout, refusals: refusals
            )
        }
    }
}

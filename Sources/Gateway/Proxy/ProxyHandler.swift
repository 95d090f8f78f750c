import Foundation
import NIOCore
import NIOHTTP1

/// Serves one client connection: collects each request, then hands it to an `Exchange`.
final class ProxyHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case receiving(HTTPRequestHead, ByteBuffer)
        /// The body went over the limit; 413 is sent and the rest is dropped.
        case rejecting
        case exchanging(Exchange)
    }

    private let runtime: GatewayRuntime
    private let pool: UpstreamPool
    private var state = State.idle

    init(runtime: GatewayRuntime, pool: UpstreamPool) {
        self.runtime = runtime
        self.pool = pool
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.headers["expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
            state = .receiving(head, context.channel.allocator.buffer(capacity: 512))
        case .body(var part):
            guard case .receiving(let head, var body) = state else { return }
            if body.readableBytes + part.readableBytes > runtime.options.maxRequestBody {
                state = .rejecting
                let exchange = Exchange(runtime: runtime, pool: pool, handler: self, context: context, head: head, body: body)
                exchange.reject(status: .payloadTooLarge, message: "request body is larger than \(runtime.options.maxRequestBody) bytes", type: "invalid_request_error", reason: "body_too_large", closeAfter: true)
                return
            }
            state = .idle  // drop the reference so the buffer is uniquely owned while appending
            body.writeBuffer(&part)
            state = .receiving(head, body)
        case .end:
            switch state {
            case .receiving(let head, let body):
                let exchange = Exchange(runtime: runtime, pool: pool, handler: self, context: context, head: head, body: body)
                state = .exchanging(exchange)
                exchange.start()
            case .rejecting:
                state = .idle
            case .idle, .exchanging:
                break
            }
        }
    }

    /// Called by the exchange when the response to the client is complete.
    func exchangeFinished(_ exchange: Exchange) {
        if case .exchanging(let current) = state, current === exchange { state = .idle }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .exchanging(let exchange) = state { exchange.clientClosed() }
        state = .idle
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

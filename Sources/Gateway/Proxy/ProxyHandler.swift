import NIOCore

/// Serves one client connection: parses each request off the wire, collects its body,
/// then hands it to an `Exchange`. Requests a client pipelines wait, unparsed, until the
/// exchange before them has finished.
final class ProxyHandler: ChannelInboundHandler, MessageParserDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let runtime: GatewayRuntime
    private let pool: UpstreamPool
    private let parser = MessageParser(kind: .request)
    private var context: ChannelHandlerContext?
    private var body = ByteBuffer()
    /// The request's body is over the limit: 413 was sent and the connection closes.
    private var rejecting = false
    private var exchange: Exchange?
    /// Input that arrived while an exchange ran (a pipelined request).
    private var unparsed: ByteBuffer?
    private var parsing = false
    private var closed = false

    /// How much a client may send ahead while its previous request is served.
    private var unparsedLimit: Int { runtime.options.maxRequestBody + 64 * 1024 }

    init(runtime: GatewayRuntime, pool: UpstreamPool) {
        self.runtime = runtime
        self.pool = pool
        parser.delegate = self
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if exchange != nil || unparsed != nil {
            if unparsed == nil { unparsed = buffer } else { unparsed!.writeBuffer(&buffer) }
            if unparsed!.readableBytes > unparsedLimit { close(context) }
            return
        }
        parse(&buffer, context: context)
    }

    /// Parses requests from `buffer` until it is used up or one is being served.
    private func parse(_ buffer: inout ByteBuffer, context: ChannelHandlerContext) {
        parsing = true
        defer { parsing = false }
        while buffer.readableBytes > 0, exchange == nil, !closed {
            do {
                try parser.feed(&buffer)
            } catch {
                let failure = error as? MessageParser.Failure
                badRequest(context, message: "malformed HTTP request: \(failure?.description ?? "\(error)")")
                return
            }
        }
        if buffer.readableBytes > 0, !closed { unparsed = buffer }
    }

    // MARK: Parser

    func parsedHead(_ parser: MessageParser) -> Bool {
        guard let context else { return true }
        let head = parser.head
        if let i = head.headers.index(of: "expect"), head.headers.valueHasToken("100-continue", at: i) {
            var out = context.channel.allocator.buffer(capacity: 32)
            out.writeStaticString(head.isHTTP10 ? "HTTP/1.0 100 Continue\r\n\r\n" : "HTTP/1.1 100 Continue\r\n\r\n")
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        }
        let limit = runtime.options.maxRequestBody
        if let length = head.contentLength, length > limit {
            tooLarge(context, head: head)
            return true
        }
        body = ByteBuffer()
        return true
    }

    func parsedBody(_ parser: MessageParser, _ part: ByteBuffer) {
        guard !rejecting, let context else { return }
        if body.readableBytes + part.readableBytes > runtime.options.maxRequestBody {
            tooLarge(context, head: parser.head)
            return
        }
        if body.readableBytes == 0 {
            // Most bodies come in one piece: keep it as it came, without a copy.
            body = part
            return
        }
        var part = part
        body.writeBuffer(&part)
    }

    func parsedEnd(_ parser: MessageParser) {
        guard !rejecting, !closed, let context else { return }
        let exchange = Exchange(runtime: runtime, pool: pool, handler: self, context: context, head: parser.head, body: body)
        body = ByteBuffer()
        self.exchange = exchange
        exchange.start()
    }

    private func tooLarge(_ context: ChannelHandlerContext, head: MessageHead) {
        rejecting = true
        let exchange = Exchange(runtime: runtime, pool: pool, handler: self, context: context, head: head, body: body)
        body = ByteBuffer()
        exchange.reject(status: 413, message: "request body is larger than \(runtime.options.maxRequestBody) bytes", type: "invalid_request_error", reason: "body_too_large", closeAfter: true)
        closed = true
    }

    /// Answers bytes that are not HTTP with 400 and closes (nothing is logged: there is no request).
    private func badRequest(_ context: ChannelHandlerContext, message: String) {
        var line = JSONLine()
        line.add("message", message)
        line.add("type", "invalid_request_error")
        let payload = "{\"error\":\(line.finish())}"
        var out = context.channel.allocator.buffer(capacity: 160 + payload.utf8.count)
        out.writeStaticString("HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n")
        out.writeHeader("content-length", payload.utf8.count)
        out.writeStaticString("\r\n")
        out.writeString(payload)
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        close(context)
    }

    private func close(_ context: ChannelHandlerContext) {
        closed = true
        unparsed = nil
        context.close(promise: nil)
    }

    // MARK: Exchange

    /// Called by the exchange when the response to the client is complete.
    func exchangeFinished(_ exchange: Exchange) {
        guard self.exchange === exchange else { return }
        self.exchange = nil
        guard !parsing, unparsed != nil, let context else { return }
        // A pipelined request: parse it once the finishing call has unwound.
        context.eventLoop.assumeIsolated().execute { [self] in
            guard self.exchange == nil, !closed, var buffer = unparsed, let context = self.context else { return }
            unparsed = nil
            parse(&buffer, context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        unparsed = nil
        if let exchange { exchange.clientClosed() }
        exchange = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        close(context)
    }
}

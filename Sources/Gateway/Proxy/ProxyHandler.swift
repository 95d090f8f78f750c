import Foundation
import NIOCore

/// Serves one client connection: parses each request off the wire, checks its head,
/// collects its body, then hands it to an `Exchange`. Requests a client pipelines wait,
/// unparsed, until the exchange before them has finished. The connection's timeouts
/// (head, body, keep-alive idle) are a deadline its loop's `ClientConnections` watches.
final class ProxyHandler: ChannelInboundHandler, MessageParserDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let runtime: GatewayRuntime
    private let pool: UpstreamPool
    private let connections: ClientConnections
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

    /// Where this handler sits in `connections` (-1: not there).
    var slot = -1
    /// When the current wait ends (uptime nanoseconds; 0: none, while an exchange runs).
    var deadline: UInt64 = 0
    private enum Waiting { case head, body, idle }
    private var waiting = Waiting.head

    /// How much a client may send ahead while its previous request is served.
    private var unparsedLimit: Int { runtime.options.maxRequestBody + runtime.options.maxHead + runtime.options.maxTarget }

    init(runtime: GatewayRuntime, pool: UpstreamPool) {
        self.runtime = runtime
        self.pool = pool
        self.connections = pool.clients
        parser.limits = MessageParser.Limits(maxTarget: runtime.options.maxTarget, maxHead: runtime.options.maxHead)
        parser.delegate = self
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        connections.add(self)
        // A connection's first request: the head timeout runs from the accept.
        waiting = .head
        deadline = connections.deadline(after: connections.headerTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        connections.remove(self)
        runtime.connectionClosed()
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
            let before = buffer.readableBytes
            do {
                try parser.feed(&buffer)
                // http-parser stops short only at a message's end; never loop on no progress.
                if buffer.readableBytes == before && exchange == nil && !closed {
                    throw MessageParser.Failure(name: "STUCK", description: "the parser made no progress")
                }
            } catch {
                let failure = error as? MessageParser.Failure ?? MessageParser.Failure(name: "ERROR", description: "\(error)")
                refuse(context, status: failure.status, message: "malformed HTTP request: \(failure.description)", reason: Self.reason(failure.status))
                return
            }
        }
        if buffer.readableBytes > 0, !closed { unparsed = buffer }
        armDeadline()
    }

    /// Sets the wait that follows a read: none while an exchange runs; the head timeout
    /// from a request's first byte (not moved by later bytes); the body timeout afresh on
    /// each read within a body.
    private func armDeadline() {
        if exchange != nil || closed {
            deadline = 0
        } else if parser.inHead {
            if waiting != .head || deadline == 0 {
                waiting = .head
                deadline = connections.deadline(after: connections.headerTimeout)
            }
        } else if parser.inMessage {
            waiting = .body
            deadline = connections.deadline(after: connections.bodyTimeout)
        } else {
            // Between requests (one was answered while this read was parsed).
            waiting = .idle
            deadline = connections.deadline(after: connections.idleTimeout)
        }
    }

    private static func reason(_ status: Int) -> String {
        switch status {
        case 414: "uri_too_long"
        case 431: "header_too_large"
        default: "bad_request"
        }
    }

    // MARK: Parser

    func parsedHead(_ parser: MessageParser) -> Bool {
        guard let context else { return true }
        let failure = parser.withHead { head -> MessageParser.Failure? in
            if let failure = HeadCheck.request(&head) { return failure }
            switch RequestTarget.originForm(head.uri, method: head.method) {
            case .success(let target): head.uri = target
            case .failure(let failure): return failure
            }
            return nil
        }
        if let failure {
            parser.stop(failure)
            return true
        }
        let head = parser.head
        // A body that will be refused gets 413 at once, never `100 Continue` first.
        let limit = runtime.options.maxRequestBody
        if let length = head.contentLength, length > limit {
            tooLarge(context, head: head)
            return true
        }
        if let i = head.headers.index(of: "expect"), head.headers.valueHasToken("100-continue", at: i) {
            // Nor for a request no route takes: its 404 comes instead, and the connection
            // closes rather than read a body nobody wants.
            if runtime.plan.route(forPath: head.uri) == nil {
                refuseBeforeBody(context, head: head, status: 404, message: "no route matches path \(head.uri)", type: "not_found_error", reason: "no_route")
                return true
            }
            var out = context.channel.allocator.buffer(capacity: 32)
            out.writeStaticString(head.isHTTP10 ? "HTTP/1.0 100 Continue\r\n\r\n" : "HTTP/1.1 100 Continue\r\n\r\n")
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
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
        deadline = 0
        exchange.start()
    }

    private func tooLarge(_ context: ChannelHandlerContext, head: MessageHead) {
        refuseBeforeBody(context, head: head, status: 413, message: "request body is larger than \(runtime.options.maxRequestBody) bytes (--max-body-buffer)", type: "invalid_request_error", reason: "body_too_large")
    }

    /// Answers a request whose body will not be read (nor `100 Continue` sent), logs it like
    /// any answer, and closes the connection.
    private func refuseBeforeBody(_ context: ChannelHandlerContext, head: MessageHead, status: Int, message: String, type: String, reason: String) {
        rejecting = true
        let exchange = Exchange(runtime: runtime, pool: pool, handler: self, context: context, head: head, body: body)
        body = ByteBuffer()
        exchange.reject(status: status, message: message, type: type, reason: reason, closeAfter: true)
        closed = true
    }

    /// Answers a request refused on the wire (not HTTP, head over the limits, too slow)
    /// with a JSON error, logs and counts it like any answer, and closes.
    private func refuse(_ context: ChannelHandlerContext, status: Int, message: String, reason: String, duration: Duration = .zero) {
        guard !closed else { return }
        var line = JSONLine()
        line.add("message", message)
        line.add("type", "invalid_request_error")
        let payload = "{\"error\":\(line.finish())}"
        var out = context.channel.allocator.buffer(capacity: 160 + payload.utf8.count)
        Exchange.writeStatusLine(status: status, reason: "", http10: false, to: &out)
        out.writeStaticString("content-type: application/json\r\nconnection: close\r\n")
        out.writeHeader("content-length", payload.utf8.count)
        out.writeStaticString("\r\n")
        out.writeString(payload)
        let (method, target) = parser.requestSoFar
        let log = RequestLog(time: Date(), route: nil, endpoint: nil, method: method, path: target, status: status, duration: duration,
                             attempts: [], error: message, reason: reason)
        pool.flusher.add(runtime.finished(log, backend: nil, pool: pool))
        pool.flusher.writeLog()
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        close(context)
    }

    private func close(_ context: ChannelHandlerContext) {
        closed = true
        unparsed = nil
        deadline = 0
        context.close(promise: nil)
    }

    // MARK: Timeouts and drain (called by `connections`)

    /// The wait this connection was in has passed its deadline.
    func deadlinePassed() {
        deadline = 0
        guard let context, !closed, exchange == nil else { return }
        if parser.inMessage && !rejecting {
            let head = waiting == .head
            let timeout = head ? runtime.options.clientHeaderTimeout : runtime.options.clientBodyTimeout
            let what = head ? "request head not received within \(timeout.compactDescription) (--client-header-timeout)"
                : "no request body bytes for \(timeout.compactDescription) (--client-body-timeout)"
            refuse(context, status: 408, message: what, reason: "client_timeout", duration: timeout)
        } else {
            // Nothing of a request came: close without an answer (nothing to log).
            close(context)
        }
    }

    /// Shutting down: an idle connection closes now; a busy one after its answer.
    func drain() {
        guard let context, !closed else { return }
        if exchange == nil && !parser.inMessage { close(context) }
    }

    /// The drain timeout passed: close, cutting any request in flight (logged 499).
    func forceClose() {
        guard let context, !closed else { return }
        close(context)
    }

    // MARK: Exchange

    /// Called by the exchange when the response to the client is complete.
    func exchangeFinished(_ exchange: Exchange) {
        guard self.exchange === exchange else { return }
        self.exchange = nil
        guard let context, !closed else { return }
        if connections.draining {
            // The answer's last bytes go out with the loop's flush; the close follows them.
            closed = true
            unparsed = nil
            pool.flusher.close(afterRelease: context)
            return
        }
        guard !parsing, unparsed != nil else {
            if !parsing {
                waiting = .idle
                deadline = connections.deadline(after: connections.idleTimeout)
            }
            return
        }
        // A pipelined request: parse it once the finishing call has unwound.
        context.eventLoop.assumeIsolated().execute { [self] in
            guard self.exchange == nil, !closed, var buffer = unparsed, let context = self.context else { return }
            unparsed = nil
            waiting = .idle
            parse(&buffer, context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        unparsed = nil
        deadline = 0
        if let exchange { exchange.clientClosed() }
        exchange = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        close(context)
    }
}

/// Closes a connection accepted past `--max-connections`, before anything is read.
final class RefuseConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    func channelActive(context: ChannelHandlerContext) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

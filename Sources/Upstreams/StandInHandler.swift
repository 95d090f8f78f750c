import Foundation
import NIOCore
import NIOHTTP1
import Wire

/// Serves one connection of a stand-in.
final class StandInHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let standIn: StandIn
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var bodyTooLarge = false
    /// The largest request body a stand-in holds: twice the gateway's own limit. Past it
    /// (a client reaching the stand-in directly) the answer is 413, not unbounded memory.
    static let maxBody = 16 * 1024 * 1024

    init(standIn: StandIn) {
        self.standIn = standIn
    }

    func channelActive(context: ChannelHandlerContext) {
        if !standIn.connectionOpened(context.channel) {
            context.close(promise: nil)
            return
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        standIn.connectionClosed(context.channel)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
            bodyTooLarge = false
        case .body(var part):
            if bodyTooLarge { break }
            if body.readableBytes + part.readableBytes <= Self.maxBody { body.writeBuffer(&part) } else { bodyTooLarge = true; body.clear() }
        case .end:
            guard let head else { return }
            self.head = nil
            if let traceParent = head.headers.first(name: "traceparent") { standIn.noteTraceParent(traceParent) }
            if bodyTooLarge {
                var headers = HTTPHeaders()
                headers.add(name: "content-type", value: "application/json")
                headers.add(name: "connection", value: "close")
                let message = #"{"error":{"message":"Request body too large.","type":"invalid_request_error"}}"#
                send(context: context, head: head, status: .payloadTooLarge, headers: headers, body: message)
                context.close(promise: nil)
                return
            }
            respond(context: context, head: head)
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let (decision, latency) = standIn.decide()
        if latency > .zero {
            context.eventLoop.assumeIsolated().scheduleTask(in: latency.timeAmount) { [self] in
                guard context.channel.isActive else { return }
                self.carryOut(decision, context: context, head: head)
            }
        } else {
            carryOut(decision, context: context, head: head)
        }
    }

    private func carryOut(_ decision: StandIn.Decision, context: ChannelHandlerContext, head: HTTPRequestHead) {
        switch decision {
        case .rateLimit(let retryAfter):
            // The lab's ably7/http-429 image: a Python BaseHTTP server.
            var headers = HTTPHeaders()
            headers.add(name: "server", value: "BaseHTTP/0.6 Python/3.11.14")
            headers.add(name: "retry-after", value: String(retryAfter))
            headers.add(name: "content-type", value: "application/json")
            send(context: context, head: head, status: .tooManyRequests, headers: headers, body: MockOpenAI.rateLimitBody)
        case .bucketEmpty(let limit, let reset):
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "x-ratelimit-limit-requests", value: String(limit))
            headers.add(name: "x-ratelimit-remaining-requests", value: "0")
            headers.add(name: "x-ratelimit-reset-requests", value: String(format: "%.3fs", Double(reset.components.seconds) + Double(reset.components.attoseconds) * 1e-18))
            let body = #"{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#
            send(context: context, head: head, status: .tooManyRequests, headers: headers, body: body)
        case .error(let status):
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            let body = #"{"error":{"message":"The server had an error while processing your request.","type":"server_error"}}"#
            send(context: context, head: head, status: HTTPResponseStatus(statusCode: status), headers: headers, body: body)
        case .hang:
            break
        case .close:
            context.close(promise: nil)
        case .completion(let id, let tokenDelay, let delay, let shape, let seed):
            let bodyData = Data(body.readableBytesView)
            let answer = { [self] in
                self.complete(context: context, head: head, body: bodyData, id: id, tokenDelay: tokenDelay, shape: shape, seed: seed)
            }
            if delay > .zero {
                context.eventLoop.assumeIsolated().scheduleTask(in: delay.timeAmount) { answer() }
            } else {
                answer()
            }
        }
    }

    private func complete(context: ChannelHandlerContext, head: HTTPRequestHead, body: Data, id: String, tokenDelay: Duration,
                          shape: ModelShape, seed: UInt64) {
        guard let request = MockOpenAI.parse(body) else {
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            let message = #"{"error":{"message":"We could not parse the JSON body of your request.","type":"invalid_request_error"}}"#
            send(context: context, head: head, status: .badRequest, headers: headers, body: message)
            return
        }
        let created = Int(Date().timeIntervalSince1970)
        var headers = HTTPHeaders()
        headers.add(name: "x-request-id", value: "req_\(id.dropFirst("chatcmpl-".count))")
        if !shape.isDefault {
            completeShaped(context: context, head: head, request: request, headers: headers, id: id, created: created,
                           tokenDelay: tokenDelay, shape: shape, seed: seed)
            return
        }
        if !request.stream {
            headers.add(name: "content-type", value: "application/json")
            send(context: context, head: head, status: .ok, headers: headers, body: MockOpenAI.completion(for: request, id: id, created: created))
            return
        }
        headers.add(name: "content-type", value: "text/event-stream; charset=utf-8")
        headers.add(name: "cache-control", value: "no-cache")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
        let events = MockOpenAI.streamEvents(for: request, id: id, created: created)
        streamEvents(events[...], context: context, delay: tokenDelay, keepAlive: head.isKeepAlive)
    }

    private func streamEvents(_ events: ArraySlice<String>, context: ChannelHandlerContext, delay: Duration, keepAlive: Bool) {
        guard let first = events.first else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            if !keepAlive { context.close(promise: nil) }
            return
        }
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: first)))), promise: nil)
        let rest = events.dropFirst()
        if delay > .zero && !rest.isEmpty {
            context.eventLoop.assumeIsolated().scheduleTask(in: delay.timeAmount) { [self] in
                guard context.channel.isActive else { return }
                self.streamEvents(rest, context: context, delay: delay, keepAlive: keepAlive)
            }
        } else {
            streamEvents(rest, context: context, delay: delay, keepAlive: keepAlive)
        }
    }

    // MARK: Shaped answers

    /// A shaped answer: TTFT, then `count` tokens each after a drawn gap. Only one task is
    /// scheduled per stream at a time (the next token's, from the previous one's), and each
    /// token's event is built when it is sent, so a long answer holds no list of events.
    /// Token k is due at start + TTFT + the first k gaps: a late event loop delays a token
    /// but not the ones after it, so a loaded mock keeps the configured rate.
    private func completeShaped(context: ChannelHandlerContext, head: HTTPRequestHead, request: MockOpenAI.Request,
                                headers: HTTPHeaders, id: String, created: Int, tokenDelay: Duration, shape: ModelShape, seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let delayNanos = tokenDelay.timeAmount.nanoseconds
        let sentence = MockOpenAI.tokenPieces(MockOpenAI.reply(to: request.lastUserMessage))
        let (count, cut) = shape.outputTokens(requested: request.maxTokens, sentence: sentence.count, using: &rng)
        let first = shape.firstTokenNanos(tokenDelayNanos: delayNanos)
        var headers = headers
        if !request.stream {
            // The whole generation's time, then the answer at once, as a model would.
            var total = first
            for _ in 1..<max(count, 1) {
                let (sum, overflow) = total.addingReportingOverflow(shape.interTokenNanos(tokenDelayNanos: delayNanos, using: &rng))
                total = overflow ? .max : sum
            }
            headers.add(name: "content-type", value: "application/json")
            let body = MockOpenAI.shapedCompletion(for: request, id: id, created: created, count: count, cut: cut)
            context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(total)) { [self] in
                guard context.channel.isActive else { return }
                self.send(context: context, head: head, status: .ok, headers: headers, body: body)
            }
            return
        }
        headers.add(name: "content-type", value: "text/event-stream; charset=utf-8")
        headers.add(name: "cache-control", value: "no-cache")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
        let chunk = MockOpenAI.chunkHead(for: request, id: id, created: created)
        writeText(MockOpenAI.roleEvent(head: chunk), context: context)
        let stream = ShapedStream(chunk: chunk, request: request, pieces: sentence, count: count, cut: cut,
                                  shape: shape, tokenDelayNanos: delayNanos, rng: rng, keepAlive: head.isKeepAlive,
                                  due: .now() + .nanoseconds(first))
        scheduleToken(of: stream, context: context)
    }

    /// A shaped stream between its tokens. A class, so the one task scheduled per token
    /// captures one reference; the bytes every token event repeats are encoded once.
    final class ShapedStream {
        /// `data: {"id":…,"choices":[{"index":0,"delta":{"content":` and what follows the piece.
        let eventHead: [UInt8]
        static let eventTail = Array(#"},"logprobs":null,"finish_reason":null}]}"#.utf8) + [0x0A, 0x0A]
        let chunk: String
        let request: MockOpenAI.Request
        /// The reply's pieces, each already a JSON string (quoted, escaped).
        let quotedPieces: [[UInt8]]
        let pieces: [String]
        let count: Int
        let cut: Bool
        let shape: ModelShape
        let tokenDelayNanos: Int64
        var rng: SeededRandom
        let keepAlive: Bool
        /// When the next token is due.
        var due: NIODeadline
        /// The next token's index.
        var next = 0

        init(chunk: String, request: MockOpenAI.Request, pieces: [String], count: Int, cut: Bool, shape: ModelShape,
             tokenDelayNanos: Int64, rng: SeededRandom, keepAlive: Bool, due: NIODeadline) {
            self.chunk = chunk
            self.request = request
            self.pieces = pieces
            self.quotedPieces = pieces.map { Array(JSONString.quoted($0).utf8) }
            self.eventHead = Array("data: ".utf8) + Array(chunk.utf8) + Array(#"[{"index":0,"delta":{"content":"#.utf8)
            self.count = count
            self.cut = cut
            self.shape = shape
            self.tokenDelayNanos = tokenDelayNanos
            self.rng = rng
            self.keepAlive = keepAlive
            self.due = due
        }

        /// Token `i`'s event, written into `buffer`: the same bytes `MockOpenAI.tokenEvent` makes.
        func writeToken(_ i: Int, into buffer: inout ByteBuffer) {
            buffer.writeBytes(eventHead)
            if quotedPieces.isEmpty {
                buffer.writeString(JSONString.quoted(MockOpenAI.shapedPiece(i, of: pieces)))
            } else {
                let k = i % quotedPieces.count
                if i >= quotedPieces.count && k == 0 {
                    // A new round of the reply's words starts with a space: quoted afresh.
                    buffer.writeString(JSONString.quoted(MockOpenAI.shapedPiece(i, of: pieces)))
                } else {
                    buffer.writeBytes(quotedPieces[k])
                }
            }
            buffer.writeBytes(Self.eventTail)
        }
    }

    private func scheduleToken(of stream: ShapedStream, context: ChannelHandlerContext) {
        context.eventLoop.assumeIsolated().scheduleTask(deadline: stream.due) { [self] in
            guard context.channel.isActive else { return }
            let i = stream.next
            var buffer = context.channel.allocator.buffer(capacity: stream.eventHead.count + 96)
            stream.writeToken(i, into: &buffer)
            if i + 1 >= stream.count {
                // The last token goes out with the stop, usage and [DONE] events: one write.
                buffer.writeString(MockOpenAI.endEvents(head: stream.chunk, request: stream.request, completionTokens: stream.count, cut: stream.cut))
                context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
                if !stream.keepAlive { context.close(promise: nil) }
                return
            }
            context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            stream.next = i + 1
            stream.due = stream.due + .nanoseconds(stream.shape.interTokenNanos(tokenDelayNanos: stream.tokenDelayNanos, using: &stream.rng))
            self.scheduleToken(of: stream, context: context)
        }
    }

    private func writeText(_ text: String, context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: text)))), promise: nil)
    }

    private func send(context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus, headers: HTTPHeaders, body: String) {
        var headers = headers
        headers.add(name: "content-length", value: String(body.utf8.count))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if !head.isKeepAlive { context.close(promise: nil) }
    }
}

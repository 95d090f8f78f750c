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
    /// The encoder's context (for `rawWriter`), found once a connection.
    private var encoderContext: ChannelHandlerContext?
    /// The largest request body a stand-in holds: twice the gateway's own limit. Past it
    /// (a client reaching the stand-in directly) the answer is 413, not unbounded memory.
    static let maxBody = 16 * 1024 * 1024

    init(standIn: StandIn) {
        self.standIn = standIn
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        encoderContext = nil
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
        encoderContext = nil
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
        let stream = ListStream(events: events, handler: self, context: context, raw: rawWriter(for: head, context: context),
                                delayNanos: tokenDelay.timeAmount.nanoseconds, keepAlive: head.isKeepAlive)
        // The role event goes now; with a token delay the rest go on the loop's token clock.
        let now = Int64(truncatingIfNeeded: context.eventLoop.now.uptimeNanoseconds)
        if let next = stream.fire(now: now) {
            standIn.tokenClock(on: context.eventLoop).add(stream, due: next)
        }
    }

    /// The encoder's context, through which pre-framed chunks skip NIOHTTP1's encoder, when
    /// this response is chunked (HTTP/1.1 or later, not HEAD or CONNECT); else nil and the
    /// body goes through the encoder as `.body` parts.
    private func rawWriter(for head: HTTPRequestHead, context: ChannelHandlerContext) -> ChannelHandlerContext? {
        guard head.version.major == 1 && head.version.minor >= 1, head.method != .HEAD, head.method != .CONNECT else { return nil }
        if encoderContext == nil {
            encoderContext = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self)
        }
        return encoderContext
    }

    /// Writes a body part: pre-framed bytes past the encoder when `raw` is set (`framed`
    /// holds whole chunks), else through the pipeline (`framed` holds the bare bytes).
    fileprivate func writeBody(_ framed: ByteBuffer, raw: ChannelHandlerContext?, context: ChannelHandlerContext) {
        if let raw {
            raw.write(NIOAny(IOData.byteBuffer(framed)), promise: nil)
        } else {
            context.write(wrapOutboundOut(.body(.byteBuffer(framed))), promise: nil)
        }
    }

    /// Ends the body through the pipeline (the encoder writes the last chunk, the pipeline
    /// handler learns the response is over), flushes, and closes without keep-alive.
    fileprivate func endBody(context: ChannelHandlerContext, keepAlive: Bool) {
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if !keepAlive { context.close(promise: nil) }
    }

    /// Today's (unshaped) stream: a list of events, the first at once, then one every
    /// `delayNanos` on a fixed timeline (event k due at start + k delays).
    final class ListStream: ClockedStream {
        let events: [String]
        let handler: StandInHandler
        let context: ChannelHandlerContext
        let raw: ChannelHandlerContext?
        let delayNanos: Int64
        let keepAlive: Bool
        var next = 0
        var due: Int64 = 0

        init(events: [String], handler: StandInHandler, context: ChannelHandlerContext, raw: ChannelHandlerContext?,
             delayNanos: Int64, keepAlive: Bool) {
            self.events = events
            self.handler = handler
            self.context = context
            self.raw = raw
            self.delayNanos = max(0, delayNanos)
            self.keepAlive = keepAlive
        }

        func fire(now: Int64) -> Int64? {
            guard context.channel.isActive else { return nil }
            if next == 0 { due = now }
            var buffer = context.channel.allocator.buffer(capacity: 256)
            // Everything due by now: all of it at once without a delay.
            while next < events.count && (delayNanos == 0 || due <= now) {
                let event = events[next]
                if raw != nil {
                    RawChunk.writeSizeLine(event.utf8.count, into: &buffer)
                    buffer.writeString(event)
                    RawChunk.writeChunkEnd(into: &buffer)
                } else {
                    buffer.writeString(event)
                }
                next += 1
                let (d, overflow) = due.addingReportingOverflow(delayNanos)
                due = overflow ? .max : d
            }
            if buffer.readableBytes > 0 { handler.writeBody(buffer, raw: raw, context: context) }
            if next >= events.count {
                handler.endBody(context: context, keepAlive: keepAlive)
                return nil
            }
            context.flush()
            return due
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
        let raw = rawWriter(for: head, context: context)
        let role = MockOpenAI.roleEvent(head: chunk)
        var buffer = context.channel.allocator.buffer(capacity: role.utf8.count + 16)
        if raw != nil { RawChunk.writeSizeLine(role.utf8.count, into: &buffer) }
        buffer.writeString(role)
        if raw != nil { RawChunk.writeChunkEnd(into: &buffer) }
        writeBody(buffer, raw: raw, context: context)
        context.flush()
        let now = Int64(truncatingIfNeeded: context.eventLoop.now.uptimeNanoseconds)
        let (due, overflow) = now.addingReportingOverflow(first)
        let stream = ShapedStream(chunk: chunk, request: request, pieces: sentence, count: count, cut: cut,
                                  shape: shape, tokenDelayNanos: delayNanos, rng: rng, keepAlive: head.isKeepAlive,
                                  due: overflow ? .max : due)
        stream.attach(handler: self, context: context, raw: raw)
        standIn.tokenClock(on: context.eventLoop).add(stream, due: stream.due)
    }

    /// A shaped stream between its tokens, driven by its loop's `TokenClock`; the bytes every
    /// token event repeats are encoded once, and each token's event is built when it is sent,
    /// so a long answer holds no list of events. Token k is due at start + TTFT + the first k
    /// gaps: a late event loop delays a token but not the ones after it.
    final class ShapedStream: ClockedStream {
        /// `data: {"id":…,"choices":[{"index":0,"delta":{"content":` and what follows the piece.
        let eventHead: [UInt8]
        static let eventTail = Array(#"},"logprobs":null,"finish_reason":null}]}"#.utf8) + [0x0A, 0x0A]
        let chunk: String
        let request: MockOpenAI.Request
        /// The reply's pieces, each already a JSON string (quoted, escaped).
        let quotedPieces: [[UInt8]]
        /// The piece that starts each new round of the reply's words (with a space), quoted;
        /// with no pieces at all, `" token"` quoted.
        let quotedRoundStart: [UInt8]
        let pieces: [String]
        let count: Int
        let cut: Bool
        let shape: ModelShape
        let tokenDelayNanos: Int64
        var rng: SeededRandom
        let keepAlive: Bool
        /// When the next token is due (the loop's clock, nanoseconds).
        var due: Int64
        /// The next token's index.
        var next = 0
        private var handler: StandInHandler?
        private var context: ChannelHandlerContext?
        private var raw: ChannelHandlerContext?

        init(chunk: String, request: MockOpenAI.Request, pieces: [String], count: Int, cut: Bool, shape: ModelShape,
             tokenDelayNanos: Int64, rng: SeededRandom, keepAlive: Bool, due: Int64) {
            self.chunk = chunk
            self.request = request
            self.pieces = pieces
            self.quotedPieces = pieces.map { Array(JSONString.quoted($0).utf8) }
            self.quotedRoundStart = Array(JSONString.quoted(MockOpenAI.shapedPiece(pieces.count, of: pieces)).utf8)
            self.eventHead = Array("data: ".utf8) + Array(chunk.utf8) + Array(#"[{"index":0,"delta":{"content":"#.utf8)
            self.count = count
            self.cut = cut
            self.shape = shape
            self.tokenDelayNanos = tokenDelayNanos
            self.rng = rng
            self.keepAlive = keepAlive
            self.due = due
        }

        func attach(handler: StandInHandler, context: ChannelHandlerContext, raw: ChannelHandlerContext?) {
            self.handler = handler
            self.context = context
            self.raw = raw
        }

        /// Token `i`'s piece, quoted: `MockOpenAI.shapedPiece(i)` as JSON, from bytes encoded once.
        @inline(__always) func quotedPiece(_ i: Int) -> [UInt8] {
            if quotedPieces.isEmpty { return quotedRoundStart }
            let k = i % quotedPieces.count
            // A new round of the reply's words starts with a space.
            return i >= quotedPieces.count && k == 0 ? quotedRoundStart : quotedPieces[k]
        }

        /// The length of token `i`'s event.
        func tokenLength(_ i: Int) -> Int { eventHead.count + quotedPiece(i).count + Self.eventTail.count }

        /// Token `i`'s event, written into `buffer`: the same bytes `MockOpenAI.tokenEvent` makes.
        func writeToken(_ i: Int, into buffer: inout ByteBuffer) {
            writeToken(piece: quotedPiece(i), into: &buffer)
        }

        @inline(__always) func writeToken(piece: [UInt8], into buffer: inout ByteBuffer) {
            buffer.writeBytes(eventHead)
            buffer.writeBytes(piece)
            buffer.writeBytes(Self.eventTail)
        }

        /// Writes every token due by `now` (each its own chunk, in one buffer, one flush); the
        /// last goes in one chunk with the stop, usage and `[DONE]` events, then the body's end.
        func fire(now: Int64) -> Int64? {
            guard let context, let handler, context.channel.isActive else {
                self.context = nil
                self.handler = nil
                self.raw = nil
                return nil
            }
            let framed = raw != nil
            var buffer = context.channel.allocator.buffer(capacity: eventHead.count + 128)
            while due <= now {
                let i = next
                if i + 1 >= count {
                    let end = MockOpenAI.endEvents(head: chunk, request: request, completionTokens: count, cut: cut)
                    if framed { RawChunk.writeSizeLine(tokenLength(i) + end.utf8.count, into: &buffer) }
                    writeToken(i, into: &buffer)
                    buffer.writeString(end)
                    if framed { RawChunk.writeChunkEnd(into: &buffer) }
                    handler.writeBody(buffer, raw: raw, context: context)
                    handler.endBody(context: context, keepAlive: keepAlive)
                    self.context = nil
                    self.handler = nil
                    self.raw = nil
                    return nil
                }
                let piece = quotedPiece(i)
                if framed { RawChunk.writeSizeLine(eventHead.count + piece.count + Self.eventTail.count, into: &buffer) }
                writeToken(piece: piece, into: &buffer)
                if framed { RawChunk.writeChunkEnd(into: &buffer) }
                next = i + 1
                let (d, overflow) = due.addingReportingOverflow(shape.interTokenNanos(tokenDelayNanos: tokenDelayNanos, using: &rng))
                due = overflow ? .max : d
            }
            if buffer.readableBytes > 0 {
                handler.writeBody(buffer, raw: raw, context: context)
                // From the encoder's place when writing past it: the handlers before it have nothing to flush.
                (raw ?? context).flush()
            }
            return due
        }
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

import Foundation
import NIOCore
import NIOHTTP1

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
        case .completion(let id, let tokenDelay, let delay):
            let bodyData = Data(body.readableBytesView)
            let answer = { [self] in
                self.complete(context: context, head: head, body: bodyData, id: id, tokenDelay: tokenDelay)
            }
            if delay > .zero {
                context.eventLoop.assumeIsolated().scheduleTask(in: delay.timeAmount) { answer() }
            } else {
                answer()
            }
        }
    }

    private func complete(context: ChannelHandlerContext, head: HTTPRequestHead, body: Data, id: String, tokenDelay: Duration) {
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

    private func send(context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus, headers: HTTPHeaders, body: String) {
        var headers = headers
        headers.add(name: "content-length", value: String(body.utf8.count))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if !head.isKeepAlive { context.close(promise: nil) }
    }
}

import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import Gateway
@testable import Lab

/// Collects what a `MessageParser` hands over.
private final class Collected: MessageParserDelegate {
    var heads: [MessageHead] = []
    var bodies: [String] = [""]
    var ends = 0
    var noBody = false

    func parsedHead(_ parser: MessageParser) -> Bool {
        heads.append(parser.head)
        return !noBody
    }

    func parsedBody(_ parser: MessageParser, _ part: ByteBuffer) {
        bodies[bodies.count - 1] += String(buffer: part)
    }

    func parsedEnd(_ parser: MessageParser) {
        ends += 1
        bodies.append("")
    }
}

/// Feeds `text` in pieces of `step` bytes (or whole), the way reads may cut it.
private func parse(_ text: String, kind: MessageParser.Kind, step: Int? = nil, noBody: Bool = false) throws -> Collected {
    let parser = MessageParser(kind: kind)
    let collected = Collected()
    collected.noBody = noBody
    parser.delegate = collected
    let bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let end = min(bytes.count, offset + (step ?? bytes.count))
        var buffer = ByteBuffer(bytes: bytes[offset..<end])
        while buffer.readableBytes > 0 { try parser.feed(&buffer) }
        offset = end
    }
    return collected
}

@Suite("HTTP wire parsing (http-parser)")
struct WireParsingTests {
    static let request = "POST /http-429?x=1 HTTP/1.1\r\nHost: localhost:8080\r\nContent-Type: application/json\r\nX-Long-Header-Name: a value, with commas\r\nContent-Length: 13\r\n\r\n{\"model\":\"\"}\n"

    @Test("a request's head and body, whole and cut at every byte")
    func requestAtEverySplit() throws {
        for step in [nil, 1, 2, 3, 7, 50] as [Int?] {
            let c = try parse(Self.request, kind: .request, step: step)
            try #require(c.heads.count == 1, "step \(String(describing: step))")
            let head = c.heads[0]
            #expect(head.method == "POST")
            #expect(head.uri == "/http-429?x=1")
            #expect(head.keepAlive)
            #expect(head.contentLength == 13)
            #expect(head.headers.count == 4)
            #expect(head.headers.first("x-long-header-name") == "a value, with commas")
            #expect(head.headers.first("content-type") == "application/json")
            #expect(head.headers.name(at: 1) == "Content-Type")
            #expect(c.bodies[0] == "{\"model\":\"\"}\n")
            #expect(c.ends == 1)
        }
    }

    @Test("a chunked body is handed over de-chunked")
    func chunkedRequest() throws {
        let text = "POST /lab HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\nA\r\n1,\"b\":\"xy\"\r\n1\r\n}\r\n0\r\n\r\n"
        for step in [nil, 1, 4] as [Int?] {
            let c = try parse(text, kind: .request, step: step)
            #expect(c.heads.first?.chunked == true)
            #expect(c.heads.first?.contentLength == nil)
            #expect(c.bodies[0] == "{\"a\":1,\"b\":\"xy\"}")
            #expect(c.ends == 1)
        }
    }

    @Test("pipelined requests: feed stops after each message, leaving the next unread")
    func pipelined() throws {
        let two = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        let parser = MessageParser(kind: .request)
        let c = Collected()
        parser.delegate = c
        var buffer = ByteBuffer(string: two)
        try parser.feed(&buffer)
        #expect(c.ends == 1)
        #expect(c.heads.map(\.uri) == ["/a"])
        #expect(buffer.readableBytes == "GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8.count)
        try parser.feed(&buffer)
        #expect(c.heads.map(\.uri) == ["/a", "/b"])
        #expect(c.heads[1].keepAlive == false)
        #expect(buffer.readableBytes == 0)
    }

    @Test("bytes that are not HTTP throw, naming what is wrong")
    func malformed() throws {
        for bad in ["GARBAGE\r\n\r\n", "GET / HTTP/1.1\r\nBad Header\r\n\r\n", "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"] {
            let error = #expect(throws: MessageParser.Failure.self) { _ = try parse(bad, kind: .request) }
            #expect(error?.name.hasPrefix("HPE_") == true, "\(bad)")
            #expect(error?.description.isEmpty == false)
        }
    }

    @Test("responses: length, close-delimited to EOF, and HEAD with a length but no body")
    func responses() throws {
        let sized = try parse("HTTP/1.1 429 Too Many Requests\r\nretry-after: 60\r\ncontent-length: 2\r\n\r\n{}", kind: .response, step: 3)
        #expect(sized.heads.first?.status == 429)
        #expect(sized.heads.first?.reason == "Too Many Requests")
        #expect(sized.bodies[0] == "{}")
        #expect(sized.ends == 1)

        let parser = MessageParser(kind: .response)
        let c = Collected()
        parser.delegate = c
        var buffer = ByteBuffer(string: "HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end")
        try parser.feed(&buffer)
        #expect(c.ends == 0)
        #expect(parser.feedEOF())
        #expect(c.ends == 1)
        #expect(c.bodies[0] == "until the end")
        #expect(c.heads.first?.keepAlive == false)

        let head = try parse("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n", kind: .response, noBody: true)
        #expect(head.ends == 1)
        #expect(head.bodies[0] == "")

        // EOF in the middle of a sized body: not complete.
        let cut = MessageParser(kind: .response)
        var part = ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        try cut.feed(&part)
        #expect(!cut.feedEOF())
    }

    @Test("header names match without case; numbers are written without Strings")
    func headersAndNumbers() {
        let headers = WireHeaders([("X-Failover-Attempts", "a=429"), ("content-LENGTH", "5")])
        #expect(headers.nameIs("x-failover-attempts", at: 0))
        #expect(headers.nameIs("content-length", at: 1))
        #expect(!headers.nameIs("content-type", at: 1))
        #expect(headers.first("content-length") == "5")
        #expect(headers.index(of: "x-other") == nil)
        var out = ByteBuffer()
        for n in [0, 7, 10, 429, 65535, 1_000_000_007] {
            out.clear()
            out.writeDecimal(n)
            #expect(String(buffer: out) == String(n))
            out.clear()
            out.writeHex(n)
            #expect(String(buffer: out) == String(n, radix: 16))
        }
    }
}

// MARK: Over sockets

/// An upstream on raw bytes: answers each complete request (head, then `content-length`
/// bytes) with the next scripted response, and closes after it when told to.
final class RawUpstream: Sendable {
    struct Answer: Sendable {
        var bytes: String
        var closeAfter = false
    }
    let channel: Channel
    let requests = NIOLockedValueBox<[String]>([])
    let connections = NIOLockedValueBox(0)
    var port: Int { channel.localAddress!.port! }

    init(answer: @escaping @Sendable (Int) -> Answer) async throws {
        let requests = self.requests
        let connections = self.connections
        channel = try await ServerBootstrap(group: TestClient.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                connections.withLockedValue { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RawUpstreamHandler(requests: requests, answer: answer))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func stop() async { try? await channel.close() }
}

private final class RawUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let requests: NIOLockedValueBox<[String]>
    let answer: @Sendable (Int) -> RawUpstream.Answer
    var pending = ""

    init(requests: NIOLockedValueBox<[String]>, answer: @escaping @Sendable (Int) -> RawUpstream.Answer) {
        self.requests = requests
        self.answer = answer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        pending += String(buffer: unwrapInboundIn(data))
        while let headEnd = pending.range(of: "\r\n\r\n") {
            let head = pending[..<headEnd.lowerBound].lowercased()
            let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            let total = pending.utf8.distance(from: pending.utf8.startIndex, to: headEnd.upperBound.samePosition(in: pending.utf8)!) + length
            guard pending.utf8.count >= total else { return }
            let request = String(pending.utf8.prefix(total))!
            pending = String(pending.utf8.dropFirst(total))!
            let n = requests.withLockedValue { $0.append(request); return $0.count }
            let reply = answer(n)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: reply.bytes)), promise: nil)
            if reply.closeAfter {
                context.close(promise: nil)
                return
            }
        }
    }
}

/// A client on a plain socket: sends bytes as given, reads until the server closes or
/// `done` says the answer is whole (5 s at most).
enum RawClient {
    struct Failure: Error, CustomStringConvertible { var description: String }

    static func exchange(port: Int, send pieces: [String], pause: Duration = .milliseconds(20), done: @escaping @Sendable (String) -> Bool = { _ in false }) async throws -> (text: String, closed: Bool) {
        try await Task.detached {
            guard let fd = connectLoopback(port: port) else { throw Failure(description: "connect to \(port) failed") }
            defer { close(fd) }
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            for (i, piece) in pieces.enumerated() {
                if i > 0 { try await Task.sleep(for: pause) }
                let bytes = Array(piece.utf8)
                guard send(fd, bytes, bytes.count, 0) == bytes.count else { throw Failure(description: "send failed") }
            }
            var received: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = recv(fd, &chunk, chunk.count, 0)
                if n == 0 { return (String(decoding: received, as: UTF8.self), true) }
                if n < 0 { return (String(decoding: received, as: UTF8.self), false) }
                received += chunk[0..<n]
                if done(String(decoding: received, as: UTF8.self)) { return (String(decoding: received, as: UTF8.self), false) }
            }
        }.value
    }
}

extension OverSockets {
    @Suite("HTTP/1.1 on the wire, through the gateway", .serialized)
    struct WireEndToEndTests {
        static let completion = #"{"id":"c1","object":"chat.completion","model":"m-up","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#

        static func sized(_ body: String = completion, extra: String = "") -> String {
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\(extra)content-length: \(body.utf8.count)\r\n\r\n\(body)"
        }

        static func start(upstream: RawUpstream) async throws -> (RunningLab, EventLog) {
            try await EndToEndTests.start(try loadLab(EndToEndTests.directLab(port: upstream.port)))
        }

        static func post(_ body: String = #"{"model":"","messages":[]}"#, extraHeaders: String = "", version: String = "1.1") -> String {
            "POST /lab/v1/chat/completions HTTP/\(version)\r\nHost: gw\r\nContent-Type: application/json\r\n\(extraHeaders)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
        }

        /// The bodies of chunked framing, joined.
        static func dechunk(_ text: Substring) -> String? {
            var rest = text
            var out = ""
            while let line = rest.range(of: "\r\n") {
                guard let size = Int(rest[..<line.lowerBound], radix: 16) else { return nil }
                rest = rest[line.upperBound...]
                if size == 0 { return out }
                out += String(rest.utf8.prefix(size))!
                rest = Substring(rest.utf8.dropFirst(size + 2))
            }
            return nil
        }

        @Test("a chunked upstream answer reaches an HTTP/1.1 client chunked, whole; usage is still read")
        func chunkedUpstream() async throws {
            let parts = [String(Self.completion.prefix(40)), String(Self.completion.dropFirst(40))]
            let upstream = try await RawUpstream { _ in
                .init(bytes: "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
                    + parts.map { String($0.utf8.count, radix: 16) + "\r\n" + $0 + "\r\n" }.joined() + "0\r\n\r\n")
            }
            defer { Task { await upstream.stop() } }
            let (lab, events) = try await Self.start(upstream: upstream)
            defer { Task { await lab.stop() } }
            let reply = try await RawClient.exchange(port: lab.gateway.port, send: [Self.post()]) { $0.hasSuffix("0\r\n\r\n") }
            let split = try #require(reply.text.range(of: "\r\n\r\n"))
            let head = reply.text[..<split.lowerBound].lowercased()
            #expect(head.hasPrefix("http/1.1 200 ok"))
            #expect(head.contains("transfer-encoding: chunked"))
            #expect(!head.contains("content-length"))
            #expect(Self.dechunk(reply.text[split.upperBound...]) == Self.completion)
            #expect(events.requests.first?.outputTokens == 4)
        }

        @Test("an answer that runs to the close: the client gets all of it; that upstream connection is not reused")
        func closeDelimitedUpstream() async throws {
            let upstream = try await RawUpstream { _ in
                .init(bytes: "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n" + Self.completion, closeAfter: true)
            }
            defer { Task { await upstream.stop() } }
            let (lab, _) = try await Self.start(upstream: upstream)
            defer { Task { await lab.stop() } }
            for _ in 0..<2 {
                let r = try await TestClient.post(port: lab.gateway.port, path: "/lab/v1/chat/completions")
                #expect(r.status == 200)
                #expect(r.body == Self.completion)
            }
            #expect(upstream.connections.withLockedValue { $0 } == 2)
        }

        @Test("keep-alive upstream: one connection carries sequential requests")
        func upstreamReused() async throws {
            let upstream = try await RawUpstream { _ in .init(bytes: Self.sized()) }
            defer { Task { await upstream.stop() } }
            let (lab, _) = try await Self.start(upstream: upstream)
            defer { Task { await lab.stop() } }
            for _ in 0..<3 {
                let r = try await TestClient.post(port: lab.gateway.port, path: "/lab/v1/chat/completions")
                #expect(r.status == 200)
            }
            #expect(upstream.requests.withLockedValue { $0.count } == 3)
            #expect(upstream.connections.withLockedValue { $0 } <= 2)  // at most one per event loop
        }

        @Test("large answers, sized and chunked, pass through whole and in order")
        func largeBodies() async throws {
            let big = String((0..<120_000).map { Character(UnicodeScalar(UInt8(97 + $0 % 26))) })
            let chunks = stride(from: 0, to: big.utf8.count, by: 7_000).map { start -> String in
                let piece = String(big.utf8.dropFirst(start).prefix(7_000))!
                return String(piece.utf8.count, radix: 16) + "\r\n" + piece + "\r\n"
            }
            let upstream = try await RawUpstream { n in
                n % 2 == 1 ? .init(bytes: Self.sized(big))
                    : .init(bytes: "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n" + chunks.joined() + "0\r\n\r\n")
            }
            defer { Task { await upstream.stop() } }
            let (lab, _) = try await Self.start(upstream: upstream)
            defer { Task { await lab.stop() } }
            for _ in 0..<4 {
                let r = try await TestClient.post(port: lab.gateway.port, path: "/lab/v1/chat/completions")
                #expect(r.status == 200)
                #expect(r.body.utf8.count == big.utf8.count)
                #expect(r.body == big)
            }
        }

        @Test("an upstream answering bytes that are not HTTP: 502 naming the problem, counted as broken")
        func malformedUpstream() async throws {
            let upstream = try await RawUpstream { _ in .init(bytes: "HTTP/1.1 abc\r\n\r\n") }
            defer { Task { await upstream.stop() } }
            let (lab, events) = try await Self.start(upstream: upstream)
            defer { Task { await lab.stop() } }
            let r = try await TestClient.post(port: lab.gateway.port, path: "/lab/v1/chat/completions")
            #expect(r.status == 502)
            let message = (r.json?["error"] as? [String: Any])?["message"] as? String ?? ""
            #expect(message.hasPrefix("malformed HTTP response from upstream: "), "\(message)")
            #expect(message.contains("(direct at 127.0.0.1:\(upstream.port))"))
            #expect(r.header("x-failover-attempts") == "direct=broken")
            #expect(events.requests.first?.attempts.first?.failure == "broken")
        }

        @Test("pipelined requests are answered in order, one at a time")
        func pipelinedClient() async throws {
            let upstream = try await RawUpstream { n in .init(bytes: Self.sized(#"{"n":\#(n)}"#)) }
            defer { Task { await upstream.stop() } }
            let (lab, _) = try await Self.start(upstream: upstream)
            defer { Task { await lab.stop() } }
            let reply = try await RawClient.exchange(port: lab.gateway.port, send: [Self.post() + Self.post() + Self.post(extraHeaders: "Connection: close\r\n")])
            #expect(reply.closed)
            let bodies = reply.text.components(separatedBy: "\r\n\r\n").dropFirst().map { $0.prefix(7) }
            #expect(bodies == [#"{"n":1}"#, #"{"n":2}"#, #"{"n":3}"#])
            #expect(reply.text.components(separatedBy: "HTTP/1.1 200 OK").count == 4)
        }

        @Test("a chunked request body, cut across reads, goes upstream with a length and the model set")
        func chunkedClientBody() async throws {
            let upstream = try await RawUpstream { _ in .init(bytes: Self.sized()) }
            defer { Task { await upstream.stop() } }
            let (lab, _) = try await Self.start(upstream: upstream)
            defer { Task { await lab.stop() } }
            let head = "POST /lab/x HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nX-Cus"
            let reply = try await RawClient.exchange(port: lab.gateway.port, send: [head, "tom: kept\r\n\r\nb\r\n{\"model\":\"\"\r\n", "e\r\n,\"messages\":[]\r\n1\r\n}\r\n0\r\n\r\n"]) {
                $0.contains(Self.completion)
            }
            #expect(reply.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
            let seen = try #require(upstream.requests.withLockedValue { $0 }.first)
            #expect(seen.hasSuffix("\r\n\r\n{\"model\":\"m-override\",\"messages\":[]}"))
            #expect(seen.lowercased().contains("content-length: 36\r\n"))
            #expect(!seen.lowercased().contains("transfer-encoding"))
            #expect(seen.contains("X-Custom: kept\r\n"))
        }

        @Test("an HTTP/1.0 client gets HTTP/1.0 and the connection closed after the answer")
        func http10Client() async throws {
            let upstream = try await RawUpstream { _ in .init(bytes: Self.sized()) }
            defer { Task { await upstream.stop() } }
            let (lab, _) = try await Self.start(upstream: upstream)
            defer { Task { await lab.stop() } }
            let reply = try await RawClient.exchange(port: lab.gateway.port, send: [Self.post(version: "1.0")])
            #expect(reply.closed)
            #expect(reply.text.hasPrefix("HTTP/1.0 200 OK\r\n"))
            #expect(reply.text.lowercased().contains("connection: close\r\n"))
            #expect(reply.text.hasSuffix(Self.completion))
        }

        @Test("bytes that are not HTTP: 400 with a JSON error naming the problem, closed, nothing sent upstream, logged")
        func malformedClient() async throws {
            let upstream = try await RawUpstream { _ in .init(bytes: Self.sized()) }
            defer { Task { await upstream.stop() } }
            let (lab, events) = try await Self.start(upstream: upstream)
            defer { Task { await lab.stop() } }
            let reply = try await RawClient.exchange(port: lab.gateway.port, send: ["POST /lab HTTP/1.1\r\nContent-Length: nope\r\n\r\n"])
            #expect(reply.closed)
            #expect(reply.text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
            #expect(reply.text.contains(#""message":"malformed HTTP request: "#))
            #expect(upstream.requests.withLockedValue { $0.isEmpty })
            // Every answer has its log line, wire-level 400s too.
            #expect(events.requests.map(\.status) == [400])
            #expect(events.requests.first?.reason == "bad_request")
        }

        @Test("a body over the limit, announced by its length: 413 before the body is read, then closed")
        func tooLargeByLength() async throws {
            let upstream = try await RawUpstream { _ in .init(bytes: Self.sized()) }
            defer { Task { await upstream.stop() } }
            let (lab, _) = try await EndToEndTests.start(try loadLab(EndToEndTests.directLab(port: upstream.port))) { $0.gateway.maxRequestBody = 100 }
            defer { Task { await lab.stop() } }
            let reply = try await RawClient.exchange(port: lab.gateway.port, send: ["POST /lab HTTP/1.1\r\nHost: gw\r\nContent-Length: 5000\r\n\r\n{\"model\":"])
            #expect(reply.closed)
            #expect(reply.text.hasPrefix("HTTP/1.1 413 Payload Too Large\r\n"))
            #expect(reply.text.contains("larger than 100 bytes"))
            #expect(upstream.requests.withLockedValue { $0.isEmpty })
        }

        @Test("request timeouts on one loop: a shorter one set after a longer one still fires on time, and each fires once")
        func deadlinesOnOneLoop() async throws {
            let upstream = try await RawUpstream { _ in .init(bytes: "") }  // never answers
            defer { Task { await upstream.stop() } }
            let twoRoutes = EndToEndTests.directLab(port: upstream.port, timeout: "1500ms") + """

                ---
                apiVersion: gateway.networking.k8s.io/v1
                kind: HTTPRoute
                metadata: {name: fast, namespace: ns}
                spec:
                  rules:
                    - matches: [{path: {type: PathPrefix, value: /fast}}]
                      backendRefs: [{name: b, kind: AgentgatewayBackend}]
                      timeouts: {request: 200ms}
                """
            let (lab, events) = try await EndToEndTests.start(try loadLab(twoRoutes))
            defer { Task { await lab.stop() } }
            let port = lab.gateway.port
            let clock = ContinuousClock()
            let start = clock.now
            async let slow = TestClient.post(port: port, path: "/lab/x")
            try await Task.sleep(for: .milliseconds(50))
            let fast = try await TestClient.post(port: port, path: "/fast/x")
            let fastAt = clock.now - start
            let slowReply = try await slow
            let slowAt = clock.now - start
            #expect(fast.status == 504)
            #expect(slowReply.status == 504)
            #expect(fastAt >= .milliseconds(250) && fastAt < .milliseconds(1000), "fast timed out at \(fastAt)")
            #expect(slowAt >= .milliseconds(1500) && slowAt < .milliseconds(2500), "slow timed out at \(slowAt)")
            #expect(events.requests.count == 2)
            #expect(events.requests.allSatisfy { $0.reason == "timeout" })
        }
    }
}

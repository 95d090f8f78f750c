import Foundation
import Testing
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
@testable import Gateway

/// The suites that time real sockets and load the machine. They run one after another,
/// so one suite's load (a kill under 16 clients, a 32-client burst, Prometheus) cannot
/// stretch another's timing windows (a 1 s eviction) on a 2-core machine.
@Suite(.serialized)
enum OverSockets {}

/// A seeded generator (SplitMix64), so balancer tests are deterministic.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A response as the test client saw it.
struct TestResponse: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: String
    var version: HTTPVersion

    func header(_ name: String) -> String? { headers.first(name: name) }
    var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] }
}

/// A one-request-per-connection HTTP/1.1 client on SwiftNIO, for end-to-end tests.
enum TestClient {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)

    static let seedBody = #"{"model": "", "messages": [{"role": "user", "content": "What is 2+2?"}]}"#

    static func post(port: Int, path: String, body: String = seedBody, headers: [(String, String)] = [("Content-Type", "application/json")]) async throws -> TestResponse {
        try await request(port: port, method: .POST, path: path, headers: headers, body: body)
    }

    static func request(port: Int, method: HTTPMethod, path: String, headers: [(String, String)] = [], body: String?) async throws -> TestResponse {
        let collector = ResponseCollector()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "host", value: "127.0.0.1:\(port)")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        if let body { head.headers.add(name: "content-length", value: String(body.utf8.count)) }
        head.headers.add(name: "connection", value: "close")
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: body))), promise: nil) }
        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        let response = try await collector.promise(on: channel.eventLoop).get()
        try? await channel.close()
        return response
    }
}

final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()
    private let done = LatePromise<TestResponse>()

    func promise(on loop: EventLoop) -> EventLoopFuture<TestResponse> {
        done.futureResult(on: loop)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body(var b): body.writeBuffer(&b)
        case .end:
            guard let head else { return }
            done.complete(.success(TestResponse(status: Int(head.status.code), headers: head.headers, body: String(buffer: body), version: head.version)))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.complete(.failure(ChannelError.eof))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        done.complete(.failure(error))
        context.close(promise: nil)
    }
}

/// An upstream that records what it was sent and answers a fixed chat completion.
final class RecordingUpstream: Sendable {
    struct Seen: Sendable {
        var method: String
        var uri: String
        var headers: [(String, String)]
        var body: String
        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name }?.1 }
    }
    let channel: Channel
    let seen = NIOLockedValueBox<[Seen]>([])
    var port: Int { channel.localAddress!.port! }

    init(status: Int = 200) async throws {
        let seen = self.seen
        channel = try await ServerBootstrap(group: TestClient.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(RecordingHandler(seen: seen, status: status))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func stop() async { try? await channel.close() }
}

private final class RecordingHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let seen: NIOLockedValueBox<[RecordingUpstream.Seen]>
    let status: Int
    var head: HTTPRequestHead?
    var body = ByteBuffer()
    init(seen: NIOLockedValueBox<[RecordingUpstream.Seen]>, status: Int) {
        self.seen = seen
        self.status = status
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h; body.clear()
        case .body(var b): body.writeBuffer(&b)
        case .end:
            guard let head else { return }
            let entry = RecordingUpstream.Seen(method: head.method.rawValue, uri: head.uri, headers: head.headers.map { ($0.name, $0.value) }, body: String(buffer: body))
            seen.withLockedValue { $0.append(entry) }
            let payload = #"{"id":"chatcmpl-rec","object":"chat.completion","created":1,"model":"recorded","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "content-length", value: String(payload.utf8.count))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: payload)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

/// Collects gateway events for assertions.
final class EventLog: Sendable {
    let events = NIOLockedValueBox<[GatewayEvent]>([])
    var sink: GatewayEventSink { { [events] event in events.withLockedValue { $0.append(event) } } }
    var requests: [RequestLog] {
        events.withLockedValue { $0 }.compactMap { if case .request(let r) = $0 { return r } else { return nil } }
    }
}

/// Loads YAML text as if it came from `file`.
func loadLab(_ yaml: String, file: String = "lab.yaml") throws -> LabConfig {
    try ManifestLoader.load(sources: [(file, yaml)])
}

/// The repository's bundled scenarios folder.
let scenariosDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scenarios").path

/// Measures when the body of a (streamed) response arrives, part by part.
enum StreamingProbe {
    struct Result: Sendable {
        var firstChunk: Duration
        var total: Duration
        var text: String
    }

    static func firstChunkDelay(port: Int, path: String, body: String) async throws -> Result {
        let timer = ChunkTimer()
        let channel = try await ClientBootstrap(group: TestClient.group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(timer)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
        head.headers.add(name: "host", value: "127.0.0.1")
        head.headers.add(name: "content-type", value: "application/json")
        head.headers.add(name: "content-length", value: String(body.utf8.count))
        let start = ContinuousClock.now
        timer.start = start
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: body))), promise: nil)
        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        let result = try await timer.done.futureResult(on: channel.eventLoop).get()
        try? await channel.close()
        return result
    }
}

final class ChunkTimer: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    var start = ContinuousClock.now
    var first: Duration?
    var text = ""
    let done = LatePromise<StreamingProbe.Result>()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: break
        case .body(let b):
            if first == nil { first = ContinuousClock.now - start }
            text += String(buffer: b)
        case .end:
            done.complete(.success(StreamingProbe.Result(firstChunk: first ?? .zero, total: ContinuousClock.now - start, text: text)))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        done.complete(.failure(error))
    }
}

/// A promise that can be asked for before or after it is completed; used on one event loop.
final class LatePromise<T: Sendable>: @unchecked Sendable {
    private var result: Result<T, Error>?
    private var waiting: EventLoopPromise<T>?

    func complete(_ r: Result<T, Error>) {
        guard result == nil else { return }
        result = r
        waiting?.completeWith(r)
    }

    func futureResult(on loop: EventLoop) -> EventLoopFuture<T> {
        loop.submit {
            let p = loop.makePromise(of: T.self)
            if let r = self.result { p.completeWith(r) } else { self.waiting = p }
            return p.futureResult
        }.flatMap { $0 }
    }
}

/// An upstream that answers OpenAI's quota-exhausted 429.
enum QuotaUpstream {
    static func start() async throws -> StandInLikeServer {
        try await StandInLikeServer.start(status: 429, headers: [("retry-after", "20"), ("content-type", "application/json")],
            body: #"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#)
    }
}

/// A fixed-answer HTTP server.
final class StandInLikeServer: Sendable {
    let channel: Channel
    var port: Int { channel.localAddress!.port! }
    private init(channel: Channel) { self.channel = channel }

    static func start(status: Int, headers: [(String, String)], body: String, breakAfterBody: Bool = false) async throws -> StandInLikeServer {
        let channel = try await ServerBootstrap(group: TestClient.group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(FixedAnswer(status: status, headers: headers, body: body, breakAfterBody: breakAfterBody))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return StandInLikeServer(channel: channel)
    }

    func stop() async { try? await channel.close() }
}

/// An upstream that starts a streamed answer, sends a few events, then drops the connection.
enum BreakingUpstream {
    static func start() async throws -> StandInLikeServer {
        try await StandInLikeServer.start(status: 200, headers: [("content-type", "text/event-stream")],
            body: "data: {\"choices\":[{\"delta\":{\"content\":\"2 +\"}}]}\n\n", breakAfterBody: true)
    }
}

private final class FixedAnswer: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let status: Int, headers: [(String, String)], body: String, breakAfterBody: Bool
    init(status: Int, headers: [(String, String)], body: String, breakAfterBody: Bool) {
        self.status = status
        self.headers = headers
        self.body = body
        self.breakAfterBody = breakAfterBody
    }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        var h = HTTPHeaders(headers)
        // A breaking answer promises more than it sends, then closes.
        h.add(name: "content-length", value: String(body.utf8.count * (breakAfterBody ? 10 : 1)))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: h))), promise: nil)
        if breakAfterBody {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
            context.eventLoop.scheduleTask(in: .milliseconds(100)) { channel.close(promise: nil) }
            return
        }
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

/// A TCP socket connected to 127.0.0.1:`port`, or nil (the socket is closed then).
func connectLoopback(port: Int) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        return nil
    }
    return fd
}

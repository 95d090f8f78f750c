import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
@testable import Gateway
@testable import Lab
import Upstreams

/// `traceparent`, the sampler and the OTEL_* settings, without sockets.
@Suite("Trace context and settings")
struct TraceContextTests {
    static let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test("a valid traceparent is read; its ids and flag come back out")
    func parsesValid() throws {
        let p = try #require(TraceParent(header: Self.valid.utf8))
        #expect(p.traceID.hex == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(p.spanID.hex == "00f067aa0ba902b7")
        #expect(p.sampled)
        #expect(p.header == Self.valid)
        var bytes: [UInt8] = []
        p.write(into: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == Self.valid)
        #expect(TraceParent(header: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00".utf8)?.sampled == false)
    }

    @Test("malformed traceparents are ignored", arguments: [
        "", "00", "garbage",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // uppercase
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // version ff
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  // 00 must end there
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",  // dash misplaced
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ])
    func ignoresMalformed(_ header: String) {
        #expect(TraceParent(header: header.utf8) == nil)
    }

    @Test("a later version is read as 00 when it has 00's shape")
    func futureVersion() {
        #expect(TraceParent(header: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more".utf8) != nil)
        #expect(TraceParent(header: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x".utf8) == nil)
    }

    @Test("the ratio sampler keeps about its share; parent-based follows the client's flag")
    func sampler() {
        var rng = SeededGenerator(seed: 7)
        let ids = (0..<10_000).map { _ in TraceID(high: rng.next(), low: rng.next()) }
        let kept = ids.filter { TraceSampler.ratio(0.25).samples($0, parent: nil) }.count
        #expect((2200...2800).contains(kept), "kept \(kept) of 10000 at 0.25")
        #expect(ids.allSatisfy { TraceSampler.ratio(1).samples($0, parent: nil) })
        #expect(!ids.contains { TraceSampler.ratio(0).samples($0, parent: nil) })
        #expect(ids.allSatisfy { TraceSampler.ratio(0.9999999999999999).samples($0, parent: nil) || $0.low >= UInt64.max - 4096 })
        let parentBased = TraceSampler.parentBased(root: .alwaysOff)
        #expect(parentBased.samples(ids[0], parent: true))
        #expect(!parentBased.samples(ids[0], parent: nil))
        #expect(!TraceSampler.parentBased(root: .alwaysOn).samples(ids[0], parent: false))
    }

    @Test("OTEL_* settings: endpoint forms, protocol, headers, service name, sampler")
    func environment() throws {
        #expect(try TracingOptions.fromEnvironment([:], flagEndpoint: nil) == nil)
        let base = try #require(try TracingOptions.fromEnvironment(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"], flagEndpoint: nil))
        #expect(base.endpoint?.description == "http://collector:4318/v1/traces")
        #expect(base.encoding == .protobuf)
        #expect(base.serviceName == "failover-lab")
        #expect(base.sampler == .parentBased(root: .alwaysOn))
        let exact = try #require(try TracingOptions.fromEnvironment([
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:1",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/custom/traces",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=abc%20def, tenant=t1",
            "OTEL_SERVICE_NAME": "lab-gw",
            "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5",
        ], flagEndpoint: nil))
        #expect(exact.endpoint?.description == "http://tempo:4318/custom/traces")
        #expect(exact.encoding == .json)
        #expect(exact.headers.map { "\($0.0)=\($0.1)" } == ["x-api-key=abc def", "tenant=t1"])
        #expect(exact.serviceName == "lab-gw")
        #expect(exact.sampler == .ratio(0.5))
        // The flag wins over both variables.
        let flag = try TracingOptions.fromEnvironment(["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/v1/traces"], flagEndpoint: "http://127.0.0.1:9999")
        #expect(flag?.endpoint?.description == "http://127.0.0.1:9999/v1/traces")
    }

    @Test("hostile OTEL_* values get a clear error naming the variable", arguments: [
        (["OTEL_EXPORTER_OTLP_ENDPOINT": "https://x:4318"], "only http://"),
        (["OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:99999"], "port"),
        (["OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318\r\nevil: 1"], "OTEL_EXPORTER_OTLP_ENDPOINT"),
        (["OTEL_EXPORTER_OTLP_ENDPOINT": "not a url"], "OTEL_EXPORTER_OTLP_ENDPOINT"),
        (["OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"], "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"),
        (["OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"], "OTEL_TRACES_SAMPLER_ARG=2"),
        (["OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "nan"], "OTEL_TRACES_SAMPLER_ARG=nan"),
        (["OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_SAMPLER": "sometimes"], "OTEL_TRACES_SAMPLER=sometimes"),
        (["OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_HEADERS": "novalue"], "OTEL_EXPORTER_OTLP_HEADERS"),
        (["OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_HEADERS": "a=b%0D%0Ahost: evil"], "control characters"),
        (["OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_HEADERS": "bad name=1"], "not a valid header name"),
        (["OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_TIMEOUT": "99999999999999999999"], "OTEL_EXPORTER_OTLP_TIMEOUT"),
    ])
    func hostileEnvironment(_ env: [String: String], _ expected: String) {
        do {
            _ = try TracingOptions.fromEnvironment(env, flagEndpoint: nil)
            Issue.record("accepted \(env)")
        } catch {
            #expect("\(error)".contains(expected), "\(error)")
        }
    }

    @Test("both encodings of awkward values (long strings, negative and huge ints, doubles, unicode) decode with opentelemetry-proto", arguments: [OTLPEncoding.protobuf, .json])
    func awkwardValues(_ encoding: OTLPEncoding) throws {
        try OverSockets.TracingEndToEndTests.requirePython()
        let long = String(repeating: "é-x\"\\\n", count: 300)
        var span = SpanRecord(traceID: TraceID(high: 1, low: UInt64.max), spanID: SpanID(UInt64.max), parentSpanID: SpanID(2),
                              name: "POST /ünïcode", kind: .client, start: 1, end: UInt64(Int64.max))
        span.attributes = [.init("long", .string(long)), .init("neg", .int(-5)), .init("max", .int(Int64.max)),
                           .init("d", .double(0.25)), .init("b", .bool(true)), .init("", .string(""))]
        span.events = [.init(time: 3, name: "failover.eviction", attributes: [.init("duration_s", .double(60))])]
        span.isError = true
        span.statusMessage = long
        let body = encoding.encode([span, span], serviceName: long)
        let receiver = OTLPReceiver.Offline(posts: [.init(path: "/v1/traces", contentType: encoding.contentType, body: body)])
        let decoded = try receiver.decode(python: OverSockets.TracingEndToEndTests.python)
        try #require(decoded.spans.count == 2)
        let s = decoded.spans[0]
        #expect(decoded.resources.first?["service.name"] as? String == long)
        #expect(s.traceID == "0000000000000001ffffffffffffffff" && s.spanID == "ffffffffffffffff" && s.parentSpanID == "0000000000000002")
        #expect(s.name == "POST /ünïcode" && s.kind == 3 && s.end == UInt64(Int64.max))
        #expect(s.attributes["long"] as? String == long)
        #expect(s.attributes["neg"] as? Int == -5)
        #expect((s.attributes["max"] as? NSNumber)?.int64Value == Int64.max)
        #expect(s.attributes["d"] as? Double == 0.25 && s.attributes["b"] as? Bool == true)
        #expect(s.statusCode == 2)
        #expect(s.events.first?["name"] as? String == "failover.eviction")
    }

    @Test("a collector's answer head is read as hostile: status, content-length and keep-alive", arguments: [
        ("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", 200, 0, true),
        ("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n", 200, 12, true),
        ("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n", 200, 2, false),
        ("HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n", 200, 2, false),
        ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", 200, nil, false),
        ("HTTP/1.1 200 OK\r\n\r\n", 200, nil, false),
        ("HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n", 200, nil, false),
        ("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", 200, nil, false),
        ("HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n", 200, nil, false),
        ("HTTP/1.1 200 OK\r\ncontent-length: 1e3\r\n\r\n", 200, nil, false),
        ("HTTP/1.1 999 Nope\r\ncontent-length: 0\r\n\r\n", nil, nil, false),
        ("HTTP/1.1 2x0 OK\r\n\r\n", nil, nil, false),
        ("SSH-2.0-OpenSSH\r\n\r\n", nil, nil, false),
        ("HTTP/1.1 503\r\ncontent-length: 0\r\n\r\n", 503, 0, true),
    ] as [(String, Int?, Int?, Bool)])
    func answerHead(_ text: String, _ status: Int?, _ length: Int?, _ keep: Bool) {
        let head = OTLPAnswerHead(ArraySlice(Array(text.utf8)))
        #expect(head.status == status)
        if status != nil {
            #expect(head.contentLength == length)
            #expect(head.keepAlive == keep)
        }
    }

    @Test("span times: the trace clock keeps wall time and saturates huge durations")
    func clock() {
        #expect(TraceClock.nanos(.seconds(Int64.max)) == Int64.max)
        #expect(TraceClock.nanos(.seconds(Int64.min)) == Int64.min)
        #expect(TraceClock.nanos(.milliseconds(1500)) == 1_500_000_000)
        let origin = ContinuousClock.now
        let clock = TraceClock(wall: Date(timeIntervalSince1970: 1_000), origin: origin)
        #expect(clock.nanos(origin + .milliseconds(250)) == 1_000_250_000_000)
        #expect(TraceClock(wall: Date(timeIntervalSince1970: -5), origin: origin).wallStart == 0)
    }
}

/// A stand-in OTLP/HTTP collector: keeps each POST's path, content type and bytes, and
/// answers with `status` (or not at all while `hang` is set).
final class OTLPReceiver: Sendable {
    struct Post: Sendable {
        var path: String
        var contentType: String
        var body: [UInt8]
    }
    let channel: Channel
    let posts = NIOLockedValueBox<[Post]>([])
    /// Connections the exporter opened.
    let connections = NIOLockedValueBox(0)
    var port: Int { channel.localAddress!.port! }

    /// `status` 0: reads every request and never answers (a hung collector).
    /// `closeAfterAnswer`: closes each connection after its answer without saying so (as a
    /// collector's idle timeout does between two batches).
    init(status: Int = 200, closeAfterAnswer: Bool = false) async throws {
        let posts = self.posts
        let connections = self.connections
        channel = try await ServerBootstrap(group: TestClient.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                connections.withLockedValue { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(OTLPReceiverHandler(posts: posts, status: status, closeAfterAnswer: closeAfterAnswer))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    var endpoint: OTLPEndpoint { try! OTLPEndpoint(base: "http://127.0.0.1:\(port)", source: "test") }

    /// Bodies decoded without a server (the same decoder).
    struct Offline {
        var posts: [Post]
        func decode(python: String) throws -> Decoded { try OTLPReceiver.decode(posts, python: python) }
    }

    func stop() async { try? await channel.close() }

    /// Waits until `count` spans have come, or `seconds` passed.
    func waitForSpans(_ count: Int, python: String, seconds: Double = 10) async throws -> Decoded {
        let end = Date().addingTimeInterval(seconds)
        var decoded = Decoded(resources: [], spans: [])
        while Date() < end {
            decoded = try decode(python: python)
            if decoded.spans.count >= count { return decoded }
            try await Task.sleep(for: .milliseconds(50))
        }
        return decoded
    }

    struct Span {
        var traceID, spanID, parentSpanID, name: String
        var kind: Int
        var start, end: UInt64
        var attributes: [String: Any]
        var events: [[String: Any]]
        var statusCode: Int
    }
    struct Decoded {
        var resources: [[String: Any]]
        var spans: [Span]
    }

    /// Every body so far, through the official opentelemetry-proto decoder.
    func decode(python: String) throws -> Decoded {
        try Self.decode(posts.withLockedValue { $0 }, python: python)
    }

    static func decode(_ posts: [Post], python: String) throws -> Decoded {
        guard !posts.isEmpty else { return Decoded(resources: [], spans: []) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("otlp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var args = [OverSockets.ClientsAndTelemetryTests.repository.appendingPathComponent("Tests/clients/otlp_decode.py").path]
        for (i, post) in posts.enumerated() {
            let file = dir.appendingPathComponent("\(i)").path
            try Data(post.body).write(to: URL(fileURLWithPath: file))
            args.append((post.contentType == "application/json" ? "json:" : "protobuf:") + file)
        }
        let result = try OverSockets.ClientsAndTelemetryTests.run(python, args)
        guard result.status == 0 else { throw DecodeFailure(message: result.stderr) }
        let json = (try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any] ?? [:]
        let spans = (json["spans"] as? [[String: Any]] ?? []).map { s in
            Span(traceID: s["trace_id"] as? String ?? "", spanID: s["span_id"] as? String ?? "",
                 parentSpanID: s["parent_span_id"] as? String ?? "", name: s["name"] as? String ?? "",
                 kind: s["kind"] as? Int ?? -1,
                 start: (s["start"] as? NSNumber)?.uint64Value ?? 0, end: (s["end"] as? NSNumber)?.uint64Value ?? 0,
                 attributes: s["attributes"] as? [String: Any] ?? [:], events: s["events"] as? [[String: Any]] ?? [],
                 statusCode: (s["status"] as? [String: Any])?["code"] as? Int ?? -1)
        }
        return Decoded(resources: json["resources"] as? [[String: Any]] ?? [], spans: spans)
    }

    struct DecodeFailure: Error, CustomStringConvertible {
        var message: String
        var description: String { "opentelemetry-proto could not decode the export: \(message)" }
    }
}

private final class OTLPReceiverHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let posts: NIOLockedValueBox<[OTLPReceiver.Post]>
    let status: Int
    let closeAfterAnswer: Bool
    var head: HTTPRequestHead?
    var body: [UInt8] = []
    init(posts: NIOLockedValueBox<[OTLPReceiver.Post]>, status: Int, closeAfterAnswer: Bool) {
        self.posts = posts
        self.status = status
        self.closeAfterAnswer = closeAfterAnswer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h; body = []
        case .body(let b): body += b.readableBytesView
        case .end:
            guard let head, status != 0 else { return }
            if status < 300 {
                posts.withLockedValue { $0.append(.init(path: head.uri, contentType: head.headers.first(name: "content-type") ?? "", body: body)) }
            }
            var headers = HTTPHeaders()
            headers.add(name: "content-length", value: "0")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers))), promise: nil)
            if closeAfterAnswer {
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            } else {
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

extension OverSockets {
    /// Traces of the retries lab's request, exported to a test collector and decoded with
    /// the official OpenTelemetry protobuf definitions.
    @Suite("Traces end to end", .serialized)
    struct TracingEndToEndTests {
        static var python: String {
            ProcessInfo.processInfo.environment["FAILOVER_LAB_PYTHON"] ?? ClientsAndTelemetryTests.repository.appendingPathComponent(".build-venv/bin/python").path
        }

        static func requirePython() throws {
            let check = try? ClientsAndTelemetryTests.run(python, ["-c", "import opentelemetry.proto"])
            try #require(check?.status == 0, "no Python with opentelemetry-proto at \(python); scripts/test installs it into .build-venv")
        }

        static func tracing(_ receiver: OTLPReceiver?, encoding: OTLPEncoding = .protobuf, endpoint: OTLPEndpoint? = nil) -> TracingOptions {
            var t = TracingOptions(endpoint: endpoint ?? receiver?.endpoint)
            t.encoding = encoding
            t.scheduleDelay = .milliseconds(50)
            t.exportTimeout = .seconds(2)
            return t
        }

        @Test("retries lab: one trace, a server span, two client spans (429 then 200), the eviction and the backoff; the access log and the stand-ins carry its ids", arguments: [OTLPEncoding.protobuf, .json])
        func retriesTrace(_ encoding: OTLPEncoding) async throws {
            try Self.requirePython()
            let receiver = try await OTLPReceiver()
            defer { Task { await receiver.stop() } }
            let logPath = FileManager.default.temporaryDirectory.appendingPathComponent("access-\(UUID().uuidString).log").path
            defer { try? FileManager.default.removeItem(atPath: logPath) }
            let (lab, _) = try await EndToEndTests.start(try BundledLabsTests.lab("retries-lab"), accessLog: try AccessLogWriter(path: logPath)) {
                $0.gateway.tracing = Self.tracing(receiver, encoding: encoding)
            }
            defer { Task { await lab.stop() } }
            let r = try await TestClient.post(port: lab.gateway.port, path: "/retries")
            #expect(r.status == 200)
            #expect(r.header("x-failover-attempts") == "http-429-provider=429,openai-provider=200")

            let decoded = try await receiver.waitForSpans(4, python: Self.python)
            #expect(receiver.posts.withLockedValue { $0.allSatisfy { $0.path == "/v1/traces" && $0.contentType == encoding.contentType } })
            #expect(decoded.resources.first?["service.name"] as? String == "failover-lab")
            let spans = decoded.spans
            #expect(Set(spans.map(\.traceID)).count == 1, "one trace: \(spans.map(\.traceID))")
            let server = try #require(spans.first { $0.kind == 2 }, "no server span in \(spans.map(\.name))")
            #expect(server.name == "POST /retries")
            #expect(server.parentSpanID == "")
            #expect(server.attributes["http.status"] as? Int == 200)
            #expect(server.attributes["provider"] as? String == "openai-provider")
            #expect(server.attributes["group"] as? Int == 2)
            #expect(server.attributes["attempts"] as? String == "http-429-provider=429,openai-provider=200")
            #expect(server.attributes["route"] as? String != nil)
            #expect(server.attributes["gen_ai.request.model"] as? String == "gpt-4o-mini")
            #expect(server.statusCode == 0)
            let clients = spans.filter { $0.kind == 3 }.sorted { $0.start < $1.start }
            try #require(clients.count == 2, "client spans: \(clients.map(\.name))")
            #expect(clients.allSatisfy { $0.parentSpanID == server.spanID })
            #expect(clients[0].attributes["provider"] as? String == "http-429-provider")
            #expect(clients[0].attributes["http.status"] as? Int == 429)
            #expect(clients[0].attributes["group"] as? Int == 1)
            #expect(clients[0].statusCode == 2)
            #expect(clients[1].attributes["provider"] as? String == "openai-provider")
            #expect(clients[1].attributes["http.status"] as? Int == 200)
            #expect(clients[1].statusCode == 0)
            #expect((clients[1].attributes["endpoint"] as? String)?.hasPrefix("127.0.0.1:") == true)
            let eviction = try #require(clients[0].events.first { $0["name"] as? String == "failover.eviction" }, "\(clients[0].events)")
            let evictionAttributes = eviction["attributes"] as? [String: Any] ?? [:]
            #expect(evictionAttributes["provider"] as? String == "http-429-provider")
            #expect(evictionAttributes["reason"] as? String == "429 rate")
            #expect(evictionAttributes["duration_s"] as? Double == 60)
            let backoff = try #require(spans.first { $0.name == "retry backoff" })
            #expect(backoff.parentSpanID == server.spanID)
            #expect(backoff.start >= clients[0].start && backoff.end <= clients[1].start)
            #expect(backoff.end - backoff.start >= 150_000_000, "backoff \(backoff.end - backoff.start) ns; the route says 200ms")
            #expect(server.start <= clients[0].start && clients[1].end <= server.end)

            // The access log line carries the same ids.
            let log = try String(contentsOfFile: logPath, encoding: .utf8)
            #expect(log.contains("\"trace.id\":\"\(server.traceID)\""), "\(log)")
            #expect(log.contains("\"span.id\":\"\(server.spanID)\""), "\(log)")
            // Each try's upstream saw the traceparent of its client span.
            let http429 = try #require(lab.standIns.first { $0.name == "http-429" })
            let openai = try #require(lab.standIns.first { $0.name == "openai" })
            #expect(http429.seenTraceParents == ["00-\(server.traceID)-\(clients[0].spanID)-01"])
            #expect(openai.seenTraceParents == ["00-\(server.traceID)-\(clients[1].spanID)-01"])
        }

        @Test("a client's traceparent makes the server span its child; a malformed one is ignored")
        func clientParent() async throws {
            try Self.requirePython()
            let receiver = try await OTLPReceiver()
            defer { Task { await receiver.stop() } }
            let (lab, events) = try await EndToEndTests.start(try EndToEndTests.seedLab()) { $0.gateway.tracing = Self.tracing(receiver) }
            defer { Task { await lab.stop() } }
            let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            _ = try await TestClient.post(port: lab.gateway.port, path: "/http-429", headers: [("Content-Type", "application/json"), ("traceparent", parent)])
            _ = try await TestClient.post(port: lab.gateway.port, path: "/http-429", headers: [("Content-Type", "application/json"), ("traceparent", "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01")])
            let decoded = try await receiver.waitForSpans(4, python: Self.python)
            let servers = decoded.spans.filter { $0.kind == 2 }
            try #require(servers.count == 2)
            let child = try #require(servers.first { $0.traceID == "0af7651916cd43dd8448eb211c80319c" }, "\(servers.map(\.traceID))")
            #expect(child.parentSpanID == "b7ad6b7169203331")
            let other = try #require(servers.first { $0.traceID != "0af7651916cd43dd8448eb211c80319c" })
            #expect(other.parentSpanID == "")
            // The upstream got the gateway's client span, not the client's id.
            let seen = lab.standIns.flatMap(\.seenTraceParents)
            #expect(!seen.contains(parent))
            #expect(seen.contains { $0.hasPrefix("00-0af7651916cd43dd8448eb211c80319c-") })
            #expect(events.requests.first?.trace?.parentSpanID?.hex == "b7ad6b7169203331")
        }

        @Test("collector down or answering 500: requests unaffected, dropped spans counted in /metrics", arguments: ["down", "500"])
        func collectorFailing(_ mode: String) async throws {
            let failing: OTLPReceiver? = mode == "500" ? try await OTLPReceiver(status: 500) : nil
            defer { if let failing { Task { await failing.stop() } } }
            let closedPort = try await ClientsAndTelemetryTests.freePort()
            let endpoint = try failing?.endpoint ?? OTLPEndpoint(base: "http://127.0.0.1:\(closedPort)", source: "test")
            let (lab, _) = try await EndToEndTests.start(try BundledLabsTests.lab("retries-lab")) {
                $0.gateway.tracing = Self.tracing(nil, endpoint: endpoint)
                $0.adminPort = 0
            }
            defer { Task { await lab.stop() } }
            let exporter = try #require(lab.gateway.runtime.traceExporter)
            for _ in 0..<5 {
                let r = try await TestClient.post(port: lab.gateway.port, path: "/retries")
                #expect(r.status == 200)
            }
            // The first request: its server span, two tries, the backoff; the next four go
            // straight to group 2 (group 1 is evicted): two spans each. All 12 are dropped.
            let end = Date().addingTimeInterval(8)
            while Date() < end, exporter.counts.dropped < 12 { try await Task.sleep(for: .milliseconds(50)) }
            #expect(exporter.counts.dropped == 12, "\(exporter.counts)")
            #expect(exporter.counts.failedRequests >= 1)
            #expect(exporter.counts.exported == 0)
            let metrics = try await TestClient.request(port: lab.admin!.port, method: .GET, path: "/metrics", body: nil)
            let line = metrics.body.split(separator: "\n").first { $0.hasPrefix("failover_trace_spans_dropped_total ") }
            let value = line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
            #expect(value == 12, "\(line ?? "no failover_trace_spans_dropped_total")")
        }

        @Test("a collector that never answers: requests keep their pace, spans are dropped and counted")
        func collectorHangs() async throws {
            let hung = try await OTLPReceiver(status: 0)
            defer { Task { await hung.stop() } }
            let (lab, _) = try await EndToEndTests.start(try EndToEndTests.seedLab()) {
                var t = Self.tracing(hung)
                t.exportTimeout = .seconds(3)
                t.maxQueue = 4
                t.maxBatch = 2
                $0.gateway.tracing = t
            }
            defer { Task { await lab.stop() } }
            let clock = ContinuousClock()
            var slowest = Duration.zero
            for _ in 0..<12 {
                let start = clock.now
                let r = try await TestClient.post(port: lab.gateway.port, path: "/http-429")
                slowest = max(slowest, clock.now - start)
                #expect(r.status == 200 || r.status == 429)
            }
            // The exporter is stuck on its first post for 3 s; the data path did not wait for it.
            #expect(slowest < .seconds(1), "a request took \(slowest) while the collector hung")
            let exporter = try #require(lab.gateway.runtime.traceExporter)
            #expect(exporter.counts.dropped >= 10, "\(exporter.counts)")
            #expect(exporter.counts.exported == 0)
        }

        @Test("batches hold at most maxBatch spans; every span arrives once")
        func batches() async throws {
            try Self.requirePython()
            let receiver = try await OTLPReceiver()
            defer { Task { await receiver.stop() } }
            let (lab, _) = try await EndToEndTests.start(try EndToEndTests.seedLab()) {
                var t = Self.tracing(receiver)
                t.maxBatch = 2
                t.scheduleDelay = .milliseconds(500)
                $0.gateway.tracing = t
            }
            defer { Task { await lab.stop() } }
            for _ in 0..<5 { _ = try await TestClient.post(port: lab.gateway.port, path: "/http-429") }
            let decoded = try await receiver.waitForSpans(10, python: Self.python)
            #expect(decoded.spans.count == 10)
            #expect(Set(decoded.spans.map(\.spanID)).count == 10, "a span sent twice")
            let posts = receiver.posts.withLockedValue { $0 }
            #expect(posts.count == 5, "\(posts.count) posts for 5 requests of 2 spans, at most 2 a batch")
        }

        @Test("batches go over one kept-alive connection; a connection the collector closed is replaced and no batch is lost", arguments: [false, true])
        func keptAlive(_ collectorCloses: Bool) async throws {
            try Self.requirePython()
            let receiver = try await OTLPReceiver(closeAfterAnswer: collectorCloses)
            defer { Task { await receiver.stop() } }
            let (lab, _) = try await EndToEndTests.start(try EndToEndTests.seedLab()) {
                var t = Self.tracing(receiver)
                t.maxBatch = 2
                t.scheduleDelay = .milliseconds(50)
                $0.gateway.tracing = t
            }
            defer { Task { await lab.stop() } }
            for _ in 0..<4 {
                _ = try await TestClient.post(port: lab.gateway.port, path: "/http-429")
                // One batch at a time, so each post finds the connection the last one left.
                let before = receiver.posts.withLockedValue { $0.count }
                let end = Date().addingTimeInterval(5)
                while Date() < end, receiver.posts.withLockedValue({ $0.count }) == before { try await Task.sleep(for: .milliseconds(20)) }
                try await Task.sleep(for: .milliseconds(50))
            }
            let decoded = try await receiver.waitForSpans(8, python: Self.python)
            #expect(decoded.spans.count == 8)
            #expect(lab.gateway.runtime.traceExporter?.counts.dropped == 0)
            let connections = receiver.connections.withLockedValue { $0 }
            if collectorCloses {
                #expect(connections == 4, "a new connection for each of 4 posts after the collector closed the last")
            } else {
                #expect(connections == 1, "\(connections) connections for 4 posts")
            }
        }

        @Test("a full export queue drops spans at once and counts them; the data path does not wait")
        func queueFull() async throws {
            let failing = try await OTLPReceiver(status: 500)
            defer { Task { await failing.stop() } }
            let (lab, _) = try await EndToEndTests.start(try EndToEndTests.seedLab()) {
                var t = Self.tracing(failing)
                t.maxQueue = 2
                t.scheduleDelay = .seconds(30)
                $0.gateway.tracing = t
            }
            defer { Task { await lab.stop() } }
            for _ in 0..<4 { _ = try await TestClient.post(port: lab.gateway.port, path: "/http-429") }
            // Each request has 2 spans: the first fits the queue of 2, the other three are dropped.
            #expect(lab.gateway.runtime.traceExporter?.counts.dropped == 6)
        }
    }
}

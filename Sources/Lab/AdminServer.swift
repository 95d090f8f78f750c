import Foundation
import Gateway
import NIOCore
import NIOHTTP1
import NIOPosix
import Upstreams

/// The admin port: provider health, metrics, and the stand-ins' live fault controls.
///
/// - `GET /health/providers`: every provider's group, state, reason, eviction and scores.
/// - `GET /standins`: each stand-in's address and behaviour.
/// - `POST /standins/NAME/behavior` with `{"behavior": "503 50%"}` (or the text alone): switch it.
/// - `POST /providers/NAME/return`: end an eviction now.
public final class AdminServer: Sendable {
    private let channel: Channel
    public let port: Int

    private init(channel: Channel) {
        self.channel = channel
        self.port = channel.localAddress?.port ?? 0
    }

    public static func start(lab: RunningLab, host: String, port: Int) async throws -> AdminServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(lab: lab))
                }
            }
            .bind(host: host, port: port).get()
        return AdminServer(channel: channel)
    }

    public func stop() async {
        try? await channel.close()
    }

    /// What the admin API answers to one request: status, body, content type.
    static func answer(lab: RunningLab, method: HTTPMethod, path: String, body: String) async -> (HTTPResponseStatus, String, String) {
        let json = "application/json"
        func failure(_ status: HTTPResponseStatus, _ message: String) -> (HTTPResponseStatus, String, String) {
            (status, Self.encode(["error": ["message": message]]), json)
        }
        let parts = (path.split(separator: "?").first ?? "").split(separator: "/").map(String.init)
        let runtime = lab.gateway.runtime
        if method == .GET && parts == ["health", "providers"] {
            return (.ok, Self.encode(HealthReport.json(runtime: runtime)), json)
        }
        if method == .GET && parts == ["metrics"] {
            return (.ok, runtime.metrics.render(runtime: runtime), "text/plain; version=0.0.4; charset=utf-8")
        }
        if method == .GET && parts == ["standins"] {
            let list = lab.standIns.map { ["name": $0.name, "address": $0.address, "behavior": $0.behavior.description, "requests": $0.requestCount] as [String: Any] }
            return (.ok, Self.encode(["standIns": list]), json)
        }
        if method == .POST && parts.count == 3 && parts[0] == "standins" && parts[2] == "behavior" {
            let name = parts[1]
            guard let standIn = lab.standIn(name) else {
                return failure(.notFound, "no stand-in named \(name); stand-ins: \(lab.standIns.map(\.name).joined(separator: ", "))")
            }
            var text: String? = body.trimmingCharacters(in: .whitespacesAndNewlines)
            var latency: Duration?
            var tokenDelay: Duration?
            if text?.hasPrefix("{") == true {
                guard let object = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] else {
                    return failure(.badRequest, "expected {\"behavior\": \"...\", \"latency\": \"100ms\", \"tokenDelay\": \"50ms\"} or the behavior as plain text")
                }
                text = object["behavior"] as? String
                do {
                    latency = try (object["latency"] as? String).map { try GoDuration.parse($0) }
                    tokenDelay = try (object["tokenDelay"] as? String).map { try GoDuration.parse($0) }
                } catch {
                    return failure(.badRequest, "\(error)")
                }
            }
            var behavior = standIn.behavior
            if let text {
                do {
                    behavior = try StandInBehavior.parse(text)
                } catch {
                    return failure(.badRequest, error.description)
                }
                do {
                    try await standIn.setBehavior(behavior)
                } catch {
                    return failure(.internalServerError, "could not switch \(name): \(error)")
                }
            }
            if let latency { standIn.setLatency(latency) }
            if let tokenDelay { standIn.setTokenDelay(tokenDelay) }
            return (.ok, Self.encode(["name": name, "behavior": behavior.description]), json)
        }
        if method == .POST && parts.count == 3 && parts[0] == "providers" && parts[2] == "return" {
            let name = parts[1]
            for (b, backend) in runtime.plan.backends.enumerated() {
                for (g, group) in backend.groups.enumerated() {
                    guard let p = group.firstIndex(where: { $0.name == name }) else { continue }
                    let index = ProviderIndex(group: g, index: p)
                    runtime.returnNow(backend: b, provider: index)
                    return (.ok, Self.encode(["name": name, "state": runtime.snapshot(backend: b)[index].stateName]), json)
                }
            }
            return failure(.notFound, "no provider named \(name)")
        }
        return failure(.notFound, "unknown admin path \(method.rawValue) \(path); try GET /health/providers, GET /metrics, GET /standins, POST /standins/NAME/behavior, POST /providers/NAME/return")
    }

    static func encode(_ object: Any) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}

private final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let lab: RunningLab
    var head: HTTPRequestHead?
    var body = ByteBuffer()

    init(lab: RunningLab) { self.lab = lab }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
        case .body(var part):
            if body.readableBytes < 64 * 1024 { body.writeBuffer(&part) }
        case .end:
            guard let head else { return }
            let lab = self.lab
            let text = String(buffer: body)
            let loop = context.eventLoop
            let promise = loop.makePromise(of: (HTTPResponseStatus, String, String).self)
            promise.completeWithTask { await AdminServer.answer(lab: lab, method: head.method, path: head.uri, body: text) }
            promise.futureResult.assumeIsolated().whenSuccess { [self] status, payload, contentType in
                var headers = HTTPHeaders()
                headers.add(name: "content-type", value: contentType)
                headers.add(name: "content-length", value: String(payload.utf8.count))
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: payload)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                if !head.isKeepAlive { context.close(promise: nil) }
            }
        }
    }
}

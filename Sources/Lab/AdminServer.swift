import Foundation
import Gateway
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Upstreams
import Wire

/// The admin port: provider health, metrics, and the stand-ins' live fault controls.
///
/// - `GET /health/providers`: every provider's group, state, reason, eviction and scores.
/// - `GET /config_dump`: the same state in agentgateway's shape (`backends[].backend.ai.target.providers`),
///   so `failover-lab watch --admin` and agentgateway's own tooling read it as they read agentgateway.
/// - `GET /standins`: each stand-in's address and behaviour.
/// - `POST /standins/NAME/behavior` with `{"behavior": "503 50%"}` (or the text alone): switch it;
///   `ttft 300ms tokens 200 rate 50/s` in the text, or `"model"` (text or `{"ttft": "300ms", ...}`), shapes the mock's answers.
/// - `POST /providers/NAME/return`: end an eviction now.
///
/// Safe by default (see `AdminAccess`): it listens on loopback unless told otherwise,
/// refuses foreign `Host`s (DNS rebinding) and cross-site browser requests, and with a
/// token set, write calls need `Authorization: Bearer TOKEN`.
public final class AdminServer: Sendable {
    private let channel: Channel
    public let port: Int
    /// The address it listens on, as given (`127.0.0.1` unless `--admin-listen` says otherwise).
    public let host: String
    /// The IP address the socket is bound to, as the system reports it.
    public let boundAddress: String?

    private init(channel: Channel, host: String) {
        self.channel = channel
        self.host = host
        self.port = channel.localAddress?.port ?? 0
        self.boundAddress = channel.localAddress?.ipAddress
    }

    /// The largest request body read; a behaviour is a few bytes.
    static let maxBody = 64 * 1024

    public static func start(lab: RunningLab, host: String, port: Int, token: String? = nil) async throws -> AdminServer {
        let access = NIOLockedValueBox(AdminAccess(listenHost: host, port: port, token: token))
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(lab: lab, access: access))
                }
            }
            .bind(host: host, port: port).get()
        // With port 0 the port is known only now; same-origin checks compare with it.
        let server = AdminServer(channel: channel, host: host)
        access.withLockedValue { $0.port = server.port }
        return server
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
        if method == .GET && parts == ["config_dump"] {
            return (.ok, Self.encode(ConfigDumpReport.json(runtime: runtime)), json)
        }
        if method == .GET && parts == ["metrics"] {
            return (.ok, runtime.metrics.render(runtime: runtime), "text/plain; version=0.0.4; charset=utf-8")
        }
        if method == .GET && parts == ["standins"] {
            let list = lab.standIns.map { ["name": $0.name, "address": $0.address, "behavior": $0.behavior.description, "model": $0.shape.description, "requests": $0.requestCount] as [String: Any] }
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
            var shape: ModelShape?
            if text?.hasPrefix("{") == true {
                guard let object = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] else {
                    return failure(.badRequest, "expected {\"behavior\": \"...\", \"latency\": \"100ms\", \"tokenDelay\": \"50ms\", \"model\": \"ttft 300ms tokens 200 rate 50/s\"} or the behavior as plain text")
                }
                text = object["behavior"] as? String
                do {
                    latency = try (object["latency"] as? String).map { try GoDuration.parse($0) }
                    tokenDelay = try (object["tokenDelay"] as? String).map { try GoDuration.parse($0) }
                } catch {
                    return failure(.badRequest, "\(error)")
                }
                for (key, value) in [("latency", latency), ("tokenDelay", tokenDelay)] {
                    if let value, value > StandInSpec.longestDelay {
                        return failure(.badRequest, "\(key) must be at most \(StandInSpec.longestDelay.compactDescription); use the behavior hang for no answer")
                    }
                }
                for key in ["behavior", "latency", "tokenDelay"] where object[key] != nil && !(object[key] is String) {
                    return failure(.badRequest, "\(key) must be a string, like \"503 50%\" or \"100ms\"")
                }
                if let model = object["model"] {
                    switch ModelShapeJSON.read(model) {
                    case .success(let read): shape = read
                    case .failure(let message): return failure(.badRequest, message)
                    }
                }
            }
            var behavior = standIn.behavior
            if let text {
                let setting: StandInSetting
                do {
                    setting = try StandInSetting.parse(text)
                } catch {
                    return failure(.badRequest, error.description)
                }
                do {
                    if let shape = setting.shape { standIn.setShape(shape) }
                    if let next = setting.behavior {
                        try await standIn.setBehavior(next)
                        behavior = next
                    }
                } catch {
                    return failure(.internalServerError, "could not switch \(name): \(error)")
                }
            }
            if let shape { standIn.setShape(shape) }
            if let latency { standIn.setLatency(latency) }
            if let tokenDelay { standIn.setTokenDelay(tokenDelay) }
            return (.ok, Self.encode(["name": name, "behavior": behavior.description, "model": standIn.shape.description]), json)
        }
        if method == .POST && parts.count == 3 && parts[0] == "providers" && parts[2] == "return" {
            let name = parts[1]
            if let state = lab.returnProvider(named: name) {
                return (.ok, Self.encode(["name": name, "state": state]), json)
            }
            return failure(.notFound, "no provider named \(name)")
        }
        return failure(.notFound, "unknown admin path \(method.rawValue) \(path); try GET /health/providers, GET /config_dump, GET /metrics, GET /standins, POST /standins/NAME/behavior, POST /providers/NAME/return")
    }

    static func encode(_ object: Any) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}

/// `GET /config_dump` in agentgateway's shape, for the `backends` part: each backend an
/// `ai` backend whose `target.providers` holds one `{active, rejected}` per priority group,
/// maps keyed by our provider names, `info` camelCase as agentgateway serializes
/// `EndpointInfo`, `evictedUntil` the time *remaining* as a Go duration string. Two fields
/// are ours (agentgateway's tooling ignores them): `state: "probing"` and `probeSent` for a
/// provider whose eviction is over and whose half-open probe decides.
public enum ConfigDumpReport {
    public static func json(runtime: GatewayRuntime, now: ContinuousClock.Instant = .now) -> [String: Any] {
        var backends: [[String: Any]] = []
        for (index, planned) in runtime.plan.backends.enumerated() {
            let balancer = runtime.snapshot(backend: index)
            var groups: [[String: Any]] = []
            for (g, group) in balancer.groups.enumerated() {
                var active: [String: Any] = [:]
                var rejected: [String: Any] = [:]
                for (p, health) in group.enumerated() {
                    var endpoint: [String: Any] = ["name": health.name]
                    if planned.groups.indices.contains(g), planned.groups[g].indices.contains(p) {
                        endpoint["address"] = planned.groups[g][p].connect.description
                        if let standIn = planned.groups[g][p].standIn { endpoint["standIn"] = standIn }
                    }
                    var info: [String: Any] = [
                        "health": health.health ?? 1,
                        "requestLatency": health.latency ?? 0,
                        "pendingRequests": health.inFlight,
                        "consecutiveFailures": health.consecutiveFailures,
                        "timesEjected": health.timesEvicted,
                        "evictedUntil": NSNull(),
                    ]
                    if let reason = health.reason { info["reason"] = reason.description }
                    switch health.state {
                    case .healthy:
                        active[health.name] = ["endpoint": endpoint, "info": info]
                        continue
                    case .evicted(let until, _):
                        info["evictedUntil"] = goDuration(seconds: max(0, (until - now).seconds))
                    case .probeReady:
                        info["evictedUntil"] = "0s"
                        info["state"] = "probing"
                        info["probeSent"] = false
                    case .probing:
                        info["evictedUntil"] = "0s"
                        info["state"] = "probing"
                        info["probeSent"] = true
                    }
                    rejected[health.name] = ["endpoint": endpoint, "info": info]
                }
                groups.append(["active": active, "rejected": rejected])
            }
            backends.append(["backend": ["ai": ["name": planned.name, "target": ["providers": groups]]]])
        }
        return ["backends": backends]
    }

    /// Go's `time.Duration.String()` form at millisecond precision: `0s`, `250ms`, `59.876s`, `1m0s`, `1h2m3.5s`.
    public static func goDuration(seconds: Double) -> String {
        let totalMs = Checked.clampedInt(seconds * 1000, 0...(Int.max / 2))
        if totalMs == 0 { return "0s" }
        if totalMs < 1000 { return "\(totalMs)ms" }
        let h = totalMs / 3_600_000, m = (totalMs / 60_000) % 60, ms = totalMs % 60_000
        var secs = String(ms / 1000)
        if ms % 1000 != 0 {
            var frac = String(ms % 1000)
            while frac.count < 3 { frac = "0" + frac }
            while frac.hasSuffix("0") { frac.removeLast() }
            secs += "." + frac
        }
        if h > 0 { return "\(h)h\(m)m\(secs)s" }
        if m > 0 { return "\(m)m\(secs)s" }
        return secs + "s"
    }
}

private final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let lab: RunningLab
    /// Shared by every connection; the port in it is set once the listener is bound.
    let access: NIOLockedValueBox<AdminAccess>
    var head: HTTPRequestHead?
    var body = ByteBuffer()
    var bodyTooLarge = false

    init(lab: RunningLab, access: NIOLockedValueBox<AdminAccess>) {
        self.lab = lab
        self.access = access
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
            bodyTooLarge = false
        case .body(var part):
            if body.readableBytes + part.readableBytes <= AdminServer.maxBody { body.writeBuffer(&part) } else { bodyTooLarge = true }
        case .end:
            guard let head else { return }
            self.head = nil
            if let refusal = access.withLockedValue({ $0 }).refusal(head) {
                var headers = HTTPHeaders()
                if refusal.status == .unauthorized { headers.add(name: "www-authenticate", value: #"Bearer realm="failover-lab admin""#) }
                respond(context: context, head: head, status: refusal.status, payload: AdminServer.encode(["error": ["message": refusal.message]]),
                        contentType: "application/json", extraHeaders: headers)
                return
            }
            if bodyTooLarge {
                respond(context: context, head: head, status: .payloadTooLarge,
                        payload: AdminServer.encode(["error": ["message": "request body over \(AdminServer.maxBody) bytes"]]), contentType: "application/json")
                return
            }
            let lab = self.lab
            let text = String(buffer: body)
            let loop = context.eventLoop
            let promise = loop.makePromise(of: (HTTPResponseStatus, String, String).self)
            promise.completeWithTask { await AdminServer.answer(lab: lab, method: head.method, path: head.uri, body: text) }
            promise.futureResult.assumeIsolated().whenSuccess { [self] status, payload, contentType in
                self.respond(context: context, head: head, status: status, payload: payload, contentType: contentType)
            }
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus, payload: String,
                         contentType: String, extraHeaders: HTTPHeaders = HTTPHeaders()) {
        var headers = extraHeaders
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(payload.utf8.count))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: payload)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if !head.isKeepAlive { context.close(promise: nil) }
    }
}

/// Who may call the admin API. A browser page anywhere can send a simple (text/plain)
/// POST to a loopback port, and DNS rebinding can make it same-origin with a foreign
/// host name; curl sends neither an `Origin` nor a foreign `Host`. So:
/// - `Host` must be a loopback name (`localhost`, `127.x.x.x`, `[::1]`) or the admin's
///   own listen address; when that is a wildcard (`0.0.0.0`, `::`), any IP literal
///   (a rebinding attack always comes with a host *name*);
/// - an `Origin` must be the admin itself (`http://` + an allowed host + its port), and
///   `Sec-Fetch-Site`, when sent, must be `same-origin` or `none`;
/// - with a token, every call but GET and HEAD needs `Authorization: Bearer TOKEN`.
public struct AdminAccess: Sendable {
    public var listenHost: String
    public var port: Int
    public var token: String?

    public init(listenHost: String, port: Int, token: String?) {
        self.listenHost = listenHost
        self.port = port
        self.token = token
    }

    /// Why a request is refused (403 or 401, and a message), or nil when it may go on.
    public func refusal(_ head: HTTPRequestHead) -> (status: HTTPResponseStatus, message: String)? {
        let hosts = head.headers["host"]
        guard hosts.count == 1, let host = hosts.first else {
            return (.forbidden, hosts.isEmpty ? "the admin API needs a Host header" : "the admin API takes one Host header")
        }
        guard let hostName = Self.hostName(ofAuthority: host), isAllowed(hostName) else {
            return (.forbidden, "Host \(Self.shown(host)) is not this admin API's address; use localhost, 127.0.0.1 or [::1] (refused as possible DNS rebinding)")
        }
        for origin in head.headers["origin"] {
            guard isSameOrigin(origin) else {
                return (.forbidden, "cross-origin request from \(Self.shown(origin)) refused; the admin API serves curl and local tools, not web pages")
            }
        }
        for site in head.headers["sec-fetch-site"] where !["same-origin", "none"].contains(site.lowercased()) {
            return (.forbidden, "request with Sec-Fetch-Site: \(Self.shown(site)) refused; the admin API serves curl and local tools, not web pages")
        }
        if let token, head.method != .GET, head.method != .HEAD {
            let given = head.headers["authorization"].first ?? ""
            guard Self.constantTimeEqual(given, "Bearer " + token) else {
                return (.unauthorized, given.isEmpty
                    ? "this admin API needs Authorization: Bearer TOKEN for \(head.method.rawValue) (the token given with --admin-token or FAILOVER_LAB_ADMIN_TOKEN)"
                    : "wrong admin token")
            }
        }
        return nil
    }

    func isAllowed(_ host: String) -> Bool {
        if Self.isLoopbackName(host) { return true }
        let own = Self.unbracketed(listenHost.lowercased())
        if host == own { return true }
        if own == "0.0.0.0" || own == "::" || own == "" { return Self.isIPv4(host) || host.contains(":") }
        return false
    }

    func isSameOrigin(_ origin: String) -> Bool {
        let lower = origin.lowercased()
        guard lower.hasPrefix("http://") else { return false }
        let authority = String(lower.dropFirst("http://".count))
        guard !authority.contains("/"), let host = Self.hostName(ofAuthority: authority), isAllowed(host) else { return false }
        let portText = Self.portText(ofAuthority: authority)
        return (portText.flatMap { Int($0) } ?? 80) == port
    }

    /// `localhost`, 127.0.0.0/8 and ::1.
    static func isLoopbackName(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        return isIPv4(host) && host.hasPrefix("127.")
    }

    static func isIPv4(_ host: String) -> Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy { ("0"..."9").contains($0) } && Int(part).map { $0 <= 255 } == true
        }
    }

    /// The host of `host[:port]` or `[v6][:port]`, lowercased; nil when malformed.
    static func hostName(ofAuthority authority: String) -> String? {
        let a = authority.lowercased().trimmingCharacters(in: .whitespaces)
        if a.hasPrefix("[") {
            guard let close = a.firstIndex(of: "]") else { return nil }
            let rest = a[a.index(after: close)...]
            guard rest.isEmpty || (rest.hasPrefix(":") && rest.dropFirst().allSatisfy { ("0"..."9").contains($0) }) else { return nil }
            return String(a[a.index(after: a.startIndex)..<close])
        }
        let parts = a.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, let name = parts.first, !name.isEmpty else { return nil }
        if parts.count == 2 && !parts[1].allSatisfy({ ("0"..."9").contains($0) }) { return nil }
        return String(name)
    }

    static func portText(ofAuthority authority: String) -> String? {
        let afterHost = authority.hasPrefix("[") ? authority[(authority.firstIndex(of: "]") ?? authority.startIndex)...].dropFirst() : Substring(authority)
        guard let colon = afterHost.lastIndex(of: ":") else { return nil }
        return String(afterHost[afterHost.index(after: colon)...])
    }

    static func unbracketed(_ host: String) -> String {
        host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }

    /// A header value in a message: quoted, cut, control characters escaped.
    static func shown(_ value: String) -> String {
        let cut = value.count > 100 ? String(value.prefix(100)) + "..." : value
        return "\"" + cut.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : String($0) }.joined() + "\""
    }

    /// Compares without stopping at the first difference, so timing does not tell how much
    /// of a guessed token was right.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }
}

import Foundation
import Testing
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
@testable import Gateway
@testable import Lab
import Upstreams

/// The admin API is safe by default: loopback, no foreign Host (DNS rebinding), no
/// cross-site browser requests, an optional token on writes; curl keeps working.
@Suite("Admin API access rules")
struct AdminAccessTests {
    static func head(_ method: HTTPMethod, _ headers: [(String, String)]) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: method, uri: "/standins/openai/behavior", headers: HTTPHeaders(headers))
    }

    static func head(_ headers: [(String, String)]) -> HTTPRequestHead { head(.POST, headers) }

    let loopback = AdminAccess(listenHost: "127.0.0.1", port: 15020, token: nil)

    @Test("curl's requests pass: Host localhost, 127.0.0.1 or [::1], with or without the port, no Origin")
    func curlPasses() {
        for host in ["localhost:15020", "localhost", "127.0.0.1:15020", "127.1.2.3", "[::1]:15020", "LOCALHOST:15020"] {
            #expect(loopback.refusal(Self.head([("Host", host)])) == nil, "\(host)")
        }
        // Same-origin browser requests (a page the admin served itself) pass too.
        #expect(loopback.refusal(Self.head([("Host", "localhost:15020"), ("Origin", "http://localhost:15020"), ("Sec-Fetch-Site", "same-origin")])) == nil)
        #expect(loopback.refusal(Self.head(.GET, [("Host", "localhost:15020"), ("Sec-Fetch-Site", "none")])) == nil)
    }

    @Test("foreign, missing, doubled or malformed Hosts get 403", arguments: [
        "evil.example", "evil.example:15020", "localhost.evil.example", "127.0.0.1.nip.io", "10.0.0.5", "[::2]:15020",
        "localhost:abc", "[::1", "", "127.0.0.1:15020:1",
    ])
    func foreignHost(_ host: String) {
        let refusal = loopback.refusal(Self.head([("Host", host)]))
        #expect(refusal?.status == .forbidden, "\(host)")
    }

    @Test("no Host, or two, is refused")
    func hostCount() {
        #expect(loopback.refusal(Self.head([]))?.status == .forbidden)
        #expect(loopback.refusal(Self.head([("Host", "localhost"), ("Host", "localhost")]))?.status == .forbidden)
    }

    @Test("an Origin or Sec-Fetch-Site from elsewhere gets 403", arguments: [
        [("Origin", "http://evil.example")], [("Origin", "null")], [("Origin", "https://localhost:15020")],
        [("Origin", "http://localhost:3000")], [("Origin", "http://127.0.0.1")], [("Sec-Fetch-Site", "cross-site")],
        [("Sec-Fetch-Site", "same-site")], [("Origin", "http://localhost:15020"), ("Origin", "http://evil.example")],
    ])
    func crossSite(_ extra: [(String, String)]) {
        let refusal = loopback.refusal(Self.head([("Host", "localhost:15020")] + extra))
        #expect(refusal?.status == .forbidden, "\(extra)")
        #expect(refusal?.message.contains("refused") == true)
    }

    @Test("listening on the wildcard: IP literals pass, host names still do not; the own address passes")
    func wildcardAndOwnAddress() {
        let wildcard = AdminAccess(listenHost: "0.0.0.0", port: 15020, token: nil)
        #expect(wildcard.refusal(Self.head([("Host", "192.168.1.20:15020")])) == nil)
        #expect(wildcard.refusal(Self.head([("Host", "[fe80::1]:15020")])) == nil)
        #expect(wildcard.refusal(Self.head([("Host", "rebind.evil.example:15020")]))?.status == .forbidden)
        let own = AdminAccess(listenHost: "10.1.2.3", port: 15020, token: nil)
        #expect(own.refusal(Self.head([("Host", "10.1.2.3:15020")])) == nil)
        #expect(own.refusal(Self.head([("Host", "10.1.2.4:15020")]))?.status == .forbidden)
    }

    @Test("with a token, POST needs Authorization: Bearer TOKEN (401 otherwise); GET does not")
    func token() {
        let guarded = AdminAccess(listenHost: "127.0.0.1", port: 15020, token: "s3cret")
        #expect(guarded.refusal(Self.head([("Host", "localhost")]))?.status == .unauthorized)
        #expect(guarded.refusal(Self.head([("Host", "localhost"), ("Authorization", "Bearer wrong")]))?.status == .unauthorized)
        #expect(guarded.refusal(Self.head([("Host", "localhost"), ("Authorization", "Bearer s3cre")]))?.status == .unauthorized)
        #expect(guarded.refusal(Self.head([("Host", "localhost"), ("Authorization", "Bearer s3cret")])) == nil)
        #expect(guarded.refusal(Self.head(.GET, [("Host", "localhost")])) == nil)
        #expect(guarded.refusal(Self.head(.DELETE, [("Host", "localhost")]))?.status == .unauthorized)
        // The Host rule comes first: a foreign Host with the right token is still refused.
        #expect(guarded.refusal(Self.head([("Host", "evil.example"), ("Authorization", "Bearer s3cret")]))?.status == .forbidden)
    }
}

/// Sends raw request bytes and reads the whole answer until the server closes.
enum RawHTTP {
    static func exchange(port: Int, _ request: String) async throws -> String {
        let collector = RawCollector()
        let channel = try await ClientBootstrap(group: TestClient.group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(string: request)).get()
        return try await collector.done.futureResult(on: channel.eventLoop).get()
    }

    /// The status code of a raw answer.
    static func status(_ answer: String) -> Int? {
        answer.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) }
    }

    static func request(_ method: String, _ path: String, host: String?, headers: [(String, String)] = [], body: String = "") -> String {
        var text = "\(method) \(path) HTTP/1.1\r\n"
        if let host { text += "Host: \(host)\r\n" }
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        return text
    }
}

final class RawCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private var text = ""
    let done = LatePromise<String>()
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        text += String(buffer: unwrapInboundIn(data))
    }
    func channelInactive(context: ChannelHandlerContext) { done.complete(.success(text)) }
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        done.complete(.success(text))
        context.close(promise: nil)
    }
}

extension OverSockets {
    @Suite("Admin API over the wire", .serialized)
    struct AdminSafetyTests {
        static func start(token: String? = nil, gatewayHost: String = "127.0.0.1") async throws -> RunningLab {
            let (lab, _) = try await EndToEndTests.start(try EndToEndTests.seedLab()) {
                $0.adminPort = 0
                $0.host = gatewayHost
                $0.adminToken = token
            }
            return lab
        }

        @Test("the admin port stays on loopback when the gateway listens on 0.0.0.0")
        func loopbackByDefault() async throws {
            let lab = try await Self.start(gatewayHost: "0.0.0.0")
            defer { Task { await lab.stop() } }
            let admin = try #require(lab.admin)
            #expect(admin.boundAddress == "127.0.0.1")
            #expect(lab.gateway.address.ipAddress == "0.0.0.0")
        }

        @Test("a DNS-rebinding Host and a cross-site text/plain POST are refused (403) and change nothing; curl-style requests work")
        func refusalsAndCurl() async throws {
            let lab = try await Self.start()
            defer { Task { await lab.stop() } }
            let port = try #require(lab.admin).port
            let write = "/standins/openai/behavior"
            let attacks: [(String?, [(String, String)])] = [
                ("rebind.evil.example:\(port)", []),
                (nil, []),
                ("localhost:\(port)", [("Origin", "http://evil.example"), ("Content-Type", "text/plain")]),
                ("localhost:\(port)", [("Origin", "null"), ("Content-Type", "text/plain")]),
                ("localhost:\(port)", [("Sec-Fetch-Site", "cross-site"), ("Content-Type", "text/plain")]),
            ]
            for (host, headers) in attacks {
                let answer = try await RawHTTP.exchange(port: port, RawHTTP.request("POST", write, host: host, headers: headers, body: "503 100%"))
                #expect(RawHTTP.status(answer) == 403, "\(host ?? "no host") \(headers): \(answer.prefix(200))")
                #expect(answer.contains("refused") || answer.contains("needs a Host"))
            }
            #expect(lab.standIn("openai")?.behavior == .healthy, "no refused request changed anything")
            #expect(RawHTTP.status(try await RawHTTP.exchange(port: port, RawHTTP.request("GET", "/health/providers", host: "evil.example"))) == 403)

            // What curl sends: Host localhost:PORT (or 127.0.0.1), no Origin.
            let curl = try await RawHTTP.exchange(port: port, RawHTTP.request("POST", write, host: "localhost:\(port)",
                headers: [("User-Agent", "curl/8.5.0"), ("Accept", "*/*"), ("Content-Type", "application/x-www-form-urlencoded")], body: "503 100%"))
            #expect(RawHTTP.status(curl) == 200, "\(curl)")
            #expect(lab.standIn("openai")?.behavior == .serverErrors(status: 503, share: 1))
            #expect(try await TestClient.request(port: port, method: .GET, path: "/standins", body: nil).status == 200)
            // The gateway itself still serves.
            #expect(try await TestClient.post(port: lab.gateway.port, path: "/http-429").status == 429)
        }

        @Test("bad behaviour text is a 400 with what was wrong, and the process serves the next request")
        func badBehavior() async throws {
            let lab = try await Self.start()
            defer { Task { await lab.stop() } }
            let port = try #require(lab.admin).port
            for (body, expected) in [("slow infms", "delay infms is not a duration"), ("503 500%", "share must be a percentage"),
                                     (#"{"behavior": "slow 1e300ms"}"#, "longer than 60 minutes"), (#"{"latency": "99999999999h"}"#, "out of range"),
                                     (#"{"tokenDelay": "2h"}"#, "at most"), (#"{"behavior": 5}"#, "behavior must be a string")] {
                let r = try await TestClient.request(port: port, method: .POST, path: "/standins/openai/behavior", body: body)
                #expect(r.status == 400, "\(body): \(r.body)")
                #expect(r.body.contains(expected), "\(body): \(r.body)")
            }
            #expect(try await TestClient.request(port: port, method: .GET, path: "/standins", body: nil).status == 200)
            #expect(try await TestClient.post(port: lab.gateway.port, path: "/http-429").status == 429)
            #expect(try await TestClient.post(port: lab.gateway.port, path: "/http-429").status == 200)
        }

        @Test("with a token: POST without it is 401 (with WWW-Authenticate), with it 200; GET needs none")
        func token() async throws {
            let lab = try await Self.start(token: "s3cret-token")
            defer { Task { await lab.stop() } }
            let port = try #require(lab.admin).port
            let none = try await TestClient.request(port: port, method: .POST, path: "/providers/http-429-provider/return", body: "")
            #expect(none.status == 401)
            #expect(none.header("www-authenticate")?.hasPrefix("Bearer") == true)
            let wrong = try await TestClient.request(port: port, method: .POST, path: "/providers/http-429-provider/return", headers: [("Authorization", "Bearer nope")], body: "")
            #expect(wrong.status == 401)
            let right = try await TestClient.request(port: port, method: .POST, path: "/providers/http-429-provider/return", headers: [("Authorization", "Bearer s3cret-token")], body: "")
            #expect(right.status == 200)
            #expect(try await TestClient.request(port: port, method: .GET, path: "/health/providers", body: nil).status == 200)
        }

        @Test("an admin body over 64 KiB is a 413, not truncated and applied")
        func bodyLimit() async throws {
            let lab = try await Self.start()
            defer { Task { await lab.stop() } }
            let port = try #require(lab.admin).port
            let r = try await TestClient.request(port: port, method: .POST, path: "/standins/openai/behavior", body: "hang" + String(repeating: " ", count: 70_000))
            #expect(r.status == 413)
            #expect(lab.standIn("openai")?.behavior == .healthy)
        }
    }
}

import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
@testable import Gateway
@testable import Lab

/// An upstream that answers each request with a fixed completion after `delay`.
final class SlowUpstream: Sendable {
    let channel: Channel
    var port: Int { channel.localAddress!.port! }

    init(delay: TimeAmount) async throws {
        channel = try await ServerBootstrap(group: TestClient.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(SlowAnswer(delay: delay))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func stop() async { try? await channel.close() }
}

private final class SlowAnswer: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let delay: TimeAmount
    init(delay: TimeAmount) { self.delay = delay }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        let payload = OverSockets.WireEndToEndTests.completion
        context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "content-length", value: String(payload.utf8.count))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: payload)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

extension OverSockets {
    @Suite("Drain on shutdown", .serialized)
    struct DrainTests {
        static let path = "/lab/v1/chat/completions"

        static func start(upstream: SlowUpstream, log: String, drain: Duration) async throws -> RunningLab {
            let (lab, _) = try await EndToEndTests.start(try loadLab(EndToEndTests.directLab(port: upstream.port)), accessLog: try AccessLogWriter(path: log)) {
                $0.gateway.drainTimeout = drain
            }
            return lab
        }

        /// `count` requests in flight, then `stop()`: what each client got (status, or nil when cut).
        static func stopUnderLoad(_ lab: RunningLab, count: Int) async throws -> (statuses: [Int?], stopTook: Duration, lateConnect: Bool) {
            let port = lab.gateway.port
            let requests = (0..<count).map { _ in
                Task { try? await TestClient.post(port: port, path: Self.path).status }
            }
            // Let them all reach the upstream.
            for _ in 0..<100 where lab.gateway.runtime.connectionCount < count {
                try await Task.sleep(for: .milliseconds(10))
            }
            try await Task.sleep(for: .milliseconds(100))
            let clock = ContinuousClock()
            let start = clock.now
            let stopping = Task { await lab.stop() }
            try await Task.sleep(for: .milliseconds(50))
            // The listener is closed at once: a new client is refused.
            let late = (try? await TestClient.post(port: port, path: Self.path)) != nil
            await stopping.value
            let took = clock.now - start
            var statuses: [Int?] = []
            for request in requests { statuses.append(await request.value) }
            return (statuses, took, late)
        }

        @Test("SIGTERM's stop: requests in flight finish and are answered; every one has its log line; no new connection is taken")
        func drains() async throws {
            let upstream = try await SlowUpstream(delay: .milliseconds(700))
            defer { Task { await upstream.stop() } }
            let log = temporaryLogPath()
            defer { try? FileManager.default.removeItem(atPath: log) }
            let lab = try await Self.start(upstream: upstream, log: log, drain: .seconds(5))
            let result = try await Self.stopUnderLoad(lab, count: 8)
            #expect(result.statuses == Array(repeating: 200, count: 8))
            #expect(!result.lateConnect)
            #expect(result.stopTook < .seconds(3), "stop took \(result.stopTook)")
            let lines = accessLogLines(log)
            #expect(lines.count == 8)
            #expect(lines.allSatisfy { $0.contains("\"http.status\":200") })
        }

        @Test("the drain timeout ends what is still running: cut requests are logged (499), lines = requests, stop returns soon after")
        func drainTimeout() async throws {
            let upstream = try await SlowUpstream(delay: .seconds(5))
            defer { Task { await upstream.stop() } }
            let log = temporaryLogPath()
            defer { try? FileManager.default.removeItem(atPath: log) }
            let lab = try await Self.start(upstream: upstream, log: log, drain: .milliseconds(300))
            let result = try await Self.stopUnderLoad(lab, count: 4)
            #expect(result.statuses.allSatisfy { $0 == nil })
            #expect(result.stopTook >= .milliseconds(250) && result.stopTook < .seconds(2), "stop took \(result.stopTook)")
            let lines = accessLogLines(log)
            #expect(lines.count == 4)
            #expect(lines.allSatisfy { $0.contains("\"http.status\":499") })
        }

        @Test("the gateway process on SIGTERM under load: every request in flight is answered, lines = responses, exit 0, no NIO warning")
        func sigterm() async throws {
            let log = temporaryLogPath()
            defer { try? FileManager.default.removeItem(atPath: log) }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CommandLineTests.binary)
            process.arguments = ["gateway", "--port", "0", "--admin-port", "0", "--access-log", log, "--drain-timeout", "5s"]
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            defer { if process.isRunning { process.terminate() } }
            var stderrText = ""
            var port: Int?, admin: Int?
            let deadline = Date().addingTimeInterval(20)
            while port == nil && Date() < deadline {
                let chunk = err.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                stderrText += String(decoding: chunk, as: UTF8.self)
                for line in stderrText.split(separator: "\n") {
                    if line.hasPrefix("listening on http://") { port = line.split(separator: ":").last.flatMap { Int($0) } }
                    if line.hasPrefix("admin on http://") { admin = line.split(separator: ":").dropFirst(2).first.flatMap { Int($0.prefix { $0.isNumber }) } }
                }
            }
            let gatewayPort = try #require(port, "\(stderrText)")
            let adminPort = try #require(admin, "\(stderrText)")
            // The first request evicts http-429; the rest go to a slow openai stand-in.
            #expect(try await TestClient.post(port: gatewayPort, path: "/http-429").status == 429)
            let set = try await TestClient.request(port: adminPort, method: .POST, path: "/standins/openai/behavior", body: "slow 800ms")
            #expect(set.status == 200)
            let requests = (0..<6).map { _ in Task { try? await TestClient.post(port: gatewayPort, path: "/http-429").status } }
            try await Task.sleep(for: .milliseconds(250))
            kill(process.processIdentifier, SIGTERM)
            var statuses: [Int?] = []
            for request in requests { statuses.append(await request.value) }
            process.waitUntilExit()
            stderrText += String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(statuses == Array(repeating: 200, count: 6))
            #expect(process.terminationStatus == 0)
            #expect(accessLogLines(log).count == 7)
            #expect(stderrText.contains("draining"))
            #expect(!stderrText.lowercased().contains("shut down") && !stderrText.contains("NIO"), "\(stderrText)")
        }
    }
}

import Foundation
import NIOCore
import Testing
@testable import Gateway
@testable import Lab

extension OverSockets {
    @Suite("Client limits and timeouts", .serialized)
    struct LimitsTests {
        typealias Wire = WireEndToEndTests
        static let path = "/lab/v1/chat/completions"

        static func start(upstream: RawUpstream, log: String? = nil, lab: String? = nil, _ configure: @escaping (inout GatewayOptions) -> Void) async throws -> (RunningLab, EventLog) {
            try await EndToEndTests.start(try loadLab(lab ?? EndToEndTests.directLab(port: upstream.port)), accessLog: try log.map { try AccessLogWriter(path: $0) }) {
                configure(&$0.gateway)
            }
        }

        @Test("slowloris: a head sent a byte at a time is cut at the header timeout with 408 and logged; a silent connection is closed unlogged; others are served")
        func slowHead() async throws {
            let upstream = try await RawUpstream { _ in .init(bytes: Wire.sized()) }
            defer { Task { await upstream.stop() } }
            let log = temporaryLogPath()
            defer { try? FileManager.default.removeItem(atPath: log) }
            let (lab, events) = try await Self.start(upstream: upstream, log: log) { $0.clientHeaderTimeout = .milliseconds(300) }
            defer { Task { await lab.stop() } }
            let port = lab.gateway.port
            let clock = ContinuousClock()
            let start = clock.now
            // 60 pieces 50 ms apart: 3 s if the gateway waited for all of them.
            let head = Array("POST \(Self.path) HTTP/1.1\r\nHost: gw\r\nX-Slow: aaaaaaaaaaaaaaaa")
            async let slow = Task.detached {
                let socket = try HeldSocket(port: port)
                for c in head {
                    socket.send(String(c))
                    try await Task.sleep(for: .milliseconds(50))
                    if socket.read(timeout: .milliseconds(1)).closed { break }
                }
                return socket.read(timeout: .seconds(3))
            }.value
            let silent = try HeldSocket(port: port)
            let quiet = silent.read(timeout: .seconds(3))
            let quietAt = clock.now - start
            #expect(quiet.closed && quiet.text.isEmpty)
            #expect(quietAt >= .milliseconds(300) && quietAt < .milliseconds(1500), "silent connection closed at \(quietAt)")
            _ = try await slow
            let slowAt = clock.now - start
            #expect(slowAt < .milliseconds(2000), "slow head cut at \(slowAt)")
            let lines = accessLogLines(log)
            #expect(lines.count == 1)
            #expect(lines.first?.contains("\"http.status\":408") == true)
            #expect(lines.first?.contains("client-header-timeout") == true)
            #expect(events.requests.map(\.status) == [408])
            let next = try await TestClient.post(port: port, path: Self.path)
            #expect(next.status == 200)
        }

        @Test("a body that stops: 408 at the body timeout and closed; a body that trickles faster than the timeout is served")
        func slowBody() async throws {
            let upstream = try await RawUpstream { _ in .init(bytes: Wire.sized()) }
            defer { Task { await upstream.stop() } }
            let (lab, events) = try await Self.start(upstream: upstream) { $0.clientBodyTimeout = .milliseconds(300) }
            defer { Task { await lab.stop() } }
            let port = lab.gateway.port
            let clock = ContinuousClock()
            let stalled = try HeldSocket(port: port)
            let start = clock.now
            stalled.send("POST \(Self.path) HTTP/1.1\r\nHost: gw\r\nContent-Length: 26\r\n\r\n{\"model\":")
            let reply = stalled.read(timeout: .seconds(3))
            let at = clock.now - start
            #expect(reply.closed)
            #expect(reply.text.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), "\(reply.text)")
            #expect(reply.text.contains("client-body-timeout"))
            #expect(at >= .milliseconds(300) && at < .milliseconds(1500), "cut at \(at)")
            #expect(events.requests.map(\.status) == [408])

            // 26 bytes, one every 100 ms: 2.6 s in all, never 300 ms without a byte.
            let trickle = try HeldSocket(port: port)
            trickle.send("POST \(Self.path) HTTP/1.1\r\nHost: gw\r\nContent-Length: 26\r\n\r\n")
            for c in HostileWireTests.body {
                trickle.send(String(c))
                try await Task.sleep(for: .milliseconds(100))
            }
            let answer = trickle.read { $0.contains(Wire.completion) }
            #expect(answer.text.hasPrefix("HTTP/1.1 200 OK"), "\(answer.text.prefix(200))")
        }

        @Test("a keep-alive connection idle past the idle timeout is closed, unlogged; one in use is not")
        func idle() async throws {
            let upstream = try await RawUpstream { _ in .init(bytes: Wire.sized()) }
            defer { Task { await upstream.stop() } }
            let (lab, events) = try await Self.start(upstream: upstream) { $0.idleTimeout = .milliseconds(400) }
            defer { Task { await lab.stop() } }
            let socket = try HeldSocket(port: lab.gateway.port)
            // Requests 200 ms apart keep it open past the timeout.
            for _ in 0..<4 {
                #expect(socket.exchange(Wire.post()).hasPrefix("HTTP/1.1 200 OK"))
                try await Task.sleep(for: .milliseconds(200))
            }
            let clock = ContinuousClock()
            let start = clock.now
            let rest = socket.read(timeout: .seconds(3))
            let at = clock.now - start
            #expect(rest.closed && rest.text.isEmpty)
            #expect(at >= .milliseconds(150) && at < .milliseconds(1500), "closed after \(at)")
            #expect(events.requests.count == 4)
        }

        @Test("past --max-connections new connections are closed at once while a held keep-alive client is still answered")
        func connectionCap() async throws {
            let upstream = try await RawUpstream { _ in .init(bytes: Wire.sized()) }
            defer { Task { await upstream.stop() } }
            let (lab, _) = try await Self.start(upstream: upstream) { $0.maxConnections = 2 }
            defer { Task { await lab.stop() } }
            let port = lab.gateway.port
            let a = try HeldSocket(port: port)
            #expect(a.exchange(Wire.post()).hasPrefix("HTTP/1.1 200 OK"))
            var b: HeldSocket? = try HeldSocket(port: port)
            #expect(b!.exchange(Wire.post()).hasPrefix("HTTP/1.1 200 OK"))
            let clock = ContinuousClock()
            for _ in 0..<3 {
                let start = clock.now
                let c = try HeldSocket(port: port)
                c.send(Wire.post())
                let refused = c.read(timeout: .seconds(2))
                #expect(refused.closed && refused.text.isEmpty, "\(refused.text.prefix(100))")
                #expect(clock.now - start < .milliseconds(1000))
            }
            let start = clock.now
            #expect(a.exchange(Wire.post()).hasPrefix("HTTP/1.1 200 OK"))
            #expect(clock.now - start < .milliseconds(500))
            let metrics = lab.gateway.runtime.metrics.render(runtime: lab.gateway.runtime)
            #expect(metrics.contains("failover_client_connections_refused_total 3"))
            // Once one leaves, a new client is served.
            b = nil
            _ = b
            var served = false
            for _ in 0..<50 where !served {
                try await Task.sleep(for: .milliseconds(20))
                if lab.gateway.runtime.connectionCount < 2 {
                    served = (try? await TestClient.post(port: port, path: Self.path).status) == 200
                }
            }
            #expect(served)
        }

        @Test("no route timeout and an upstream that never answers: 504 at --upstream-header-timeout, logged as a timeout")
        func upstreamHeaderTimeout() async throws {
            let upstream = try await RawUpstream { _ in .init(bytes: "") }
            defer { Task { await upstream.stop() } }
            let noTimeout = EndToEndTests.directLab(port: upstream.port).replacingOccurrences(of: "timeouts: {request: 5s}", with: "")
            let (lab, events) = try await Self.start(upstream: upstream, lab: noTimeout) { $0.upstreamHeaderTimeout = .milliseconds(300) }
            defer { Task { await lab.stop() } }
            #expect(lab.gateway.runtime.plan.routes.first?.requestTimeout == nil)
            let clock = ContinuousClock()
            let start = clock.now
            let r = try await TestClient.post(port: lab.gateway.port, path: Self.path)
            let at = clock.now - start
            #expect(r.status == 504)
            #expect(r.body.contains("upstream-header-timeout"))
            #expect(at >= .milliseconds(300) && at < .milliseconds(2000), "504 after \(at)")
            #expect(events.requests.first?.attempts.first?.failure == "timeout")
        }

        @Test("limit flags: in --help of gateway and run; out-of-range values are clear errors (exit 64), never a trap", arguments: [
            ["--client-header-timeout", "99999999999h"], ["--client-body-timeout", "999999h999999h"], ["--idle-timeout", "0s"],
            ["--upstream-header-timeout", "-5s"], ["--drain-timeout", "2h"], ["--max-body-buffer", "99999999999999G"],
            ["--max-connections", "0"], ["--idle-timeout", "1e400s"],
        ])
        func flags(_ arguments: [String]) throws {
            let result = try CommandLineTests.run(["gateway"] + arguments)
            #expect(result.status == 64, "\(result.stderr)")
            #expect(result.stderr.contains(arguments[0]), "\(result.stderr)")
            #expect(!result.stderr.contains("Fatal error"))
            for command in ["gateway", "run"] {
                let help = try CommandLineTests.run([command, "--help"]).stdout
                for flag in ["--client-header-timeout", "--client-body-timeout", "--idle-timeout", "--upstream-header-timeout", "--max-connections", "--max-body-buffer", "--drain-timeout"] {
                    #expect(help.contains(flag), "\(command) --help lacks \(flag)")
                }
            }
        }

        @Test("out of descriptors (ulimit -n 80, 200 clients, cap set above it): accept pauses instead of spinning; served again once they leave")
        func outOfDescriptors() async throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "ulimit -n 80; exec \"$0\" gateway --port 0 --admin-port 0 --threads 1 --max-connections 1000", CommandLineTests.binary]
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            defer { if process.isRunning { process.terminate() } }
            var stderrText = ""
            var port: Int?
            while port == nil {
                let chunk = err.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                stderrText += String(decoding: chunk, as: UTF8.self)
                port = stderrText.split(separator: "\n").first { $0.hasPrefix("listening on http://") }?.split(separator: ":").last.flatMap { Int($0) }
            }
            let gatewayPort = try #require(port, "\(stderrText)")
            var held: [HeldSocket] = []
            for _ in 0..<200 { held.append(try HeldSocket(port: gatewayPort)) }
            try await Task.sleep(for: .milliseconds(300))
            func cpuSeconds() throws -> Double {
                let stat = try String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8)
                let fields = stat.split(separator: ")").last!.split(separator: " ")
                return (Double(fields[11])! + Double(fields[12])!) / Double(sysconf(Int32(_SC_CLK_TCK)))
            }
            let before = try cpuSeconds()
            try await Task.sleep(for: .seconds(2))
            let used = try cpuSeconds() - before
            #expect(used < 0.5, "the gateway used \(used) s of CPU in 2 s while out of descriptors")
            held.removeAll()
            var status: Int?
            for _ in 0..<30 where status == nil {
                try await Task.sleep(for: .milliseconds(100))
                status = try? await TestClient.post(port: gatewayPort, path: "/http-429").status
            }
            #expect(status == 429)
        }
    }
}

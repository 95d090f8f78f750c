import Foundation
import Testing
@testable import Gateway
@testable import Lab

extension OverSockets {
    /// Clients that already exist (the openai SDK, Prometheus, promtool) against the gateway,
    /// and the access log under a kill.
    @Suite("Clients and telemetry", .serialized)
    struct ClientsAndTelemetryTests {
        static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

        static func which(_ name: String) -> String? {
            for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") + ["/usr/sbin", "/usr/bin"] {
                let path = "\(dir)/\(name)"
                if FileManager.default.isExecutableFile(atPath: path) { return path }
            }
            return nil
        }

        /// Runs a program to completion with optional standard input.
        static func run(_ program: String, _ arguments: [String], input: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = arguments
            let out = Pipe(), err = Pipe(), inp = Pipe()
            process.standardOutput = out
            process.standardError = err
            process.standardInput = inp
            try process.run()
            if let input { inp.fileHandleForWriting.write(Data(input.utf8)) }
            try inp.fileHandleForWriting.close()
            let stdout = out.fileHandleForReading.readDataToEndOfFile()
            let stderr = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
        }

        static func freePort() async throws -> Int {
            let probe = try await RecordingUpstream()
            let port = probe.port
            await probe.stop()
            return port
        }

        @Test("the official openai SDK: RateLimitError with retry-after 60, then gpt-4o-mini; default retries succeed; streaming matches")
        func openAISDK() async throws {
            let python = ProcessInfo.processInfo.environment["FAILOVER_LAB_PYTHON"] ?? Self.repository.appendingPathComponent(".build-venv/bin/python").path
            try #require(FileManager.default.isExecutableFile(atPath: python), "no Python with the openai SDK at \(python); scripts/test creates it")
            let (a, _) = try await EndToEndTests.start(try EndToEndTests.seedLab())
            defer { Task { await a.stop() } }
            let (b, eventsB) = try await EndToEndTests.start(try EndToEndTests.seedLab())
            defer { Task { await b.stop() } }
            let script = Self.repository.appendingPathComponent("Tests/clients/openai_sdk.py").path
            let result = try Self.run(python, [script, "\(a.gatewayURL)/http-429", "\(b.gatewayURL)/http-429"])
            try #require(result.status == 0, "openai_sdk.py failed: \(result.stderr)")
            let json = try #require((try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any], "\(result.stdout)")
            print("openai SDK \(json["sdk_version"] ?? "?"): \(result.stdout)")
            let first = try #require(json["first"] as? [String: Any])
            #expect(first["raised"] as? String == "RateLimitError")
            #expect(first["status"] as? Int == 429)
            #expect(first["retry_after"] as? String == "60")
            #expect(first["message"] as? String == "Rate limit exceeded")
            let second = try #require(json["second"] as? [String: Any])
            #expect(second["model"] as? String == "gpt-4o-mini")
            #expect(second["content"] as? String == "2 + 2 equals 4.")
            let retried = try #require(json["default_retries"] as? [String: Any])
            #expect(retried["model"] as? String == "gpt-4o-mini")
            #expect(retried["retries_taken"] as? Int == 1)
            #expect(retried["attempts"] as? String == "openai-provider=200")
            #expect((retried["sdk_log"] as? [String])?.isEmpty == false)
            let stream = try #require(json["stream"] as? [String: Any])
            #expect(stream["text"] as? String == second["content"] as? String)
            #expect((stream["chunks"] as? Int ?? 0) > 3)
            // The gateway asked for the usage chunk and counted the streamed tokens.
            let streamed = try #require(eventsB.requests.last)
            #expect(streamed.outputTokens == 5)
            #expect(streamed.timeToFirstToken != nil)
            #expect(streamed.jsonLine().contains("\"agw.ai.time_to_first_token\":"))
        }

        @Test("promtool check metrics passes on /metrics")
        func promtool() async throws {
            let promtool = try #require(Self.which("promtool"), "promtool is missing; scripts/test installs Debian's prometheus")
            let (lab, _) = try await EndToEndTests.start(try EndToEndTests.seedLab()) { $0.adminPort = 0 }
            defer { Task { await lab.stop() } }
            for _ in 0..<3 { _ = try await TestClient.post(port: lab.gateway.port, path: "/http-429") }
            let metrics = try await TestClient.request(port: lab.admin!.port, method: .GET, path: "/metrics", body: nil)
            #expect(metrics.header("content-type")?.hasPrefix("text/plain; version=0.0.4") == true)
            let check = try Self.run(promtool, ["check", "metrics"], input: metrics.body)
            #expect(check.status == 0, "promtool: \(check.stdout) \(check.stderr)")
            #expect(!check.stdout.contains("error") && !check.stderr.contains("error"), "\(check.stderr)")
        }

        @Test("label values are escaped for the exposition format")
        func escaping() {
            #expect(GatewayMetrics.escape(#"a"b\c"# + "\nd") == #"a\"b\\c\nd"#)
        }

        @Test("a real Prometheus server scrapes the gateway: 429s counted, eviction gauge set")
        func realPrometheus() async throws {
            let prometheus = try #require(Self.which("prometheus"), "prometheus is missing; scripts/test installs Debian's prometheus")
            let (lab, _) = try await EndToEndTests.start(try EndToEndTests.seedLab()) { $0.adminPort = 0 }
            defer { Task { await lab.stop() } }
            for _ in 0..<4 { _ = try await TestClient.post(port: lab.gateway.port, path: "/http-429") }
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("prom-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let config = """
            global: {scrape_interval: 1s, evaluation_interval: 1s}
            scrape_configs:
              - job_name: failover-lab
                static_configs: [{targets: ["127.0.0.1:\(lab.admin!.port)"]}]
            """
            try config.write(to: dir.appendingPathComponent("prometheus.yml"), atomically: true, encoding: .utf8)
            let webPort = try await Self.freePort()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: prometheus)
            process.arguments = ["--config.file=\(dir.path)/prometheus.yml", "--storage.tsdb.path=\(dir.path)/data",
                                 "--web.listen-address=127.0.0.1:\(webPort)", "--log.level=warn"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            defer { process.terminate(); process.waitUntilExit() }
            func query(_ q: String) async -> [[String: Any]] {
                let path = "/api/v1/query?query=" + (q.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? q)
                guard let r = try? await TestClient.request(port: webPort, method: .GET, path: path, body: nil),
                      let data = r.json?["data"] as? [String: Any] else { return [] }
                return data["result"] as? [[String: Any]] ?? []
            }
            var rateLimited: [[String: Any]] = []
            var evicted: [[String: Any]] = []
            let deadline = ContinuousClock.now + .seconds(40)
            while ContinuousClock.now < deadline {
                rateLimited = await query(#"agentgateway_requests_total{status="429"}"#)
                evicted = await query(#"failover_provider_evicted{provider="http-429-provider"}"#)
                if !rateLimited.isEmpty && !evicted.isEmpty { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            let count = (rateLimited.first?["value"] as? [Any])?.last as? String
            let gauge = (evicted.first?["value"] as? [Any])?.last as? String
            print("Prometheus on 127.0.0.1:\(webPort): agentgateway_requests_total{status=\"429\"} = \(count ?? "none"), failover_provider_evicted = \(gauge ?? "none")")
            #expect(count == "1")
            #expect(gauge == "1")
        }

        @Test("--access-log under SIGKILL in the middle of a load: every line whole JSON, one line per answered request")
        func accessLogSurvivesKill() async throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kill-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let logPath = dir.appendingPathComponent("access.log").path
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CommandLineTests.binary)
            process.arguments = ["gateway", "--port", "0", "--no-admin", "--access-log", logPath]
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            var text = ""
            var port: Int?
            while port == nil {
                let chunk = err.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
                port = text.split(separator: "\n").first { $0.hasPrefix("listening on") }?.split(separator: ":").last.flatMap { Int($0) }
            }
            let gatewayPort = try #require(port, "\(text)")
            let clients = 16
            let answered = Counter()
            let killer = Task {
                try await Task.sleep(for: .milliseconds(700))
                kill(process.processIdentifier, SIGKILL)
            }
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<clients {
                    group.addTask {
                        while true {
                            guard let r = try? await TestClient.post(port: gatewayPort, path: "/http-429"), r.status > 0 else { return }
                            answered.add()
                        }
                    }
                }
            }
            _ = try? await killer.value
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)
            let content = try String(contentsOfFile: logPath, encoding: .utf8)
            let lines = content.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            #expect(content.hasSuffix("\n"))
            let whole = lines.filter { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) is [String: Any] }.count
            print("SIGKILL after 700 ms: \(answered.value) responses received by \(clients) clients, \(lines.count) lines in the access log, \(whole) of them whole JSON")
            #expect(whole == lines.count)
            #expect(answered.value > 50)
            // The line is written before a response ends, so every answered request has one;
            // the requests in flight at the kill may have a line without a response.
            #expect(lines.count >= answered.value && lines.count <= answered.value + clients)
        }

        @Test("secrets never appear in the access log, even with --log-body")
        func noSecretsInLog() async throws {
            let upstream = try await RecordingUpstream()
            defer { Task { await upstream.stop() } }
            let secretKey = "sk-failoverlab-SECRET-\(UUID().uuidString.prefix(8))"
            let yaml = EndToEndTests.directLab(port: upstream.port, auth: "\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns}\nstringData: {Authorization: \"Bearer \(secretKey)\"}\n")
                .replacingOccurrences(of: "port: \(upstream.port)\n", with: "port: \(upstream.port)\n            policies: {auth: {secretRef: {name: s}}}\n")
            let logPath = FileManager.default.temporaryDirectory.appendingPathComponent("secret-\(UUID().uuidString).log").path
            defer { try? FileManager.default.removeItem(atPath: logPath) }
            let (lab, _) = try await EndToEndTests.start(try loadLab(yaml), accessLog: try AccessLogWriter(path: logPath)) { $0.gateway.logResponseBody = 4096 }
            defer { Task { await lab.stop() } }
            let clientKey = "sk-client-SECRET-\(UUID().uuidString.prefix(8))"
            for _ in 0..<3 {
                _ = try await TestClient.post(port: lab.gateway.port, path: "/lab", headers: [("Content-Type", "application/json"), ("Authorization", "Bearer \(clientKey)")])
            }
            #expect(upstream.seen.withLockedValue { $0 }.first?.header("authorization") == "Bearer \(secretKey)")
            let log = try String(contentsOfFile: logPath, encoding: .utf8)
            #expect(log.split(separator: "\n").count == 3)
            #expect(log.contains("\"response.body\":"))
            #expect(!log.contains(secretKey))
            #expect(!log.contains(clientKey))
        }
    }
}

typealias ClientsAndTelemetryTests = OverSockets.ClientsAndTelemetryTests

/// A thread-safe counter for concurrent test clients.
final class Counter: Sendable {
    private let box = NIOLockedValueBox(0)
    func add() { box.withLockedValue { $0 += 1 } }
    var value: Int { box.withLockedValue { $0 } }
}

import NIOConcurrencyHelpers

@Suite("Grafana dashboard")
struct DashboardJSONTests {
    @Test("every metric the dashboard queries is one the gateway exports")
    func metricsExist() async throws {
        let path = ClientsAndTelemetryTests.repository.appendingPathComponent("dashboards/failover-lab.json").path
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let dashboard = try #require((try JSONSerialization.jsonObject(with: data)) as? [String: Any])
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        let exprs = panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
        #expect(exprs.count >= 9)
        let (lab, _) = try await EndToEndTests.start(try EndToEndTests.seedLab())
        defer { Task { await lab.stop() } }
        let exported = lab.gateway.runtime.metrics.render(runtime: lab.gateway.runtime)
        let families = Set(exported.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { String($0.split(separator: " ")[2]) })
        let pattern = #/(agentgateway|failover)_[a-z_]+/#
        for expr in exprs {
            for match in expr.matches(of: pattern) {
                var name = String(match.output.0)
                for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) && !families.contains(name) {
                    name = String(name.dropLast(suffix.count))
                }
                #expect(families.contains(name), "dashboard queries \(name), which /metrics does not export")
            }
        }
    }
}

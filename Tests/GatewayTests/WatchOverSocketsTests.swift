import Foundation
import Testing
@testable import Gateway
@testable import Lab

extension OverSockets {
    /// `failover-lab watch` as a user runs it, on two of our gateways as two replicas: each
    /// its own lab (stand-ins, balancer, admin port, access log).
    @Suite("watch over sockets", .serialized)
    struct WatchOverSocketsTests {
        struct Replica {
            var lab: RunningLab
            var log: String
            var adminPort: Int
            var adminURL: String { "http://127.0.0.1:\(adminPort)" }
        }

        static func replica(retryAfter: Int) async throws -> Replica {
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("watch-\(UUID().uuidString).log").path
            let (lab, _) = try await EndToEndTests.start(try EndToEndTests.seedLab(retryAfter: retryAfter), accessLog: try AccessLogWriter(path: log)) { $0.adminPort = 0 }
            let port = try #require(lab.admin?.port)
            return Replica(lab: lab, log: log, adminPort: port)
        }

        /// Runs the binary in the background; stdout collected until it ends.
        final class Background: @unchecked Sendable {
            let process = Process()
            let out = Pipe()
            private let lock = NSLock()
            private var data = Data()
            private let done = DispatchSemaphore(value: 0)

            init(_ arguments: [String]) throws {
                process.executableURL = URL(fileURLWithPath: CommandLineTests.binary)
                process.arguments = arguments
                process.standardOutput = out
                process.standardError = FileHandle.nullDevice
                try process.run()
                let handle = out.fileHandleForReading
                Thread { [self] in
                    while true {
                        let chunk = handle.availableData
                        if chunk.isEmpty { break }
                        lock.lock(); data.append(chunk); lock.unlock()
                    }
                    done.signal()
                }.start()
            }

            var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }

            func finish(timeout: Double = 30) -> [[String: Any]] {
                _ = done.wait(timeout: .now() + timeout)
                if process.isRunning { process.terminate() }
                process.waitUntilExit()
                return text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
            }
        }

        static func health(_ r: Replica) async throws -> [String: String] {
            let answer = try await TestClient.request(port: r.adminPort, method: .GET, path: "/health/providers", body: nil)
            let backends = try #require(answer.json?["backends"] as? [[String: Any]])
            var out: [String: String] = [:]
            for p in backends.first?["providers"] as? [[String: Any]] ?? [] { out[p["name"] as? String ?? ""] = p["state"] as? String }
            return out
        }

        @Test("two replicas: per-replica states as each /health/providers says, the countdown going down, counts, exact skipped lines")
        func twoReplicas() async throws {
            let a = try await Self.replica(retryAfter: 30)
            let b = try await Self.replica(retryAfter: 30)
            defer {
                Task { await a.lab.stop(); await b.lab.stop() }
                try? FileManager.default.removeItem(atPath: a.log)
                try? FileManager.default.removeItem(atPath: b.log)
            }
            // Replica a's group 1 gets its 429 and is evicted; b's is not (yet).
            #expect(try await TestClient.post(port: a.lab.gateway.port, path: "/http-429").status == 429)
            #expect(try await TestClient.post(port: a.lab.gateway.port, path: "/http-429").status == 200)
            // a's log salted with lines that are not requests: exactly 5.
            let garbage = "not json at all\n{\"scope\":\"xds\",\"message\":\"connected\"}\n[1,2,3]\n{broken\n\"just a string\"\n"
            let handle = try #require(FileHandle(forWritingAtPath: a.log))
            handle.seekToEndOfFile()
            handle.write(Data(garbage.utf8))
            try handle.close()
            let healthA = try await Self.health(a), healthB = try await Self.health(b)
            #expect(healthA["http-429-provider"] == "evicted")
            #expect(healthB["http-429-provider"] == "healthy")

            let watch = try Background(["watch", "--json", "--duration", "4s", "--interval", "200ms",
                                        "--admin", "a=\(a.adminURL)", "--admin", "b=\(b.adminURL)",
                                        "--access-log", "a=\(a.log)", "--access-log", "b=\(b.log)"])
            // Mid-watch, b's group 1 is evicted too: b's lines must show it after its healthy start.
            try await Task.sleep(for: .milliseconds(2000))
            #expect(try await TestClient.post(port: b.lab.gateway.port, path: "/http-429").status == 429)
            let lines = watch.finish()
            #expect(watch.process.terminationStatus == 0)

            func providerLines(_ replica: String) -> [[String: Any]] {
                lines.filter { $0["type"] as? String == "provider" && $0["replica"] as? String == replica && $0["provider"] as? String == "http-429-provider" }
            }
            let pa = providerLines("a"), pb = providerLines("b")
            // The first state each replica reports is the one its /health/providers gave.
            #expect(pa.first?["state"] as? String == healthA["http-429-provider"])
            #expect(pb.first?["state"] as? String == healthB["http-429-provider"])
            #expect(pa.first?["group"] as? Int == 1)
            #expect(pa.first?["backend"] as? String != nil)
            // The countdown goes down, a line per whole second, within the 30 s eviction.
            let remaining = pa.compactMap { $0["remaining_s"] as? Double }
            #expect(remaining.count >= 3, "\(pa)")
            #expect(remaining.allSatisfy { $0 > 0 && $0 <= 30 })
            #expect(zip(remaining, remaining.dropFirst()).allSatisfy { $0 > $1 }, "\(remaining)")
            // b: healthy, then evicted after the request made mid-watch.
            #expect(pb.map { $0["state"] as? String ?? "" }.prefix(2) == ["healthy", "evicted"])
            // The other group's provider is healthy on both.
            for r in ["a", "b"] {
                let openai = lines.first { $0["type"] as? String == "provider" && $0["replica"] as? String == r && $0["provider"] as? String == "openai-provider" }
                #expect(openai?["state"] as? String == "healthy")
                #expect(openai?["group"] as? Int == 2)
            }
            // Requests: a's two from its log (429, then 200), b's one.
            let requests = lines.filter { $0["type"] as? String == "request" }
            #expect(requests.filter { $0["replica"] as? String == "a" }.compactMap { $0["status"] as? Int } == [429, 200])
            #expect(requests.filter { $0["replica"] as? String == "b" }.compactMap { $0["status"] as? Int } == [429])
            #expect(requests.first?["provider"] as? String == "http-429-provider")
            let summary = try #require(lines.last)
            #expect(summary["type"] as? String == "summary")
            #expect(summary["requests"] as? Int == 3)
            #expect(summary["skipped_lines"] as? Int == 5)
            let by = try #require(summary["by_replica"] as? [String: [String: Any]])
            #expect(by["a"]?["requests"] as? Int == 2)
            #expect(by["a"]?["skipped_lines"] as? Int == 5)
            #expect(by["b"]?["requests"] as? Int == 1)
            #expect(by["b"]?["skipped_lines"] as? Int == 0)
            #expect((by["a"]?["unreachable_polls"] as? Int) == 0)
        }

        @Test("an admin port that goes away mid-watch shows unreachable, then recovers when it returns")
        func adminGoesAwayAndReturns() async throws {
            let a = try await Self.replica(retryAfter: 30)
            defer {
                Task { await a.lab.stop() }
                try? FileManager.default.removeItem(atPath: a.log)
            }
            let watch = try Background(["watch", "--json", "--duration", "4s", "--interval", "200ms", "--admin", "gw-a=\(a.adminURL)"])
            try await Task.sleep(for: .milliseconds(1200))
            await a.lab.admin?.stop()
            try await Task.sleep(for: .milliseconds(1200))
            let again = try await AdminServer.start(lab: a.lab, host: "127.0.0.1", port: a.adminPort)
            defer { Task { await again.stop() } }
            let lines = watch.finish()
            let reach = lines.filter { $0["type"] as? String == "replica" && $0["replica"] as? String == "gw-a" }.map { $0["reachable"] as? Bool }
            #expect(reach == [true, false, true], "\(lines)")
            let down = lines.first { $0["type"] as? String == "replica" && $0["reachable"] as? Bool == false }
            #expect((down?["url"] as? String) == a.adminURL)
            #expect((down?["reason"] as? String)?.isEmpty == false)
            let summary = try #require(lines.last)
            let by = try #require(summary["by_replica"] as? [String: [String: Any]])
            #expect((by["gw-a"]?["unreachable_polls"] as? Int ?? 0) >= 2)
            // Provider states were read before and after.
            #expect(lines.contains { $0["type"] as? String == "provider" && $0["provider"] as? String == "openai-provider" })
        }

        @Test("bad watch and run --admin flags say which flag and why, exit 64")
        func badFlags() throws {
            let cases: [([String], String)] = [
                (["watch"], "nothing to watch"),
                (["watch", "--admin", "10.0.0.1:15000"], "--admin 10.0.0.1:15000: give an http:// or https:// URL"),
                (["watch", "--access-log", "-", "--access-log", "b=-"], "standard input can be read once"),
                (["watch", "--admin", "http://127.0.0.1:1", "--interval", "1ms"], "--interval 1ms: must be between"),
                (["watch", "--admin", "http://127.0.0.1:1", "--json", "--headless"], "not both"),
                (["run", "--admin", "http://127.0.0.1:1"], "--admin URL goes with --target URL"),
            ]
            for (args, message) in cases {
                let r = try CommandLineTests.run(args)
                #expect(r.status == 64, "\(args): \(r.status)")
                #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
            }
        }

        @Test("our admin port's /config_dump has agentgateway's shape: ai backend, groups in order, rejected with evictedUntil left")
        func configDumpShape() async throws {
            let a = try await Self.replica(retryAfter: 30)
            defer {
                Task { await a.lab.stop() }
                try? FileManager.default.removeItem(atPath: a.log)
            }
            #expect(try await TestClient.post(port: a.lab.gateway.port, path: "/http-429").status == 429)
            let answer = try await TestClient.request(port: a.adminPort, method: .GET, path: "/config_dump", body: nil)
            #expect(answer.status == 200)
            let backends = try #require(answer.json?["backends"] as? [[String: Any]])
            let ai = try #require((backends.first?["backend"] as? [String: Any])?["ai"] as? [String: Any])
            let groups = try #require((ai["target"] as? [String: Any])?["providers"] as? [[String: Any]])
            #expect(groups.count == 2)
            let rejected = try #require(groups[0]["rejected"] as? [String: Any])
            let info = try #require((rejected["http-429-provider"] as? [String: Any])?["info"] as? [String: Any])
            let left = try #require(info["evictedUntil"] as? String)
            #expect(left.hasSuffix("s"))
            let seconds = try #require(Double(left.dropLast()))
            #expect(seconds > 25 && seconds <= 30, "\(left)")
            #expect(info["timesEjected"] as? Int == 1)
            #expect((groups[0]["active"] as? [String: Any])?.isEmpty == true)
            let active = try #require(groups[1]["active"] as? [String: Any])
            #expect(active["openai-provider"] != nil)
            #expect(ConfigDumpReport.goDuration(seconds: 60) == "1m0s")
            #expect(ConfigDumpReport.goDuration(seconds: 3723.5) == "1h2m3.5s")
            #expect(ConfigDumpReport.goDuration(seconds: 0.25) == "250ms")
            #expect(ConfigDumpReport.goDuration(seconds: 59.876) == "59.876s")
            #expect(ConfigDumpReport.goDuration(seconds: 1e300) != "")
        }
    }
}

import Foundation
import Testing

extension OverSockets {
    /// The `failover-lab` binary as a user runs it.
    @Suite("Command line", .serialized)
    struct CommandLineTests {
        static var binary: String {
            let testBundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            var dir = testBundle
            for _ in 0..<3 {
                let candidate = dir.appendingPathComponent("failover-lab").path
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
                dir = dir.deletingLastPathComponent()
            }
            return testBundle.appendingPathComponent("failover-lab").path
        }

        /// Runs the binary to completion.
        static func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            let stdout = out.fileHandleForReading.readDataToEndOfFile()
            let stderr = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
        }

        @Test("the soft limit of open files is raised to the hard limit at start: --max-connections' default follows the hard limit")
        func fileLimitRaised() throws {
            var limit = rlimit()
            try #require(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0)
            let hard = limit.rlim_max == rlim_t.max ? UInt64(1 << 20) : UInt64(limit.rlim_max)
            try #require(hard > 512, "the hard limit here (\(hard)) leaves nothing to raise")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            // A low soft limit, as a login shell often has (1,024); the binary raises its own.
            process.arguments = ["-c", "ulimit -Sn 256 && exec \"$0\" gateway --help", Self.binary]
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            let expected = (hard - 64) / 2
            let flat = text.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            #expect(flat.contains("now \(min(expected, 1 << 20)))."), "with a soft limit of 256 the default would be 96: \(flat)")
        }

        @Test("gateway --port 0 prints where it listens, serves the lab, and logs one JSON line a request on stdout")
        func gatewayHeadless() async throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.binary)
            process.arguments = ["gateway", "--port", "0", "--admin-port", "0"]
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            defer { if process.isRunning { process.terminate() } }
            // Read stderr until the listening line.
            var stderrText = ""
            var port: Int?
            let deadline = Date().addingTimeInterval(20)
            while port == nil && Date() < deadline {
                let chunk = err.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                stderrText += String(decoding: chunk, as: UTF8.self)
                if let line = stderrText.split(separator: "\n").first(where: { $0.hasPrefix("listening on http://") }),
                   let p = line.split(separator: ":").last.flatMap({ Int($0) }) {
                    port = p
                }
            }
            let gatewayPort = try #require(port, "no listening line in: \(stderrText)")
            #expect(stderrText.contains("stand-in http-429 on http://127.0.0.1:"))
            #expect(try await TestClient.post(port: gatewayPort, path: "/http-429").status == 429)
            #expect(try await TestClient.post(port: gatewayPort, path: "/http-429").status == 200)
            process.terminate()
            process.waitUntilExit()
            let lines = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
            #expect(lines.count == 2)
            let endpoints = lines.compactMap { ((try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any])?["provider"] as? String }
            #expect(endpoints == ["http-429-provider", "openai-provider"])
            #expect(process.terminationStatus == 0)
        }

        @Test("check explains the seed lab; exits 0")
        func checkSeedLab() throws {
            let result = try Self.run(["check"])
            #expect(result.status == 0)
            #expect(result.stdout.contains("group 1\n    http-429-provider: openai model gpt-5, upstream http-429-server.enterprise-agentgateway.svc.cluster.local:9959 path / -> stand-in http-429, auth passthrough"))
            #expect(result.stdout.contains("group 2\n    openai-provider: openai model gpt-4o-mini, upstream api.openai.com:443 path /v1/chat/completions -> stand-in openai, auth secretRef openai-secret"))
        }

        @Test("check on a broken file names file:line and exits 2; --real-upstreams without a key fails clearly")
        func checkErrors() throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fl-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let bad = dir.appendingPathComponent("bad.yaml").path
            try "apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayBackend\nmetadata: {name: b}\nspec:\n  ai:\n    groups:\n      - providers:\n          - name: p\n            openai: {model: m}\n            port: 70000\n".write(toFile: bad, atomically: true, encoding: .utf8)
            let result = try Self.run(["check", bad])
            #expect(result.status == 2)
            #expect(result.stderr.contains("bad.yaml:10: error: spec.ai.groups[0].providers[0].port must be between 1 and 65535, found 70000"))
            let missingFile = try Self.run(["check", dir.appendingPathComponent("nope.yaml").path])
            #expect(missingFile.status == 2)
            #expect(missingFile.stderr.contains("nope.yaml: error: cannot read lab file: no such file"))
            let real = try Self.run(["check", "--real-upstreams"])
            #expect(real.status == 2 || ProcessInfo.processInfo.environment["OPENAI_API_KEY"] != nil)
            if real.status == 2 { #expect(real.stderr.contains("set OPENAI_API_KEY")) }
        }

        @Test("run --replay sends a recorded file's requests into the lab at their times (--speed 2x), and --record writes them")
        func runReplay() throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("run-replay-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            // Five requests of an agentgateway access log, 400 ms apart, and lines replay skips.
            var log = ""
            for i in 0..<5 {
                let ms = i * 400
                log += "{\"time\":\"2025-06-10T12:00:0\(ms / 1000).\(String(format: "%03d", ms % 1000))Z\",\"scope\":\"request\",\"http.method\":\"POST\",\"http.path\":\"/http-429\"}\n"
                log += "not json\n"
            }
            let file = dir.appendingPathComponent("access.log").path
            let out = dir.appendingPathComponent("out.jsonl").path
            try log.write(toFile: file, atomically: true, encoding: .utf8)
            let result = try Self.run(["run", "--no-steps", "--replay", file, "--speed", "2x", "--headless", "--duration", "3s",
                                       "--record", out, "--port", "0"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("replayed 5 requests from"), "\(result.stdout)")
            #expect(result.stdout.contains("skipped 5 other lines"), "\(result.stdout)")
            let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 5, "\(lines)")
            // The schedule: 0, 200, 400, 600, 800 ms (400 ms apart at 2x); each sent on time.
            var intended: [Double] = [], sent: [Double] = [], statuses: [Int] = []
            for line in lines {
                let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                intended.append((json["intended_offset_ns"] as? Double ?? -1) / 1e6)
                sent.append((json["sent_offset_ns"] as? Double ?? -1) / 1e6)
                statuses.append(json["status"] as? Int ?? 0)
            }
            let first = intended.min() ?? 0
            let gaps = intended.sorted().map { $0 - first }
            for (i, g) in gaps.enumerated() { #expect(abs(g - Double(i) * 200) < 2, "intended offsets \(gaps)") }
            for (i, s) in sent.enumerated() { #expect(s - intended[i] >= 0 && s - intended[i] < 50, "sent \(s) for intended \(intended[i])") }
            // Into the lab: the first gets the 429, the rest fail over to group 2.
            #expect(statuses.sorted() == [200, 200, 200, 200, 429], "\(statuses)")
        }

        @Test("run takes drive's traffic flags: a streamed closed loop of 20 requests into the lab, recorded")
        func runWithDriveTraffic() throws {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("run-traffic-\(UUID().uuidString).jsonl").path
            defer { try? FileManager.default.removeItem(atPath: out) }
            let result = try Self.run(["run", "--no-steps", "--concurrency", "4", "--stream", "--requests", "20", "--headless",
                                       "--duration", "3s", "--record", out, "--port", "0"])
            #expect(result.status == 0, "\(result.stderr)")
            let records = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").map {
                try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
            }
            #expect(records.count == 20)
            // Group 1's 429 at first (up to 4 at once), then streamed answers from group 2, each with its first token.
            let served = records.filter { $0["status"] as? Int == 200 }
            #expect(served.count >= 16, "\(records.map { $0["status"] ?? "-" })")
            #expect(served.allSatisfy { ($0["ttft_ms"] as? Double ?? -1) > 0 }, "a 200 without a first token: not streamed")
            #expect(result.stdout.contains("requests   20"), "\(result.stdout)")
            // A flag drive refuses, run refuses the same way.
            let bad = try Self.run(["run", "--no-steps", "--rate", "fast", "--headless", "--duration", "1s", "--port", "0"])
            #expect(bad.status == 2 && bad.stderr.contains("--rate fast"), "\(bad.stderr)")
        }

        @Test("every command has --help")
        func help() throws {
            for command in ["gateway", "check", "standins", "run", "test", "drive", "replay", "report"] {
                let result = try Self.run([command, "--help"])
                #expect(result.status == 0)
                #expect(result.stdout.contains("USAGE: failover-lab \(command)"))
            }
        }
    }
}

typealias CommandLineTests = OverSockets.CommandLineTests

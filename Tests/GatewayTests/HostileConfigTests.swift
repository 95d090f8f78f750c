import Foundation
import Testing
import NIOCore
import NIOPosix
@testable import Gateway
@testable import Lab

/// Lab files are a user's (or anyone's) text: every value is checked, and a bad one is a
/// config error with file:line, never a trap.
@Suite("Hostile lab files")
struct HostileConfigTests {
    /// The errors loading (and planning) `yaml` gives; empty when it loads.
    static func errors(_ yaml: String, file: String = "lab.yaml", environment: [String: String] = [:]) -> [String] {
        do {
            let config = try loadLab(yaml, file: file)
            _ = try config.plan(PlanOptions(environment: environment))
            return []
        } catch let errors as ConfigErrors {
            return errors.diagnostics.map(\.description)
        } catch {
            return ["unexpected: \(error)"]
        }
    }

    static func directLab(timeout: String = "5s") -> String {
        EndToEndTests.directLab(port: 9, timeout: timeout)
    }

    /// The 1-based line of the first line of `text` that contains `marker`.
    static func line(of marker: String, in text: String) -> Int {
        (text.components(separatedBy: "\n").firstIndex { $0.contains(marker) } ?? -1) + 1
    }

    @Test("Go durations: past Go's range is an error, not a trap; the edge is accepted")
    func goDurationRange() throws {
        for text in ["99999999999h", "2562048h", "9223372036854775808ns", "1" + String(repeating: "0", count: 400) + "s", "\(Double.greatestFiniteMagnitude)h"] {
            #expect(throws: GoDuration.ParseError.self, "\(text)") { try GoDuration.parse(text) }
        }
        #expect(try GoDuration.parse("2562047h") == .seconds(2562047 * 3600))
        #expect(try GoDuration.parse("1m30s") == .seconds(90))
        #expect(try GoDuration.parse("1.5s") == .milliseconds(1500))
        for bad in ["", "-1s", "1e5s", "½s", "٣s", "1..5s", ".s", "5", String(repeating: "1s", count: 100)] {
            #expect(throws: GoDuration.ParseError.self, "\(bad)") { try GoDuration.parse(bad) }
        }
        do {
            _ = try GoDuration.parse("99999999999h")
        } catch {
            #expect(error.description.contains("out of range"))
        }
    }

    @Test("timeouts.request: \"99999999999h\" is an error at its line, exit-2 material, not a crash")
    func hugeTimeout() {
        let errors = Self.errors(Self.directLab(timeout: #""99999999999h""#))
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix("lab.yaml:8: error: spec.rules[0].timeouts.request") == true, "\(errors)")
        #expect(errors.first?.contains("out of range") == true)
        let tooLong = Self.errors(Self.directLab(timeout: "9000h"))
        #expect(tooLong.first?.hasPrefix("lab.yaml:8: error:") == true)
        #expect(tooLong.first?.contains("at most 8784h") == true, "\(tooLong)")
        #expect(Self.errors(Self.directLab(timeout: "8784h")).isEmpty)
    }

    @Test("whole numbers are read as plain decimals: Yams' sexagesimal arithmetic (which traps) is never reached")
    func sexagesimal() {
        let yaml = Self.directLab().replacingOccurrences(of: "port: 9\n", with: "port: 1:1:1:1:1:1:1:1:1:1:1:1:1:1\n")
        let errors = Self.errors(yaml)
        #expect(errors.count == 1)
        #expect(errors.first?.contains("must be a whole number") == true, "\(errors)")
        let retry = Self.directLab().replacingOccurrences(of: "timeouts: {request: 5s}", with: "timeouts: {request: 5s}\n      retry: {attempts: 99999999999999999999999, codes: [1:1:1:1:1:1:1:1:1:1:1:1:1]}")
        let codes = Self.errors(retry)
        #expect(codes.count == 2, "\(codes)")
        #expect(codes.allSatisfy { $0.hasPrefix("lab.yaml:\(Self.line(of: "retry:", in: retry)): error:") }, "\(codes)")
    }

    @Test("a CEL condition of 50,000 ( or ! is refused with its position, not a stack overflow")
    func celDepth() throws {
        // 50,000 of them are over the length limit: refused before parsing.
        for text in [String(repeating: "(", count: 50_000), String(repeating: "!", count: 50_000) + "true"] {
            do {
                _ = try UnhealthyCondition.parse(text)
                Issue.record("accepted \(text.prefix(20))")
            } catch {
                #expect(error.message.contains("longer than 8192 characters"), "\(error.message)")
            }
        }
        for text in [String(repeating: "(", count: 4_000) + "true" + String(repeating: ")", count: 4_000),
                     String(repeating: "!", count: 8_000) + "true",
                     String(repeating: "(!", count: 40) + "true" + String(repeating: ")", count: 40)] {
            do {
                _ = try UnhealthyCondition.parse(text)
                Issue.record("accepted \(text.prefix(20))")
            } catch {
                #expect(error.message.contains("nested deeper than 64"), "\(error.message)")
                #expect(error.position == 65, "the 65th ( or !")
            }
        }
        let chain = Array(repeating: "response.code == 500", count: 300).joined(separator: " || ")
        #expect(throws: UnhealthyCondition.ParseError.self) { try UnhealthyCondition.parse(chain) }
        #expect(throws: UnhealthyCondition.ParseError.self) { try UnhealthyCondition.parse(String(repeating: "x", count: 100_000)) }
        // An integer past Int is refused where it stands, not read as Int.max.
        do {
            _ = try UnhealthyCondition.parse("response.code == 99999999999999999999")
            Issue.record("a 20-digit integer was accepted")
        } catch {
            #expect(error.position == 18)
            #expect(error.message.contains("99999999999999999999"))
        }
        // The limits leave room for real conditions.
        let deep = String(repeating: "(", count: 64) + "response.code >= 500" + String(repeating: ")", count: 64)
        #expect(try UnhealthyCondition.parse(deep).evaluate(code: 503))
        let long = Array(repeating: "response.code == 500", count: 200).joined(separator: " || ")
        #expect(try UnhealthyCondition.parse(long).evaluate(code: 500))
        // Through a lab file: an error at the condition's line.
        let policy = """

        ---
        apiVersion: agentgateway.dev/v1alpha1
        kind: AgentgatewayPolicy
        metadata: {name: p, namespace: ns}
        spec:
          targetRefs: [{kind: AgentgatewayBackend, name: b}]
          backend:
            health:
              unhealthyCondition: "\(String(repeating: "(", count: 1_000))"
        """
        let errors = Self.errors(Self.directLab() + policy)
        #expect(errors.count == 1)
        let expectedLine = Self.line(of: "unhealthyCondition", in: Self.directLab() + policy)
        #expect(errors.first?.hasPrefix("lab.yaml:\(expectedLine): error:") == true, "\(errors.map { $0.prefix(120) })")
        #expect(errors.first?.contains("nested deeper than 64") == true)
    }

    static func secret(_ data: String) -> String {
        """

        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: key, namespace: ns}
        \(data)
        """
    }

    static let secretRef = "\n            policies: {auth: {secretRef: {name: key}}}"

    @Test("a Secret whose value holds CR/LF is an error naming the Secret and its line, in stringData and in data")
    func secretInjection() {
        let base = Self.directLab().replacingOccurrences(of: "port: 9", with: "port: 9" + Self.secretRef)
        #expect(Self.errors(base + Self.secret("stringData: {Authorization: \"Bearer sk-1\"}")).isEmpty)
        let crlfText = base + Self.secret(#"stringData: {Authorization: "Bearer sk-1\r\nX-Injected: yes"}"#)
        let crlf = Self.errors(crlfText)
        #expect(crlf.count == 1)
        let crlfLine = Self.line(of: "stringData", in: crlfText)
        #expect(crlf.first?.hasPrefix("lab.yaml:\(crlfLine): error: Secret ns/key: Authorization holds a control character (CR)") == true, "\(crlf)")
        let encoded = Data("Bearer sk-1\nX-Injected: yes".utf8).base64EncodedString()
        let dataText = base + Self.secret("data:\n  Authorization: \(encoded)")
        let data = Self.errors(dataText)
        let dataLine = Self.line(of: "Authorization: \(encoded)", in: dataText)
        #expect(data.first?.hasPrefix("lab.yaml:\(dataLine): error: Secret ns/key: Authorization holds a control character (LF)") == true, "\(data)")
        // `echo 'Bearer sk-1' | base64` ends in a newline: trimmed, as before.
        let trailing = Data("Bearer sk-1\n".utf8).base64EncodedString()
        #expect(Self.errors(base + Self.secret("data:\n  Authorization: \(trailing)")).isEmpty)
        // NUL and DEL are refused too.
        #expect(Self.errors(base + Self.secret(#"stringData: {Authorization: "a\0b"}"#)).first?.contains("(NUL)") == true)
        #expect(Self.errors(base + Self.secret(#"stringData: {Authorization: "a\x7Fb"}"#)).first?.contains("U+007F") == true)
    }

    @Test("an inline key, a secret from the environment, a host or a path with CR/LF is refused")
    func otherHeaderInjection() {
        let key = Self.errors(Self.directLab().replacingOccurrences(of: "port: 9", with: "port: 9\n            policies: {auth: {key: \"sk\\r\\nX-Evil: 1\"}}"))
        #expect(key.first?.hasPrefix("lab.yaml:") == true && key.first?.contains("auth.key holds a control character (CR)") == true, "\(key)")
        let host = Self.errors(Self.directLab().replacingOccurrences(of: "host: 127.0.0.1", with: "host: \"127.0.0.1\\r\\nX-Evil: 1\""))
        #expect(host.first?.contains("must be a host name or IP address") == true, "\(host)")
        let path = Self.errors(Self.directLab().replacingOccurrences(of: "port: 9", with: "port: 9\n            path: \"/v1 HTTP/1.1\\r\\nX: y\""))
        #expect(path.first?.contains("must start with / and hold only URL characters") == true, "\(path)")
        // secretsFromEnv: the variable's value is checked when the plan is made.
        let lab = Self.directLab().replacingOccurrences(of: "port: 9", with: "port: 9" + Self.secretRef) + """

        ---
        apiVersion: failover-lab.dev/v1alpha1
        kind: Scenario
        metadata: {name: s}
        spec:
          secretsFromEnv: {key: LAB_KEY}
        """
        let env = Self.errors(lab, environment: ["LAB_KEY": "sk-1\r\nX-Evil: 1"])
        #expect(env.first?.contains("the environment variable LAB_KEY (for Secret key) holds a control character (CR)") == true, "\(env)")
        #expect(Self.errors(lab, environment: ["LAB_KEY": "sk-1"]).isEmpty)
    }

    @Test("an empty or comment-only lab file is an error naming the file")
    func emptyFile() {
        for text in ["", "\n\n", "# nothing here\n", "---\n---\n"] {
            let errors = Self.errors(text, file: "empty.yaml")
            #expect(errors.count == 1)
            #expect(errors.first?.hasPrefix("empty.yaml: error: the lab file holds no YAML documents") == true, "\(errors)")
        }
        // Next to a good file, the empty one is still named.
        do {
            _ = try ManifestLoader.load(sources: [("good.yaml", Self.directLab()), ("empty.yaml", "")])
            Issue.record("an empty file passed")
        } catch let errors as ConfigErrors {
            #expect(errors.description.hasPrefix("empty.yaml: error:"))
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test("a duplicate key is an error at its line, naming the key and not echoing the file")
    func duplicateKey() {
        let yaml = Self.directLab().replacingOccurrences(of: "metadata: {name: b, namespace: ns}", with: "metadata: {name: b, namespace: ns}\nmetadata: {name: c}")
        let errors = Self.errors(yaml)
        // The backend document is lost, so the route's reference to it is the second error.
        #expect(errors.count == 2, "\(errors)")
        #expect(errors.last?.contains("which is not defined") == true)
        let first = Self.line(of: "metadata: {name: b, namespace: ns}", in: yaml)
        #expect(errors.first?.hasPrefix("lab.yaml:\(first): error: not valid YAML:") == true, "\(errors)")
        #expect(errors.first?.contains("'metadata'") == true)
        #expect(errors.first?.contains("HTTPRoute") == false, "the file's text is not echoed")
    }

    @Test("a control character in the YAML text is an error at its line, without the file echoed")
    func controlCharacter() {
        let errors = Self.errors("apiVersion: v1\nkind: Secret\nmetadata: {name: \"a\u{01}b\"}\n")
        #expect(errors == ["lab.yaml:3: error: not valid YAML: control characters are not allowed (character U+1)"])
    }

    @Test("deeply nested YAML (brackets, or '- - - ...') is an error with its line, not a stack overflow")
    func deepYAML() {
        let brackets = Self.errors("apiVersion: v1\nkind: " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000))
        #expect(brackets.count == 1)
        #expect(brackets.first?.hasPrefix("lab.yaml:2: error: not valid YAML:") == true, "\(brackets.map { $0.prefix(100) })")
        let dashes = Self.errors("a: b\nc:\n" + String(repeating: "- ", count: 100_000) + "x\n")
        #expect(dashes.count == 1)
        #expect(dashes.first?.hasPrefix("lab.yaml:3: error: not valid YAML:") == true, "\(dashes.map { $0.prefix(100) })")
    }

    @Test("stand-in latency and a bad behaviour in a Scenario are errors with their line")
    func scenarioValues() {
        let scenario = """
        apiVersion: failover-lab.dev/v1alpha1
        kind: Scenario
        metadata: {name: s}
        spec:
          standIns:
            - {name: a, kind: mock-openai, answers: "x:1", latency: 99999999999h}
            - {name: b, kind: mock-openai, answers: "x:2", tokenDelay: 2h}
            - {name: c, kind: mock-openai, answers: "x:3", behavior: "slow infms"}
        """
        let errors = Self.errors(scenario)
        #expect(errors.count == 2, "\(errors)")
        #expect(errors.first?.hasPrefix("lab.yaml:6: error:") == true)
        #expect(errors.last?.hasPrefix("lab.yaml:7: error:") == true)
        // Values of the wrong shape are errors with their line, not silently dropped.
        let shapes = Self.errors(scenario.replacingOccurrences(of: #"answers: "x:2""#, with: "answers: [[x, y]]") + "\n  secretsFromEnv: {key: [A]}")
        #expect(shapes.contains { $0.hasPrefix("lab.yaml:7: error: spec.standIns[1].answers must hold host:port strings") }, "\(shapes)")
        #expect(shapes.contains { $0.hasPrefix("lab.yaml:9: error: spec.secretsFromEnv must map") }, "\(shapes)")
        let config = try? loadLab(scenario.replacingOccurrences(of: "latency: 99999999999h", with: "latency: 1s").replacingOccurrences(of: "tokenDelay: 2h", with: "tokenDelay: 1s"))
        let problems = StandInFleet.validate(config?.scenario?.standIns ?? [])
        #expect(problems.count == 1)
        #expect(problems.first?.description.hasPrefix("lab.yaml:8: error: stand-in c:") == true, "\(problems)")
        #expect(problems.first?.description.contains("delay infms is not a duration") == true)
    }
}

extension OverSockets {
    /// The binary as a user runs it: `check` on hostile files, `run --no-retry-hint`.
    @Suite("Hardening from the command line", .serialized)
    struct HardeningCommandLineTests {
        static func write(_ text: String) throws -> String {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("lab-\(UUID().uuidString).yaml").path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        @Test("check exits 2 with file:line on a huge duration, an empty file, a deep CEL condition, a CR/LF secret")
        func checkRefuses() throws {
            let secret = HostileConfigTests.directLab().replacingOccurrences(of: "port: 9", with: "port: 9" + HostileConfigTests.secretRef)
                + HostileConfigTests.secret(#"stringData: {Authorization: "Bearer a\r\nX-Evil: 1"}"#)
            let cases: [(String, String)] = [
                (HostileConfigTests.directLab(timeout: #""99999999999h""#), ":8: error: spec.rules[0].timeouts.request"),
                ("", ": error: the lab file holds no YAML documents"),
                (secret, ":\(HostileConfigTests.line(of: "stringData", in: secret)): error: Secret ns/key: Authorization holds a control character (CR)"),
            ]
            for (text, expected) in cases {
                let path = try Self.write(text)
                defer { try? FileManager.default.removeItem(atPath: path) }
                let result = try CommandLineTests.run(["check", path])
                #expect(result.status == 2, "\(result.stderr)")
                #expect(result.stderr.contains(path + expected), "\(result.stderr)")
            }
        }

        @Test("out-of-range flags are refused with what was wrong, before anything starts")
        func badFlags() throws {
            for (arguments, expected) in [(["gateway", "--max-eviction", "99999999999h"], "out of range"),
                                          (["gateway", "--max-eviction", "0s"], "--max-eviction must be from 1s to 8784h"),
                                          (["run", "--max-eviction", "inf"], "--max-eviction"),
                                          (["gateway", "--log-body=-5"], "--log-body must be 0 or more bytes"),
                                          (["gateway", "--admin-token", "a b"], "--admin-token must be visible ASCII")] {
                let result = try CommandLineTests.run(arguments)
                #expect(result.status == 64, "\(arguments): \(result.stderr)")
                #expect(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
            }
        }

        /// A port nothing listens on now.
        static func freePort() async throws -> Int {
            let channel = try await ServerBootstrap(group: TestClient.group).bind(host: "127.0.0.1", port: 0).get()
            let port = channel.localAddress!.port!
            try await channel.close()
            return port
        }

        /// Runs `run --headless --rate 0` on the seed lab and returns the first answer's retry-after-ms.
        static func retryHint(extra: [String]) async throws -> (status: Int, hint: String?) {
            let port = try await freePort()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CommandLineTests.binary)
            process.arguments = ["run", "--headless", "--no-steps", "--rate", "0", "--port", String(port), "--duration", "30s"] + extra
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            defer { if process.isRunning { process.terminate(); process.waitUntilExit() } }
            var response: TestResponse?
            for _ in 0..<100 where response == nil {
                response = try? await TestClient.post(port: port, path: "/http-429")
                if response == nil { try await Task.sleep(for: .milliseconds(100)) }
            }
            let r = try #require(response, "run never listened on \(port)")
            return (r.status, r.header("retry-after-ms"))
        }

        @Test("run --no-retry-hint drops the failover retry-after-ms; without it run adds it, as gateway does")
        func runNoRetryHint() async throws {
            let plain = try await Self.retryHint(extra: [])
            #expect(plain.status == 429)
            #expect(plain.hint == "100")
            let off = try await Self.retryHint(extra: ["--no-retry-hint"])
            #expect(off.status == 429)
            #expect(off.hint == nil)
        }
    }
}

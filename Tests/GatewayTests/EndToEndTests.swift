import Foundation
import Testing
@testable import Gateway
@testable import Lab
import Upstreams

extension OverSockets {
    /// The lab over real sockets: test client -> gateway -> stand-ins, all on loopback.
    @Suite("Seed lab end to end", .serialized)
    struct EndToEndTests {
        static func seedLab(retryAfter: Int = 60) throws -> LabConfig {
            var text = try String(contentsOfFile: scenariosDirectory + "/http-429-lab.yaml", encoding: .utf8)
            text = text.replacingOccurrences(of: "retryAfter: 60", with: "retryAfter: \(retryAfter)")
            return try loadLab(text, file: "http-429-lab.yaml")
        }

        static func start(_ config: LabConfig, accessLog: AccessLogWriter? = nil, balancer: BalancerOptions = BalancerOptions(), configure: (inout LabOptions) -> Void = { _ in }) async throws -> (RunningLab, EventLog) {
            var options = LabOptions()
            options.port = 0
            options.accessLog = accessLog
            options.gateway.balancer = balancer
            options.environment = [:]
            configure(&options)
            let lab = try await RunningLab.start(config: config, options: options)
            let events = EventLog()
            lab.gateway.runtime.subscribe(events.sink)
            return (lab, events)
        }

        @Test("the lab's two requests: 429 as the stand-in sent it, then 200 from gpt-4o-mini; the access log shows the endpoint change")
        func seedLabTwoRequests() async throws {
            let logPath = FileManager.default.temporaryDirectory.appendingPathComponent("access-\(UUID().uuidString).log").path
            defer { try? FileManager.default.removeItem(atPath: logPath) }
            let (lab, _) = try await Self.start(try Self.seedLab(), accessLog: try AccessLogWriter(path: logPath))
            defer { Task { await lab.stop() } }
            let port = lab.gateway.port

            let first = try await TestClient.post(port: port, path: "/http-429")
            #expect(first.status == 429)
            #expect(first.header("retry-after") == "60")
            #expect(first.header("content-type") == "application/json")
            #expect(first.body == #"{"error":{"message":"Rate limit exceeded","type":"rate_limit_error"}}"#)
            #expect(first.header("x-failover-attempts") == "http-429-provider=429")

            let second = try await TestClient.post(port: port, path: "/http-429")
            #expect(second.status == 200)
            let json = try #require(second.json)
            #expect(json["model"] as? String == "gpt-4o-mini")
            #expect(json["object"] as? String == "chat.completion")
            #expect((json["id"] as? String)?.hasPrefix("chatcmpl-") == true)
            let choice = try #require((json["choices"] as? [[String: Any]])?.first)
            #expect((choice["message"] as? [String: Any])?["content"] as? String == "2 + 2 equals 4.")
            #expect(choice["finish_reason"] as? String == "stop")
            #expect(second.header("x-failover-attempts") == "openai-provider=200")

            let lines = try String(contentsOfFile: logPath, encoding: .utf8).split(separator: "\n").map(String.init)
            #expect(lines.count == 2)
            let logs = lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
            try #require(logs.count == 2)
            let http429 = try #require(lab.standIn("http-429"))
            let openai = try #require(lab.standIn("openai"))
            #expect(logs[0]["scope"] as? String == "request")
            #expect(logs[0]["endpoint"] as? String == http429.address)
            #expect(logs[0]["http.status"] as? Int == 429)
            #expect(logs[0]["provider"] as? String == "http-429-provider")
            #expect(logs[0]["group"] as? Int == 1)
            #expect(logs[1]["endpoint"] as? String == openai.address)
            #expect(logs[1]["http.status"] as? Int == 200)
            #expect(logs[1]["provider"] as? String == "openai-provider")
            #expect(logs[1]["group"] as? Int == 2)
            #expect(logs[1]["gen_ai.response.model"] as? String == "gpt-4o-mini")
            #expect(logs[1]["gen_ai.usage.output_tokens"] as? Int == 5)
            #expect(logs[1]["route"] as? String == "enterprise-agentgateway/http-429")
            #expect((logs[0]["duration"] as? String)?.hasSuffix("ms") == true)
            #expect(http429.requestCount == 1)
            #expect(openai.requestCount == 1)
        }

        @Test("after the retry-after, group 1 is tried again (a probe), and evicted again")
        func returnAfterEviction() async throws {
            let (lab, events) = try await Self.start(try Self.seedLab(retryAfter: 1))
            defer { Task { await lab.stop() } }
            let port = lab.gateway.port
            #expect(try await TestClient.post(port: port, path: "/http-429").status == 429)
            #expect(try await TestClient.post(port: port, path: "/http-429").status == 200)
            try await Task.sleep(for: .milliseconds(1100))
            let probe = try await TestClient.post(port: port, path: "/http-429")
            #expect(probe.status == 429)
            #expect(probe.header("x-failover-attempts") == "http-429-provider=429")
            #expect(try await TestClient.post(port: port, path: "/http-429").status == 200)
            #expect(lab.standIn("http-429")?.requestCount == 2)
            let health = events.events.withLockedValue { $0 }.compactMap { event -> BalancerEvent.Kind? in
                if case .health(_, let e) = event { return e.kind } else { return nil }
            }
            #expect(health == [.evicted(duration: .seconds(1), reason: .rate, times: 1), .probeSent, .probeFailed, .evicted(duration: .seconds(1), reason: .rate, times: 2)])
        }

        @Test("with the stand-in made healthy, the probe succeeds and group 1 serves again")
        func probeSucceeds() async throws {
            let (lab, _) = try await Self.start(try Self.seedLab(retryAfter: 1))
            defer { Task { await lab.stop() } }
            let port = lab.gateway.port
            #expect(try await TestClient.post(port: port, path: "/http-429").status == 429)
            try await lab.standIn("http-429")!.setBehavior(.healthy)
            #expect(try await TestClient.post(port: port, path: "/http-429").header("x-failover-attempts") == "openai-provider=200")
            try await Task.sleep(for: .milliseconds(1100))
            for _ in 0..<3 {
                let r = try await TestClient.post(port: port, path: "/http-429")
                #expect(r.status == 200)
                #expect(r.header("x-failover-attempts") == "http-429-provider=200")
                #expect(r.json?["model"] as? String == "gpt-5")
            }
        }

        @Test("not JSON: 400 with a clear message, nothing sent upstream")
        func badJSON() async throws {
            let (lab, events) = try await Self.start(try Self.seedLab())
            defer { Task { await lab.stop() } }
            let r = try await TestClient.post(port: lab.gateway.port, path: "/http-429", body: "{\"model\": \"\", messages: oops}")
            #expect(r.status == 400)
            let message = try #require(((r.json?["error"]) as? [String: Any])?["message"] as? String)
            #expect(message.hasPrefix("request body is not valid JSON"))
            #expect(lab.standIns.allSatisfy { $0.requestCount == 0 })
            #expect(events.requests.first?.reason == "bad_request")
        }

        @Test("over the body limit: 413 before anything is sent upstream")
        func bodyTooLarge() async throws {
            let (lab, _) = try await Self.start(try Self.seedLab()) { $0.gateway.maxRequestBody = 1024 }
            defer { Task { await lab.stop() } }
            let big = #"{"model":"","messages":[{"role":"user","content":""# + String(repeating: "x", count: 4000) + #""}]}"#
            let r = try await TestClient.post(port: lab.gateway.port, path: "/http-429", body: big)
            #expect(r.status == 413)
            #expect(lab.standIns.allSatisfy { $0.requestCount == 0 })
        }

        @Test("no route: 404 JSON; segment-aware prefix")
        func noRoute() async throws {
            let (lab, _) = try await Self.start(try Self.seedLab())
            defer { Task { await lab.stop() } }
            let r = try await TestClient.post(port: lab.gateway.port, path: "/http-4290")
            #expect(r.status == 404)
            #expect((r.json?["error"] as? [String: Any])?["message"] as? String == "no route matches path /http-4290")
        }

        static func directLab(port: Int, extra: String = "", timeout: String = "5s", model: String? = "m-override", auth: String = "") -> String {
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: r, namespace: ns}
            spec:
              rules:
                - matches: [{path: {type: PathPrefix, value: /lab}}]
                  backendRefs: [{name: b, kind: AgentgatewayBackend}]
                  timeouts: {request: \(timeout)}
            ---
            apiVersion: agentgateway.dev/v1alpha1
            kind: AgentgatewayBackend
            metadata: {name: b, namespace: ns}
            spec:
              ai:
                groups:
                  - providers:
                      - name: direct
                        openai: {\(model.map { "model: \($0)" } ?? "")}
                        host: 127.0.0.1
                        port: \(port)
            \(extra)\(auth)
            """
        }

        @Test("a host without path forwards the client path; model override; no auth policy drops Authorization")
        func upstreamRequestShape() async throws {
            let upstream = try await RecordingUpstream()
            defer { Task { await upstream.stop() } }
            let (lab, events) = try await Self.start(try loadLab(Self.directLab(port: upstream.port)))
            defer { Task { await lab.stop() } }
            let r = try await TestClient.post(port: lab.gateway.port, path: "/lab/v1/chat/completions?x=1",
                                              body: #"{"model":"client-model","messages":[]}"#,
                                              headers: [("Content-Type", "application/json"), ("Authorization", "Bearer client-secret"), ("X-Custom", "kept")])
            #expect(r.status == 200)
            let seen = try #require(upstream.seen.withLockedValue { $0 }.first)
            #expect(seen.uri == "/lab/v1/chat/completions?x=1")
            #expect(seen.header("authorization") == nil)
            #expect(seen.header("x-custom") == "kept")
            #expect(seen.header("host") == "127.0.0.1:\(upstream.port)")
            let body = try #require((try? JSONSerialization.jsonObject(with: Data(seen.body.utf8))) as? [String: Any])
            #expect(body["model"] as? String == "m-override")
            #expect(events.requests.first?.requestModel == "m-override")
            #expect(events.requests.first?.inputTokens == 1)
        }

        @Test("a stream asks for its usage chunk as agentgateway does: stream_options.include_usage added when the client did not say, kept when it did", arguments: [
            (#"{"model":"client-model","stream":true,"messages":[]}"#, true, true),
            (#" {"stream":true,"messages":[{"role":"user","content":"{"}]}"#, true, true),
            (#"{"model":"client-model","stream":true,"stream_options":{},"messages":[]}"#, true, true),
            (#"{"model":"client-model","stream":true,"stream_options":{"include_usage":false}}"#, false, true),
            (#"{"model":"client-model","stream":true,"stream_options":{"include_usage":true}}"#, true, true),
            (#"{"model":"client-model","messages":[]}"#, nil, false),
        ] as [(String, Bool?, Bool)])
        func streamOptionsInjected(_ sent: String, _ includeUsage: Bool?, _ hasOptions: Bool) async throws {
            let upstream = try await RecordingUpstream()
            defer { Task { await upstream.stop() } }
            let (lab, _) = try await Self.start(try loadLab(Self.directLab(port: upstream.port)))
            defer { Task { await lab.stop() } }
            _ = try await TestClient.post(port: lab.gateway.port, path: "/lab/v1/chat/completions", body: sent)
            let seen = try #require(upstream.seen.withLockedValue { $0 }.first)
            let body = try #require((try? JSONSerialization.jsonObject(with: Data(seen.body.utf8))) as? [String: Any], "not JSON: \(seen.body)")
            #expect(body["model"] as? String == "m-override")
            let options = body["stream_options"] as? [String: Any]
            #expect((options != nil) == hasOptions, "\(seen.body)")
            #expect(options?["include_usage"] as? Bool == includeUsage, "\(seen.body)")
            #expect(seen.body.components(separatedBy: "\"model\"").count == 2, "one model key: \(seen.body)")
            #expect((body["messages"] as? [Any])?.count == (sent.contains("content") ? 1 : sent.contains("messages") ? 0 : nil))
        }

        @Test("pathPrefix is prepended; passthrough forwards Authorization; secretRef sends Bearer from the Secret")
        func authAndPrefix() async throws {
            let upstream = try await RecordingUpstream()
            defer { Task { await upstream.stop() } }
            let passthrough = Self.directLab(port: upstream.port).replacingOccurrences(of: "port: \(upstream.port)", with: "port: \(upstream.port)\n            pathPrefix: /base\n            policies: {auth: {passthrough: {}}}")
            let (lab, _) = try await Self.start(try loadLab(passthrough))
            _ = try await TestClient.post(port: lab.gateway.port, path: "/lab/x", headers: [("Authorization", "Bearer mine")])
            await lab.stop()
            let secret = Self.directLab(port: upstream.port, auth: "\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns}\nstringData: {Authorization: \"Bearer sk-from-secret\"}\n")
                .replacingOccurrences(of: "port: \(upstream.port)\n", with: "port: \(upstream.port)\n            path: /fixed\n            policies: {auth: {secretRef: {name: s}}}\n")
            let (lab2, events) = try await Self.start(try loadLab(secret))
            _ = try await TestClient.post(port: lab2.gateway.port, path: "/lab/x", headers: [("Authorization", "Bearer mine")])
            await lab2.stop()
            let seen = upstream.seen.withLockedValue { $0 }
            try #require(seen.count == 2)
            #expect(seen[0].uri == "/base/lab/x")
            #expect(seen[0].header("authorization") == "Bearer mine")
            #expect(seen[1].uri == "/fixed")
            #expect(seen[1].header("authorization") == "Bearer sk-from-secret")
            #expect(!events.requests[0].jsonLine().contains("sk-from-secret"))
        }

        @Test("no model anywhere: 400 model not specified")
        func modelMissing() async throws {
            let upstream = try await RecordingUpstream()
            defer { Task { await upstream.stop() } }
            let (lab, _) = try await Self.start(try loadLab(Self.directLab(port: upstream.port, model: nil)))
            defer { Task { await lab.stop() } }
            let r = try await TestClient.post(port: lab.gateway.port, path: "/lab")
            #expect(r.status == 400)
            #expect((r.json?["error"] as? [String: Any])?["message"] as? String == "model not specified")
            #expect(upstream.seen.withLockedValue { $0 }.isEmpty)
        }

        @Test("upstream refusing the connection: 502 with a clear JSON error, counted as unhealthy")
        func connectionRefused() async throws {
            // Bind and close to get a port nobody listens on.
            let probe = try await RecordingUpstream()
            let deadPort = probe.port
            await probe.stop()
            let (lab, _) = try await Self.start(try loadLab(Self.directLab(port: deadPort)))
            defer { Task { await lab.stop() } }
            let r = try await TestClient.post(port: lab.gateway.port, path: "/lab")
            #expect(r.status == 502)
            let message = try #require((r.json?["error"] as? [String: Any])?["message"] as? String)
            #expect(message.contains("upstream connect error"))
            #expect(message.contains("127.0.0.1:\(deadPort)"))
            #expect(r.header("x-failover-attempts") == "direct=connect")
            #expect(lab.gateway.runtime.snapshot(backend: 0)[ProviderIndex(group: 0, index: 0)].health == 0)
        }

        @Test("the request timeout bounds the request: 504 request timeout")
        func timeout() async throws {
            let (lab, _) = try await Self.start(try Self.seedLab())
            defer { Task { await lab.stop() } }
            let yaml = Self.directLab(port: lab.standIn("openai")!.port, timeout: "300ms")
            try await lab.standIn("openai")!.setBehavior(.hang)
            let (gw, events) = try await Self.start(try loadLab(yaml))
            defer { Task { await gw.stop() } }
            let started = ContinuousClock.now
            let r = try await TestClient.post(port: gw.gateway.port, path: "/lab")
            #expect(r.status == 504)
            #expect((r.json?["error"] as? [String: Any])?["message"] as? String == "request timeout")
            #expect(ContinuousClock.now - started < .seconds(3))
            #expect(events.requests.first?.reason == "timeout")
        }

        @Test("a stream that breaks halfway: logged with what was received, counted against the provider, and the client sees the end")
        func brokenStream() async throws {
            let upstream = try await BreakingUpstream.start()
            defer { Task { await upstream.stop() } }
            let (lab, events) = try await Self.start(try loadLab(Self.directLab(port: upstream.port)))
            defer { Task { await lab.stop() } }
            let started = ContinuousClock.now
            var clientSaw = "a complete response"
            do {
                _ = try await TestClient.post(port: lab.gateway.port, path: "/lab", body: #"{"model":"","stream":true,"messages":[]}"#)
            } catch {
                clientSaw = "\(error)"
            }
            #expect(clientSaw != "a complete response")
            #expect(ContinuousClock.now - started < .seconds(3), "the client hung")
            let log = try #require(events.requests.first)
            #expect(log.reason == "upstream_broken")
            #expect(log.error?.contains("broke off after") == true)
            #expect(log.status == 200)
            #expect(lab.gateway.runtime.snapshot(backend: 0)[ProviderIndex(group: 0, index: 0)].health == 0)
        }

        @Test("responses stream through: the first bytes arrive before the upstream sends the last")
        func streamsThrough() async throws {
            let (lab, _) = try await Self.start(try Self.seedLab())
            defer { Task { await lab.stop() } }
            let openai = lab.standIn("openai")!
            try await lab.standIn("http-429")!.setBehavior(.healthy)
            openai.setTokenDelay(.milliseconds(300))
            let yaml = Self.directLab(port: openai.port)
            let (gw, events) = try await Self.start(try loadLab(yaml))
            defer { Task { await gw.stop() } }
            let chunks = try await StreamingProbe.firstChunkDelay(port: gw.gateway.port, path: "/lab",
                body: #"{"model":"","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"What is 2+2?"}]}"#)
            // 2 + 2 equals 4. is 4 pieces plus role, stop, usage, [DONE]: ~7 gaps of 300 ms.
            #expect(chunks.firstChunk < .milliseconds(250), "first chunk after \(chunks.firstChunk)")
            #expect(chunks.total > .milliseconds(1500), "whole stream took \(chunks.total)")
            #expect(chunks.text.contains("data: [DONE]"))
            let log = try #require(events.requests.first)
            #expect(log.outputTokens == 5)
            #expect(log.responseModel == "m-override")
        }
    }
}

typealias EndToEndTests = OverSockets.EndToEndTests

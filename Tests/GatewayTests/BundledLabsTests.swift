import Foundation
import NIOConcurrencyHelpers
import Testing
@testable import Gateway
@testable import Lab
import Upstreams

extension OverSockets {
    /// The three bundled labs beyond the seed, end to end over real sockets.
    @Suite("Bundled labs end to end", .serialized)
    struct BundledLabsTests {
        static func lab(_ name: String, _ edits: [(String, String)] = []) throws -> LabConfig {
            var text = try String(contentsOfFile: scenariosDirectory + "/\(name).yaml", encoding: .utf8)
            for (from, to) in edits {
                #expect(text.contains(from), "\(name) has no \(from)")
                text = text.replacingOccurrences(of: from, with: to)
            }
            return try loadLab(text, file: "\(name).yaml")
        }

        static func healthKinds(_ events: EventLog, provider: String? = nil) -> [BalancerEvent.Kind] {
            events.events.withLockedValue { $0 }.compactMap { event -> BalancerEvent.Kind? in
                guard case .health(_, let e) = event, provider == nil || e.provider == provider else { return nil }
                return e.kind
            }
        }

        @Test("health-policy lab: 429, then group 2; the failed probe re-evicts for twice as long")
        func healthPolicyLab() async throws {
            // 2 s, then 4 s: wide enough that a busy machine (the suites run in parallel) does
            // not turn "at once" into "after the eviction".
            let (lab, events) = try await EndToEndTests.start(try Self.lab("health-policy-lab", [("duration: 60s", "duration: 2s")]))
            defer { Task { await lab.stop() } }
            let port = lab.gateway.port
            let first = try await TestClient.post(port: port, path: "/health-policy")
            #expect(first.status == 429)
            #expect(first.header("retry-after") == "60")
            #expect(try await TestClient.post(port: port, path: "/health-policy").header("x-failover-attempts") == "openai-provider=200")
            try await Task.sleep(for: .milliseconds(2100))
            let probe = try await TestClient.post(port: port, path: "/health-policy")
            #expect(probe.header("x-failover-attempts") == "http-429-provider=429")
            #expect(try await TestClient.post(port: port, path: "/health-policy").header("x-failover-attempts") == "openai-provider=200")
            try await Task.sleep(for: .milliseconds(2100))
            // 2 s x 2 = 4 s: still evicted 2.1 s after the probe.
            #expect(try await TestClient.post(port: port, path: "/health-policy").header("x-failover-attempts") == "openai-provider=200")
            #expect(Self.healthKinds(events, provider: "http-429-provider") == [
                .evicted(duration: .seconds(2), reason: .rate, times: 1), .probeSent, .probeFailed,
                .evicted(duration: .seconds(4), reason: .rate, times: 2),
            ])
            let health = HealthReport.json(runtime: lab.gateway.runtime)
            let providers = ((health["backends"] as? [[String: Any]])?.first?["providers"] as? [[String: Any]]) ?? []
            #expect(providers.first?["state"] as? String == "evicted")
            #expect(providers.first?["timesEvicted"] as? Int == 2)
            #expect(providers.first?["reason"] as? String == "429 rate")
        }

        @Test("retries lab: group 1's 429 answered by group 2's 200 in the same request, with x-retry-attempt")
        func retriesFailover() async throws {
            let (lab, events) = try await EndToEndTests.start(try Self.lab("retries-lab"))
            defer { Task { await lab.stop() } }
            let r = try await TestClient.post(port: lab.gateway.port, path: "/retries")
            #expect(r.status == 200)
            #expect(r.header("x-failover-attempts") == "http-429-provider=429,openai-provider=200")
            #expect(r.json?["model"] as? String == "gpt-4o-mini")
            let log = try #require(events.requests.first)
            #expect(log.attempts.count == 2)
            #expect(log.jsonLine().contains("\"retry.attempt\":1"))
        }

        @Test("retries lab: the retried request carries x-retry-attempt; 503s are retried until attempts run out")
        func retriesRunOut() async throws {
            let upstream = try await RecordingUpstream(status: 503)
            defer { Task { await upstream.stop() } }
            let yaml = EndToEndTests.directLab(port: upstream.port).replacingOccurrences(of: "timeouts: {request: 5s}", with: "timeouts: {request: 5s}\n      retry: {attempts: 2, backoff: 50ms, codes: [503]}")
            let (lab, _) = try await EndToEndTests.start(try loadLab(yaml))
            defer { Task { await lab.stop() } }
            let r = try await TestClient.post(port: lab.gateway.port, path: "/lab")
            #expect(r.status == 503)
            #expect(r.header("x-failover-attempts") == "direct=503,direct=503,direct=503")
            let seen = upstream.seen.withLockedValue { $0 }
            #expect(seen.map { $0.header("x-retry-attempt") } == [nil, "1", "2"])
            // A body over 64 KiB is not retried.
            let big = #"{"messages":[{"role":"user","content":""# + String(repeating: "y", count: 70_000) + #""}]}"#
            let once = try await TestClient.post(port: lab.gateway.port, path: "/lab", body: big)
            #expect(once.header("x-failover-attempts") == "direct=503")
        }

        @Test("retries lab: the request timeout ends retries and backoff with 504")
        func retriesTimeout() async throws {
            let (lab, events) = try await EndToEndTests.start(try Self.lab("retries-lab", [("request: \"2s\"", "request: \"600ms\"")]))
            defer { Task { await lab.stop() } }
            try await lab.standIn("openai")!.setBehavior(.hang)
            let started = ContinuousClock.now
            let r = try await TestClient.post(port: lab.gateway.port, path: "/retries")
            let took = ContinuousClock.now - started
            #expect(r.status == 504)
            #expect(took >= .milliseconds(550) && took < .seconds(3), "took \(took)")
            #expect(r.header("x-failover-attempts") == "http-429-provider=429,openai-provider=timeout")
            #expect(events.requests.first?.reason == "timeout")
        }

        @Test("advanced lab: one provider out alone, both out moves to group 2, both back after probes")
        func advancedLab() async throws {
            let (lab, events) = try await EndToEndTests.start(try Self.lab("advanced-failover-lab", [("duration: 10s", "duration: 500ms")]))
            defer { Task { await lab.stop() } }
            let port = lab.gateway.port
            func served(_ n: Int) async throws -> [String: Int] {
                var counts: [String: Int] = [:]
                for _ in 0..<n {
                    let r = try await TestClient.post(port: port, path: "/advanced")
                    counts[String(r.header("x-failover-attempts")?.split(separator: "=").first ?? "?"), default: 0] += 1
                }
                return counts
            }
            let before = try await served(20)
            #expect(before["primary-a", default: 0] > 0 && before["primary-b", default: 0] > 0, "P2C uses both: \(before)")
            #expect(before["backup"] == nil)

            try await lab.standIn("primary-a")!.setBehavior(.serverErrors(status: 503, share: 1))
            var tries = 0
            while !Self.healthKinds(events, provider: "primary-a").contains(where: { if case .evicted = $0 { return true } else { return false } }) && tries < 100 {
                _ = try await TestClient.post(port: port, path: "/advanced")
                tries += 1
            }
            #expect(tries < 100, "primary-a was never evicted")
            let aloneOut = try await served(10)
            #expect(aloneOut == ["primary-b": 10], "\(aloneOut)")

            try await lab.standIn("primary-b")!.setBehavior(.serverErrors(status: 503, share: 1))
            tries = 0
            while !Self.healthKinds(events, provider: "primary-b").contains(where: { if case .evicted = $0 { return true } else { return false } }) && tries < 100 {
                _ = try await TestClient.post(port: port, path: "/advanced")
                tries += 1
            }
            let bothOut = try await served(5)
            #expect(bothOut == ["backup": 5], "\(bothOut)")
            #expect(try await TestClient.post(port: port, path: "/advanced").json?["model"] as? String == "gpt-4o")

            try await lab.standIn("primary-a")!.setBehavior(.healthy)
            try await lab.standIn("primary-b")!.setBehavior(.healthy)
            try await Task.sleep(for: .milliseconds(1100))
            let after = try await served(20)
            #expect(after["backup"] == nil, "group 1 is back: \(after)")
            #expect(after["primary-a", default: 0] > 0 && after["primary-b", default: 0] > 0, "\(after)")
            #expect(Self.healthKinds(events, provider: "primary-a").suffix(2) == [.probeSent, .returned])
        }

        @Test("32 clients at once: no request reaches a provider after the response that evicted it was read")
        func noLeakUnderConcurrency() async throws {
            let (lab, events) = try await EndToEndTests.start(try EndToEndTests.seedLab())
            defer { Task { await lab.stop() } }
            let port = lab.gateway.port
            // A slow 429 keeps many requests in flight to group 1 when the first one evicts it.
            lab.standIn("http-429")!.setLatency(.milliseconds(150))
            var statuses: [Int] = []
            try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<32 {
                    group.addTask {
                        var mine: [Int] = []
                        for _ in 0..<8 { mine.append(try await TestClient.post(port: port, path: "/http-429").status) }
                        return mine
                    }
                }
                for try await part in group { statuses += part }
            }
            let evictedAt = events.events.withLockedValue { $0 }.compactMap { event -> UInt64? in
                guard case .health(_, let e) = event, e.provider == "http-429-provider", case .evicted = e.kind else { return nil }
                return e.sequence
            }
            let eviction = try #require(evictedAt.first)
            let attempts = events.requests.flatMap(\.attempts).filter { $0.provider == "http-429-provider" }
            let before = attempts.filter { $0.sequence < eviction }.count
            let after = attempts.filter { $0.sequence > eviction && !$0.probe && !$0.failOpen }.count
            print("32 clients x 8 requests: \(statuses.filter { $0 == 429 }.count) x 429, \(statuses.filter { $0 == 200 }.count) x 200; to http-429-provider: \(before) chosen before its eviction, \(after) after it")
            #expect(statuses.count == 256)
            #expect(after == 0)
            #expect(before >= 8, "too few requests were in flight to test anything")
            #expect(statuses.filter { $0 == 429 }.count == before)
            #expect(lab.standIn("http-429")!.requestCount == attempts.count)
        }

        @Test("the admin port: health JSON, stand-in behaviour switched live, metrics")
        func adminPort() async throws {
            let (lab, _) = try await EndToEndTests.start(try EndToEndTests.seedLab()) { $0.adminPort = 0 }
            defer { Task { await lab.stop() } }
            let admin = try #require(lab.admin)
            #expect(try await TestClient.post(port: lab.gateway.port, path: "/http-429").status == 429)
            let health = try await TestClient.request(port: admin.port, method: .GET, path: "/health/providers", body: nil)
            #expect(health.status == 200)
            let backend = try #require((health.json?["backends"] as? [[String: Any]])?.first)
            #expect(backend["activeGroup"] as? Int == 2)
            let provider = try #require((backend["providers"] as? [[String: Any]])?.first)
            #expect(provider["name"] as? String == "http-429-provider")
            #expect(provider["state"] as? String == "evicted")
            #expect(provider["reason"] as? String == "429 rate")
            #expect((provider["remainingSeconds"] as? Double).map { $0 > 55 && $0 <= 60 } == true)
            #expect(provider["group"] as? Int == 1)

            let bad = try await TestClient.request(port: admin.port, method: .POST, path: "/standins/openai/behavior", body: #"{"behavior": "teapot"}"#)
            #expect(bad.status == 400)
            #expect(bad.body.contains("unknown behavior teapot"))
            let ok = try await TestClient.request(port: admin.port, method: .POST, path: "/standins/openai/behavior", body: "503 100%")
            #expect(ok.status == 200)
            #expect(try await TestClient.post(port: lab.gateway.port, path: "/http-429").status == 503)
            #expect(try await TestClient.request(port: admin.port, method: .POST, path: "/standins/nobody/behavior", body: "healthy").status == 404)

            let metrics = try await TestClient.request(port: admin.port, method: .GET, path: "/metrics", body: nil)
            #expect(metrics.body.contains(#"agentgateway_requests_total{backend="enterprise-agentgateway/http-429",route="enterprise-agentgateway/http-429",status="429",reason="upstream_status"} 1"#))
            #expect(metrics.body.contains(#"failover_provider_evicted{provider="http-429-provider",group="1"} 1"#))
            #expect(metrics.body.contains(#"failover_evictions_total{provider="http-429-provider",reason="429 rate"} 1"#))
            #expect(metrics.body.contains(#"failover_active_group{backend="enterprise-agentgateway/http-429"} 2"#))
        }

        @Test("a 429 whose body says insufficient_quota is logged and shown as quota")
        func quotaBody() async throws {
            let quota = try await QuotaUpstream.start()
            defer { Task { await quota.stop() } }
            let (lab, events) = try await EndToEndTests.start(try loadLab(EndToEndTests.directLab(port: quota.port)))
            defer { Task { await lab.stop() } }
            let r = try await TestClient.post(port: lab.gateway.port, path: "/lab")
            #expect(r.status == 429)
            #expect(r.body.contains("insufficient_quota"))
            #expect(Self.healthKinds(events) == [.evicted(duration: .seconds(20), reason: .quota, times: 1)])
        }
    }
}

typealias BundledLabsTests = OverSockets.BundledLabsTests

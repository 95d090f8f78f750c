import Foundation
import Testing
import Wire
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
@testable import Gateway
@testable import Lab

/// Rate-limit hints are an upstream's bytes: they never trap, and evictions are cut to
/// `--max-eviction` while long hints still count as `429 quota`.
@Suite("Reset hints: checked and clamped")
struct HintClampTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    /// Each header an upstream might send that no Double->Duration conversion may trap on.
    static let hostile: [(String, String)] = [
        ("retry-after", "10000000000"), ("retry-after", "999999999"), ("retry-after", "1e308"), ("retry-after", "1e400"),
        ("retry-after", "inf"), ("retry-after", "-inf"), ("retry-after", "nan"), ("retry-after", "-5"),
        ("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"), ("retry-after", String(repeating: "9", count: 5000)),
        ("retry-after-ms", "1e300"), ("retry-after-ms", "inf"), ("retry-after-ms", "-1"),
        ("x-ratelimit-reset", "1e300"), ("x-ratelimit-reset", "nan"), ("x-ratelimit-reset", "99999999999999"),
        ("x-ratelimit-reset-requests", "99999999999h"), ("x-ratelimit-reset-requests", "1e20s"),
        ("x-ratelimit-reset-tokens", "1e300"), ("x-ratelimit-reset-tokens", "9223372036854775807ns1h"),
    ]

    @Test("no hostile hint traps; each is ignored or at most the ceiling", arguments: hostile.indices)
    func hostileHint(_ i: Int) {
        let hint = RateLimitHint.resetDelay(headers: [Self.hostile[i]], now: Self.now)
        if let hint {
            #expect(hint >= .zero && hint <= RateLimitHint.ceiling, "\(Self.hostile[i]) gave \(hint)")
        }
    }

    @Test("finite long hints are kept (cut to the ceiling); non-finite and negative ones are ignored")
    func whichAreKept() {
        func hint(_ name: String, _ value: String) -> Duration? { RateLimitHint.resetDelay(headers: [(name, value)], now: Self.now) }
        #expect(hint("retry-after", "999999999") == RateLimitHint.ceiling)
        #expect(hint("retry-after", "10000000000") == RateLimitHint.ceiling)
        #expect(hint("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT") == RateLimitHint.ceiling)
        #expect(hint("x-ratelimit-reset-requests", "99999999999h") == nil)  // not a Go duration (out of range)
        #expect(hint("x-ratelimit-reset-requests", "2000000h") == RateLimitHint.ceiling)
        #expect(hint("retry-after-ms", "1e300") == RateLimitHint.ceiling)
        for bad in ["inf", "nan", "-5", "-inf"] { #expect(hint("retry-after", bad) == nil, "\(bad)") }
        // An ignored retry-after lets the next header speak.
        #expect(RateLimitHint.resetDelay(headers: [("retry-after", "nan"), ("retry-after-ms", "1500")], now: Self.now) == .milliseconds(1500))
        #expect(hint("retry-after", "30") == .seconds(30))
    }

    @Test("Duration.checked refuses what does not fit; seconds(double:) saturates; compactDescription never traps")
    func durationConversions() {
        #expect(Checked.duration(seconds: .infinity) == nil)
        #expect(Checked.duration(seconds: .nan) == nil)
        #expect(Checked.duration(seconds: -1) == nil)
        #expect(Checked.duration(seconds: 9.3e9) == nil)
        #expect(Checked.duration(seconds: 1.5) == .milliseconds(1500))
        #expect(Duration.seconds(double: .infinity) == GoDuration.maximum)
        #expect(Duration.seconds(double: .nan) == .zero)
        #expect(Duration.seconds(1e15).compactDescription.hasSuffix("s"))
        #expect(Duration.seconds(-1e15).compactDescription.hasSuffix("s"))
        #expect(Duration.seconds(90).compactDescription == "1m30s")
    }

    func balancer(_ options: BalancerOptions, rule: HealthRule = .lab) -> BackendBalancer {
        BackendBalancer(groups: [[ProviderHealth(name: "a", group: 0, rule: rule)], [ProviderHealth(name: "b", group: 1, rule: rule)]], options: options)
    }

    func evictions(_ events: [BalancerEvent]) -> [(Duration, EvictionReason)] {
        events.compactMap { if case .evicted(let d, let r, _) = $0.kind { return (d, r) } else { return nil } }
    }

    @Test("a 31-year hint evicts for the max eviction (1 h by default) and is shown as 429 quota")
    func clampedToMaxEviction() throws {
        var b = balancer(BalancerOptions())
        var rng = SeededGenerator(seed: 3)
        let t0 = ContinuousClock.now
        let (choice, _) = try #require(b.choose(now: t0, using: &rng))
        let events = b.record(BalancerTests.rateLimited([("retry-after", "999999999")]), for: choice, latency: .zero, now: t0)
        let evicted = evictions(events)
        #expect(evicted.count == 1)
        #expect(evicted.first?.0 == .seconds(3600))
        #expect(evicted.first?.1 == .quota)
        // After the max eviction the provider is probed again.
        let (probe, _) = try #require(b.choose(now: t0 + .seconds(3600), using: &rng))
        #expect(probe.isProbe && probe.provider.group == 0)
    }

    @Test("with --max-eviction 5m, a 20-minute hint evicts for 5 minutes, still as quota; a 30 s hint stays 30 s rate")
    func shorterMax() throws {
        var rng = SeededGenerator(seed: 4)
        let t0 = ContinuousClock.now
        for (header, expected) in [("1200", (Duration.seconds(300), EvictionReason.quota)), ("30", (.seconds(30), .rate))] {
            var b = balancer(BalancerOptions(maxEviction: .seconds(300)))
            let (choice, _) = try #require(b.choose(now: t0, using: &rng))
            let evicted = evictions(b.record(BalancerTests.rateLimited([("retry-after", header)]), for: choice, latency: .zero, now: t0))
            #expect(evicted.first?.0 == expected.0)
            #expect(evicted.first?.1 == expected.1)
        }
    }

    @Test("a health policy's duration times a long streak is cut to the max eviction, without overflow")
    func policyMultiplierClamped() {
        #expect(BackendBalancer.scaled(.seconds(8784 * 3600), by: Int.max, atMost: .seconds(3600)) == .seconds(3600))
        #expect(BackendBalancer.scaled(.seconds(10), by: 3, atMost: .seconds(3600)) == .seconds(30))
        #expect(BackendBalancer.scaled(.seconds(10), by: 1000, atMost: .seconds(3600)) == .seconds(3600))
        let rule = HealthRule.policy(HealthPolicyRule(eviction: EvictionSettings(duration: .seconds(8784 * 3600))))
        var b = balancer(BalancerOptions(), rule: rule)
        var rng = SeededGenerator(seed: 5)
        let t0 = ContinuousClock.now
        let (choice, _) = b.choose(now: t0, using: &rng)!
        let evicted = evictions(b.record(.response(status: 503, resetHint: nil, quotaExhausted: false), for: choice, latency: .zero, now: t0))
        #expect(evicted.first?.0 == .seconds(3600))
    }
}

extension OverSockets {
    /// An upstream written for the test answers 429 with one hostile hint; the gateway
    /// stays up, forwards the 429, logs it, and serves the next request.
    @Suite("Reset hints over the wire", .serialized)
    struct HostileHintTests {
        static func lab(hostile: Int, healthy: Int) -> String {
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: r, namespace: ns}
            spec:
              rules:
                - matches: [{path: {type: PathPrefix, value: /lab}}]
                  backendRefs: [{name: b, kind: AgentgatewayBackend}]
            ---
            apiVersion: agentgateway.dev/v1alpha1
            kind: AgentgatewayBackend
            metadata: {name: b, namespace: ns}
            spec:
              ai:
                groups:
                  - providers:
                      - {name: hostile, openai: {model: m}, host: 127.0.0.1, port: \(hostile)}
                  - providers:
                      - {name: healthy, openai: {model: m}, host: 127.0.0.1, port: \(healthy)}
            """
        }

        /// (header, value, evicted for, reason); nil: the hint is ignored, nothing is evicted.
        static let cases: [(String, String, Duration?, EvictionReason?)] = [
            ("retry-after", "10000000000", .seconds(3600), .quota),
            ("retry-after", "999999999", .seconds(3600), .quota),
            ("retry-after", "1e400", nil, nil),
            ("retry-after", "inf", nil, nil),
            ("retry-after", "nan", nil, nil),
            ("retry-after", "-5", nil, nil),
            ("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT", .seconds(3600), .quota),
            ("retry-after-ms", "1e300", .seconds(3600), .quota),
            ("x-ratelimit-reset", "1e300", .seconds(3600), .quota),
            ("x-ratelimit-reset-requests", "99999999999h", nil, nil),
            ("x-ratelimit-reset-tokens", "2000000h", .seconds(3600), .quota),
            ("retry-after", "2", .seconds(2), .rate),
        ]

        @Test("each hostile hint: 429 forwarded and logged, eviction clamped or none, the next request answered", arguments: cases.indices)
        func hostileHint(_ i: Int) async throws {
            let (name, value, evictedFor, reason) = Self.cases[i]
            let hostile = try await StandInLikeServer.start(status: 429, headers: [(name, value), ("content-type", "application/json")],
                                                            body: #"{"error":{"message":"slow down","type":"rate_limit_error"}}"#)
            defer { Task { await hostile.stop() } }
            let healthy = try await RecordingUpstream()
            defer { Task { await healthy.stop() } }
            let logPath = FileManager.default.temporaryDirectory.appendingPathComponent("hints-\(UUID().uuidString).log").path
            defer { try? FileManager.default.removeItem(atPath: logPath) }
            let (lab, events) = try await EndToEndTests.start(try loadLab(Self.lab(hostile: hostile.port, healthy: healthy.port)),
                                                              accessLog: try AccessLogWriter(path: logPath))
            defer { Task { await lab.stop() } }

            let first = try await TestClient.post(port: lab.gateway.port, path: "/lab")
            #expect(first.status == 429)
            #expect(first.header(name) == value)
            let second = try await TestClient.post(port: lab.gateway.port, path: "/lab")
            let evictions = BundledLabsTests.healthKinds(events).compactMap { kind -> (Duration, EvictionReason)? in
                if case .evicted(let d, let r, _) = kind { return (d, r) } else { return nil }
            }
            if let evictedFor {
                #expect(evictions.count == 1)
                #expect(evictions.first?.0 == evictedFor)
                #expect(evictions.first?.1 == reason)
                #expect(second.status == 200, "failed over to group 2")
            } else {
                #expect(evictions.isEmpty)
                #expect(second.status == 429, "no eviction: group 1 answers again")
            }
            // Both answers have their access-log line (the process lived to write them).
            var lines: [String] = []
            for _ in 0..<50 {
                lines = ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
                if lines.count >= 2 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(lines.count == 2)
            let statuses = lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }.map { $0["http.status"] as? Int }
            #expect(statuses == [429, second.status])
        }
    }
}

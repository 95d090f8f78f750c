import Foundation
import Testing
@testable import Gateway

@Suite("Health policies")
struct HealthPolicyTests {
    let t0 = ContinuousClock.now

    @Test("the CEL subset evaluates as CEL does", arguments: [
        ("response.code >= 500 || response.code == 429", [200: false, 429: true, 500: true, 503: true, 404: false]),
        ("response.code == 503", [503: true, 500: false]),
        ("!(response.code < 500)", [499: false, 500: true]),
        ("response.code >= 400 && response.code != 404", [404: false, 400: true, 429: true, 200: false]),
        ("500 <= response.code", [500: true, 200: false]),
        ("true", [200: true]),
        ("false || (response.code > 200 && response.code <= 299)", [200: false, 201: true, 300: false]),
        ("response.code == 429 || response.code == 503 && false", [429: true, 503: false]),
    ])
    func evaluates(expression: String, cases: [Int: Bool]) throws {
        let condition = try UnhealthyCondition.parse(expression)
        for (code, expected) in cases {
            #expect(condition.evaluate(code: code) == expected, "\(expression) at \(code)")
        }
    }

    @Test("outside the subset: an error naming the position and the construct", arguments: [
        ("response.code >= 500 ||", 24, "expected response.code"),
        ("response.headers['x'] == 1", 1, "unsupported identifier response.headers"),
        ("response.code == \"429\"", 18, "'\"' (not in the supported CEL subset)"),
        ("response.code in [429, 503]", 15, "expected a comparison"),
        ("(response.code == 429", 22, "expected ) to close the ( at position 1"),
        ("response.code = 429", 15, "'=' (not in the supported CEL subset)"),
        ("429 == 503", 1, "needs response.code on one side"),
        ("", 1, "empty expression"),
        ("response.code == 429 response.code", 22, "unexpected 'response.code'"),
    ])
    func rejects(expression: String, position: Int, fragment: String) {
        do {
            _ = try UnhealthyCondition.parse(expression)
            Issue.record("accepted \(expression)")
        } catch {
            #expect(error.position == position, "\(error)")
            #expect(error.message.contains(fragment), "\(error)")
        }
    }

    @Test("a bad condition in a manifest is an error at its file:line")
    func manifestError() {
        let yaml = ConfigTests.base.replacingOccurrences(of: "            port: 9", with: "            port: 9\n            policies:\n              health:\n                unhealthyCondition: \"response.status >= 500\"")
        do {
            _ = try loadLab(yaml, file: "bad.yaml")
            Issue.record("no error")
        } catch let e as ConfigErrors {
            #expect(e.diagnostics.count == 1)
            #expect(e.description.contains("bad.yaml:22: error: spec.ai.groups[0].providers[0].policies.health.unhealthyCondition \"response.status >= 500\": unsupported identifier response.status; only response.code is supported at position 1"))
        } catch {
            Issue.record("\(error)")
        }
    }

    func policy(_ condition: String = "response.code >= 500 || response.code == 429", eviction: EvictionSettings, retryBackoff: Duration? = nil) throws -> HealthRule {
        .policy(HealthPolicyRule(condition: try UnhealthyCondition.parse(condition), eviction: eviction, retryBackoff: retryBackoff))
    }

    func balancer(_ rule: HealthRule, options: BalancerOptions = BalancerOptions()) -> BackendBalancer {
        BackendBalancer(groups: [[ProviderHealth(name: "a", group: 0, rule: rule)], [ProviderHealth(name: "b", group: 1, rule: rule)]], options: options)
    }

    static let http429 = AttemptOutcome.response(status: 429, resetHint: .seconds(60), quotaExhausted: false)
    static let ok = AttemptOutcome.response(status: 200, resetHint: nil, quotaExhausted: false)

    func evictions(_ events: [BalancerEvent]) -> [Duration] {
        events.compactMap { if case .evicted(let d, _, _) = $0.kind { return d } else { return nil } }
    }

    @Test("the health-policy lab: duration 60s, one failure; 60 s, then 120 s, then 180 s as probes fail; success resets")
    func multiplicativeBackoff() throws {
        var b = balancer(try policy(eviction: EvictionSettings(duration: .seconds(60), consecutiveFailures: 1)))
        var rng = SeededGenerator(seed: 1)
        var now = t0
        var durations: [Duration] = []
        for _ in 0..<3 {
            let (choice, _) = b.choose(now: now, using: &rng)!
            #expect(b[choice.provider].name == "a")
            durations += evictions(b.record(Self.http429, for: choice, latency: .zero, now: now))
            now = now + durations.last! 
        }
        #expect(durations == [.seconds(60), .seconds(120), .seconds(180)])
        // The probe succeeds: back in rotation, and the next eviction starts at 60 s again.
        let (probe, _) = b.choose(now: now, using: &rng)!
        #expect(probe.isProbe)
        _ = b.record(Self.ok, for: probe, latency: .milliseconds(5), now: now)
        let (next, _) = b.choose(now: now, using: &rng)!
        #expect(!next.isProbe && b[next.provider].name == "a")
        #expect(evictions(b.record(Self.http429, for: next, latency: .zero, now: now)) == [.seconds(60)])
    }

    @Test("consecutiveFailures counts this failure; success resets the count")
    func consecutive() throws {
        var b = balancer(try policy("response.code >= 500", eviction: EvictionSettings(duration: .seconds(5), consecutiveFailures: 3)))
        var rng = SeededGenerator(seed: 2)
        let fail = AttemptOutcome.response(status: 503, resetHint: nil, quotaExhausted: false)
        func send(_ outcome: AttemptOutcome) -> [Duration] {
            let (c, _) = b.choose(now: t0, using: &rng)!
            return evictions(b.record(outcome, for: c, latency: .zero, now: t0))
        }
        #expect(send(fail).isEmpty)
        #expect(send(fail).isEmpty)
        #expect(send(Self.ok).isEmpty)
        #expect(send(fail).isEmpty)
        #expect(send(fail).isEmpty)
        #expect(send(fail) == [.seconds(5)])
        // 429 is healthy under this condition.
        var c = balancer(try policy("response.code >= 500", eviction: EvictionSettings(consecutiveFailures: 1)))
        let (x, _) = c.choose(now: t0, using: &rng)!
        #expect(c.record(Self.http429, for: x, latency: .zero, now: t0).isEmpty)
    }

    @Test("healthThreshold: evict when health EWMA after this failure is below it")
    func threshold() throws {
        // One group, so every choice is provider a (failing open while it is evicted).
        var b = BackendBalancer(groups: [[ProviderHealth(name: "a", group: 0, rule: try policy(eviction: EvictionSettings(duration: .seconds(1), healthThreshold: 0.5)))]])
        var rng = SeededGenerator(seed: 3)
        let fail = AttemptOutcome.response(status: 500, resetHint: nil, quotaExhausted: false)
        var results: [Bool] = []
        let (c0, _) = b.choose(now: t0, using: &rng)!
        _ = b.record(Self.ok, for: c0, latency: .zero, now: t0)  // health 1
        for _ in 0..<3 {
            let (c, _) = b.choose(now: t0, using: &rng)!
            results.append(!b.record(fail, for: c, latency: .zero, now: t0).isEmpty)
        }
        // 1 -> 0.7 -> 0.49: evicted at the second failure.
        #expect(results == [false, true, false])
    }

    @Test("base duration falls back: eviction.duration, then the reset hint, then the retry backoff, then 3 s")
    func baseFallbacks() throws {
        let cases: [(EvictionSettings, Duration?, AttemptOutcome, Duration)] = [
            (EvictionSettings(duration: .seconds(7)), .seconds(2), Self.http429, .seconds(7)),
            (EvictionSettings(), .seconds(2), Self.http429, .seconds(60)),
            (EvictionSettings(), .seconds(2), .response(status: 500, resetHint: nil, quotaExhausted: false), .seconds(2)),
            (EvictionSettings(), nil, .connectFailed, .seconds(3)),
        ]
        for (settings, backoff, outcome, expected) in cases {
            var b = balancer(try policy(eviction: settings, retryBackoff: backoff))
            var rng = SeededGenerator(seed: 4)
            let (c, _) = b.choose(now: t0, using: &rng)!
            #expect(evictions(b.record(outcome, for: c, latency: .zero, now: t0)) == [expected])
        }
    }

    @Test("no response at all is unhealthy whatever the condition says")
    func noResponse() throws {
        var b = balancer(try policy("response.code == 418", eviction: EvictionSettings(duration: .seconds(1))))
        var rng = SeededGenerator(seed: 5)
        for outcome in [AttemptOutcome.connectFailed, .timedOut, .broken] {
            var copy = b
            let (c, _) = copy.choose(now: t0, using: &rng)!
            #expect(evictions(copy.record(outcome, for: c, latency: .zero, now: t0)) == [.seconds(1)])
        }
        let (c, _) = b.choose(now: t0, using: &rng)!
        #expect(b.record(.response(status: 500, resetHint: nil, quotaExhausted: false), for: c, latency: .zero, now: t0).isEmpty)
    }

    @Test("restoreHealth sets health on return")
    func restore() throws {
        var b = balancer(try policy(eviction: EvictionSettings(duration: .seconds(1), restoreHealth: 0.8)), options: BalancerOptions(halfOpen: false))
        var rng = SeededGenerator(seed: 6)
        let (c, _) = b.choose(now: t0, using: &rng)!
        _ = b.record(Self.http429, for: c, latency: .zero, now: t0)
        #expect(b[ProviderIndex(group: 0, index: 0)].health == 0)
        _ = b.expireEvictions(now: t0 + .seconds(1))
        #expect(b[ProviderIndex(group: 0, index: 0)].health == 0.8)
    }

    @Test("deadlines only move forward; with the switch off a shorter later hint shortens the eviction")
    func forwardDeadlines() throws {
        for forward in [true, false] {
            var b = balancer(.lab, options: BalancerOptions(deadlinesOnlyMoveForward: forward, halfOpen: false))
            var rng = SeededGenerator(seed: 7)
            let (c1, _) = b.choose(now: t0, using: &rng)!
            let (c2, _) = b.choose(now: t0, using: &rng)!
            _ = b.record(Self.http429, for: c1, latency: .zero, now: t0)
            _ = b.record(.response(status: 429, resetHint: .seconds(5), quotaExhausted: false), for: c2, latency: .zero, now: t0 + .seconds(1))
            let (later, _) = b.choose(now: t0 + .seconds(10), using: &rng)!
            #expect(b[later.provider].name == (forward ? "b" : "a"), "forward: \(forward)")
        }
    }

    @Test("a quota body classifies the eviction as quota")
    func quotaBody() {
        var b = balancer(.lab)
        var rng = SeededGenerator(seed: 8)
        let (c, _) = b.choose(now: t0, using: &rng)!
        let events = b.record(.response(status: 429, resetHint: .seconds(20), quotaExhausted: true), for: c, latency: .zero, now: t0)
        #expect(events.first?.kind == .evicted(duration: .seconds(20), reason: .quota, times: 1))
    }
}

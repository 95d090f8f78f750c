import Foundation
import Testing
@testable import Gateway

@Suite("Balancer")
struct BalancerTests {
    let t0 = ContinuousClock.now

    func balancer(_ groups: [[String]], options: BalancerOptions = BalancerOptions(), rule: HealthRule = .lab) -> BackendBalancer {
        BackendBalancer(groups: groups.enumerated().map { g, names in names.map { ProviderHealth(name: $0, group: g, rule: rule) } }, options: options)
    }

    func pick(_ b: inout BackendBalancer, at t: ContinuousClock.Instant, rng: inout SeededGenerator) -> (ProviderChoice, String) {
        let (choice, _) = b.choose(now: t, using: &rng)!
        return (choice, b[choice.provider].name)
    }

    static func rateLimited(_ headers: [(String, String)], now: Date = Date(timeIntervalSince1970: 1_800_000_000)) -> AttemptOutcome {
        .response(status: 429, resetHint: RateLimitHint.resetDelay(headers: headers, now: now), quotaExhausted: false)
    }

    @Test("group 1 serves while it has a provider in rotation; a low score never spills down")
    func groupOrder() {
        var b = balancer([["a"], ["b"]])
        var rng = SeededGenerator(seed: 1)
        for i in 0..<20 {
            let (choice, name) = pick(&b, at: t0, rng: &rng)
            #expect(name == "a")
            // Failures without a hint lower health but do not evict.
            _ = b.record(.response(status: i % 2 == 0 ? 500 : 429, resetHint: nil, quotaExhausted: false), for: choice, latency: .milliseconds(5), now: t0)
        }
        #expect(b[ProviderIndex(group: 0, index: 0)].health! < 0.01)
        #expect(!b[ProviderIndex(group: 0, index: 0)].isOut)
    }

    @Test("the seed lab: a 429 with retry-after 60 evicts for exactly 60 s, then group 1 is tried again")
    func seedLabEviction() {
        var b = balancer([["http-429-provider"], ["openai-provider"]], options: BalancerOptions(halfOpen: false))
        var rng = SeededGenerator(seed: 2)
        let (first, name1) = pick(&b, at: t0, rng: &rng)
        #expect(name1 == "http-429-provider")
        let events = b.record(Self.rateLimited([("retry-after", "60")]), for: first, latency: .milliseconds(2), now: t0)
        #expect(events.map(\.kind) == [.evicted(duration: .seconds(60), reason: .rate, times: 1)])
        #expect(b.activeGroup() == 1)
        #expect(pick(&b, at: t0 + .milliseconds(1), rng: &rng).1 == "openai-provider")
        #expect(pick(&b, at: t0 + .seconds(59.999), rng: &rng).1 == "openai-provider")
        #expect(pick(&b, at: t0 + .seconds(60), rng: &rng).1 == "http-429-provider")
    }

    @Test("eviction length from each reset-hint form", arguments: [
        ([("Retry-After", "60")], 60.0),
        ([("retry-after", "Fri, 15 Jan 2027 08:00:30 GMT")], 30.0),
        ([("retry-after-ms", "1500")], 1.5),
        ([("x-ratelimit-reset", "20")], 20.0),
        ([("x-ratelimit-reset", "1800000000")], 0.0),
        ([("x-ratelimit-reset", "1800000045")], 45.0),
        ([("x-ratelimit-reset-requests", "6m0s"), ("x-ratelimit-reset-tokens", "7m")], 360.0),
        ([("x-ratelimit-reset-requests", "2s"), ("x-ratelimit-reset-tokens", "1.5s")], 1.5),
        ([("x-ratelimit-reset-tokens", "12")], 12.0),
        ([("retry-after", "5"), ("retry-after-ms", "100")], 5.0),
    ])
    func hintForms(headers: [(String, String)], seconds: Double) {
        let now = Date(timeIntervalSince1970: 1_800_000_000)  // 2027-01-15T08:00:00Z
        var b = balancer([["a"], ["b"]])
        var rng = SeededGenerator(seed: 3)
        let (choice, _) = pick(&b, at: t0, rng: &rng)
        let events = b.record(Self.rateLimited(headers, now: now), for: choice, latency: .zero, now: t0)
        guard case .evicted(let duration, _, _)? = events.first?.kind else {
            Issue.record("no eviction for \(headers)")
            return
        }
        #expect(abs(duration.seconds - seconds) < 0.001)
    }

    @Test("HTTP dates in all three RFC 9110 forms")
    func httpDates() {
        let expected = Date(timeIntervalSince1970: 784_111_777)
        #expect(RateLimitHint.parseHTTPDate("Sun, 06 Nov 1994 08:49:37 GMT") == expected)
        #expect(RateLimitHint.parseHTTPDate("Sunday, 06-Nov-94 08:49:37 GMT") == expected)
        #expect(RateLimitHint.parseHTTPDate("Sun Nov  6 08:49:37 1994") == expected)
        #expect(RateLimitHint.parseHTTPDate("soon") == nil)
    }

    @Test("a 429 with no hint, a 5xx and a failed connection do not evict in lab mode")
    func noHintNoEviction() {
        var b = balancer([["a"], ["b"]])
        var rng = SeededGenerator(seed: 4)
        for outcome in [AttemptOutcome.response(status: 429, resetHint: nil, quotaExhausted: false), .response(status: 503, resetHint: nil, quotaExhausted: false), .connectFailed, .timedOut] {
            let (choice, name) = pick(&b, at: t0, rng: &rng)
            #expect(name == "a")
            #expect(b.record(outcome, for: choice, latency: .zero, now: t0).isEmpty)
        }
        #expect(b.activeGroup() == 0)
    }

    @Test("every provider evicted: fail open to group 1, never nothing")
    func failOpen() {
        var b = balancer([["a1", "a2"], ["b"]])
        var rng = SeededGenerator(seed: 5)
        var evicted = Set<String>()
        while evicted.count < 3 {
            let (choice, name) = pick(&b, at: t0, rng: &rng)
            _ = b.record(Self.rateLimited([("retry-after", "30")]), for: choice, latency: .zero, now: t0)
            evicted.insert(name)
        }
        #expect(b.activeGroup() == nil)
        for _ in 0..<10 {
            let (choice, name) = pick(&b, at: t0 + .seconds(1), rng: &rng)
            #expect(choice.failOpen)
            #expect(name.hasPrefix("a"))
            b.cancel(choice)
        }
        var empty = BackendBalancer(groups: [[]])
        #expect(empty.choose(now: t0, using: &rng) == nil)
    }

    @Test("failures while evicted (fail-open) do not extend the eviction")
    func noExtension() {
        var b = balancer([["a"]], options: BalancerOptions(halfOpen: false))
        var rng = SeededGenerator(seed: 6)
        let (c1, _) = pick(&b, at: t0, rng: &rng)
        _ = b.record(Self.rateLimited([("retry-after", "10")]), for: c1, latency: .zero, now: t0)
        let (c2, _) = pick(&b, at: t0 + .seconds(5), rng: &rng)
        #expect(c2.failOpen)
        #expect(b.record(Self.rateLimited([("retry-after", "60")]), for: c2, latency: .zero, now: t0 + .seconds(5)).isEmpty)
        #expect(!pick(&b, at: t0 + .seconds(10), rng: &rng).0.failOpen)
    }

    @Test("P2C: of two random draws the higher score wins; seeded, so repeatable")
    func powerOfTwo() {
        var b = balancer([["fast", "slow", "sick"]])
        var rng = SeededGenerator(seed: 7)
        // Teach it: fast 10 ms, slow 900 ms, sick fails.
        for _ in 0..<30 {
            let (choice, name) = pick(&b, at: t0, rng: &rng)
            switch name {
            case "fast": _ = b.record(.response(status: 200, resetHint: nil, quotaExhausted: false), for: choice, latency: .milliseconds(10), now: t0)
            case "slow": _ = b.record(.response(status: 200, resetHint: nil, quotaExhausted: false), for: choice, latency: .milliseconds(900), now: t0)
            default: _ = b.record(.response(status: 500, resetHint: nil, quotaExhausted: false), for: choice, latency: .zero, now: t0)
            }
        }
        var counts: [String: Int] = [:]
        var copy = b
        for _ in 0..<3000 {
            let (choice, name) = pick(&b, at: t0, rng: &rng)
            counts[name, default: 0] += 1
            b.cancel(choice)
        }
        // fast wins whenever drawn: P(fast in 2 draws) = 1 - (2/3)^2 = 5/9.
        let fastShare = Double(counts["fast"]!) / 3000
        #expect(abs(fastShare - 5.0 / 9.0) < 0.04, "\(counts)")
        #expect(counts["sick", default: 0] < counts["slow", default: 0])
        // The same seed picks the same sequence.
        var again = b
        var r1 = SeededGenerator(seed: 42)
        var r2 = SeededGenerator(seed: 42)
        var first: [ProviderIndex] = []
        var second: [ProviderIndex] = []
        for _ in 0..<50 {
            let x = copy.choose(now: t0, using: &r1)!.0
            let y = again.choose(now: t0, using: &r2)!.0
            first.append(x.provider)
            second.append(y.provider)
            copy.cancel(x)
            again.cancel(y)
        }
        #expect(first == second)
        #expect(Set(first).count > 1)
    }

    @Test("score = health / (1 + latency * (1 + 0.1 * inFlight)), EWMA alpha 0.3 with the first sample as is")
    func score() {
        var p = ProviderHealth(name: "p", group: 0, rule: .lab)
        #expect(p.score == 1)
        p.health = BackendBalancer.ewma(nil, 1)
        p.health = BackendBalancer.ewma(p.health, 0)
        #expect(abs(p.health! - 0.7) < 1e-12)
        p.latency = 0.5
        p.inFlight = 10
        #expect(abs(p.score - 0.7 / (1 + 0.5 * 2)) < 1e-12)
    }

    @Test("half-open: one probe when the eviction ends; others stay on group 2; a failed probe re-evicts")
    func halfOpen() {
        var b = balancer([["a"], ["b"]])
        var rng = SeededGenerator(seed: 8)
        let (c1, _) = pick(&b, at: t0, rng: &rng)
        _ = b.record(Self.rateLimited([("retry-after", "60")]), for: c1, latency: .zero, now: t0)
        let later = t0 + .seconds(61)
        let (probe, events) = b.choose(now: later, using: &rng)!
        #expect(probe.isProbe)
        #expect(b[probe.provider].name == "a")
        #expect(events.map(\.kind) == [.probeSent])
        // While the probe is out, others go to group 2.
        #expect(pick(&b, at: later, rng: &rng).1 == "b")
        let failed = b.record(Self.rateLimited([("retry-after", "60")]), for: probe, latency: .zero, now: later)
        #expect(failed.map(\.kind) == [.probeFailed, .evicted(duration: .seconds(60), reason: .rate, times: 2)])
        let (probe2, _) = b.choose(now: later + .seconds(60), using: &rng)!
        #expect(probe2.isProbe)
        let ok = b.record(.response(status: 200, resetHint: nil, quotaExhausted: false), for: probe2, latency: .milliseconds(3), now: later + .seconds(60))
        #expect(ok.map(\.kind) == [.returned])
        #expect(pick(&b, at: later + .seconds(60), rng: &rng).1 == "a")
    }

    @Test("an eviction applies before the next choice, even with requests in flight")
    func evictionBeforeNextChoice() {
        var b = balancer([["a"], ["b"]])
        var rng = SeededGenerator(seed: 9)
        let inFlight = (0..<8).map { _ in pick(&b, at: t0, rng: &rng).0 }
        #expect(b[ProviderIndex(group: 0, index: 0)].inFlight == 8)
        _ = b.record(Self.rateLimited([("retry-after", "60")]), for: inFlight[0], latency: .zero, now: t0)
        for _ in 0..<20 { #expect(pick(&b, at: t0, rng: &rng).1 == "b") }
        // Later answers of the requests already in flight do not extend it.
        for c in inFlight.dropFirst() {
            #expect(b.record(Self.rateLimited([("retry-after", "600")]), for: c, latency: .zero, now: t0).isEmpty)
        }
        #expect(b[ProviderIndex(group: 0, index: 0)].inFlight == 0)
    }

    @Test("a 429 with a hint over 10 minutes is quota, not rate; the switch turns that off")
    func quota() {
        for (classify, expected) in [(true, EvictionReason.quota), (false, .rate)] {
            var b = balancer([["a"]], options: BalancerOptions(classifyQuota: classify))
            var rng = SeededGenerator(seed: 10)
            let (c, _) = pick(&b, at: t0, rng: &rng)
            let events = b.record(Self.rateLimited([("retry-after", "3600")]), for: c, latency: .zero, now: t0)
            #expect(events.first?.kind == .evicted(duration: .seconds(3600), reason: expected, times: 1))
        }
    }
}

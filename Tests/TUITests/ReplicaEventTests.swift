import Foundation
import Testing
@testable import Gateway
@testable import TUI
import Watch

/// Provider state reaches the model only as `ReplicaSnapshot` events, whatever the source,
/// with one meaning of evicted, probing and active.
@Suite struct ReplicaEventTests {
    static func snapshot(_ replica: String, at: Double, _ groups: [[ProviderView]], reachability: Reachability = .reachable) -> ReplicaSnapshot {
        ReplicaSnapshot(replica: replica, at: at, reachability: reachability, backends: [BackendView(name: "failover", groups: groups)])
    }

    static func view(_ name: String, _ state: ProviderState, until: Double? = nil, source: StateSource = .reported) -> ProviderView {
        ProviderView(report: ProviderReport(name: name, state: state, health: 1), until: until, evictedFor: until.map { _ in 60 }, source: source)
    }

    /// The in-process balancer, through Feed, gives the active group the balancer itself gives:
    /// a probe in flight counts as out, a probe not yet sent as in.
    @Test func labBalancerAndScreenAgreeOnTheActiveGroup() throws {
        let t0 = ContinuousClock.now
        let feed = Feed(start: t0)
        var options = BalancerOptions()
        options.halfOpen = true
        var b = BackendBalancer(groups: [[ProviderHealth(name: "p429", group: 0, rule: .lab)], [ProviderHealth(name: "openai", group: 1, rule: .lab)]], options: options)
        var rng = SystemRandomNumberGenerator()
        let plan = PlannedBackend(name: "failover", groups: [])
        // Evict p429 for 1 s with a 429 and its hint.
        let (first, _) = try #require(b.choose(now: t0, using: &rng))
        _ = b.record(.response(status: 429, resetHint: .seconds(1), quotaExhausted: false), for: first, latency: .milliseconds(1), now: t0)
        var m = LabModel(scenario: "s", gatewayURL: "u", plan: "p", rate: 1)
        m.apply(.replica(feed.replica(b, backend: plan, at: 0.5)))
        #expect(m.groups[0][0].stateWord == "evicted")
        #expect(m.activeGroup == b.activeGroup())
        #expect(m.activeGroup == 1)
        // The eviction runs out: the probe is due (probeReady): group 1 is active again, on both.
        _ = b.expireEvictions(now: t0 + .seconds(2))
        m.apply(.replica(feed.replica(b, backend: plan, at: 2)))
        #expect(m.groups[0][0].stateWord == "probing")
        #expect(m.activeGroup == b.activeGroup())
        #expect(m.activeGroup == 0)
        // The probe is sent (in flight): ordinary requests skip it; group 2 is active on both.
        let (probe, _) = try #require(b.choose(now: t0 + .seconds(2), using: &rng))
        #expect(probe.isProbe)
        m.apply(.replica(feed.replica(b, backend: plan, at: 2.1)))
        #expect(m.groups[0][0].probeSent)
        #expect(m.activeGroup == b.activeGroup())
        #expect(m.activeGroup == 1)
    }

    @Test func replicasSideBySideInTheGroupsPanel() {
        var m = LabModel(scenario: "watch", gatewayURL: "u", plan: "watching", rate: 0)
        m.apply(.replica(Self.snapshot("gw-a", at: 10, [[Self.view("http-429-provider", .evicted(remaining: 41), until: 51)], [Self.view("openai-provider", .healthy)]])))
        m.apply(.replica(Self.snapshot("gw-b", at: 10, [[Self.view("http-429-provider", .healthy)], [Self.view("openai-provider", .healthy)]])))
        #expect(m.replicaNames == ["gw-a", "gw-b"])
        #expect(m.groups.map { $0.map(\.name) } == [["http-429-provider"], ["openai-provider"]])
        #expect(m.groups[0][0].replicas.map(\.replica) == ["gw-a", "gw-b"])
        #expect(m.activeGroup(on: "gw-a") == 1)
        #expect(m.activeGroup(on: "gw-b") == 0)
        let text = Dashboard.render(m, width: 120, height: 40).text
        #expect(text.contains("http-429-provider"))
        #expect(text.contains("gw-a evicted 41s"), "\(text)")
        #expect(text.contains("gw-b healthy"))
        #expect(text.contains("replicas: gw-a, gw-b"))
        // The countdown runs locally between reports.
        m.apply(.tick(now: 20))
        #expect(Dashboard.render(m, width: 120, height: 40).text.contains("gw-a evicted 31s"))
        // gw-b stops answering: named in the title, its last state marked.
        m.apply(.replica(Self.snapshot("gw-b", at: 21, [[Self.view("http-429-provider", .healthy)], [Self.view("openai-provider", .healthy)]], reachability: .unreachable("couldn't connect to server"))))
        let down = Dashboard.render(m, width: 120, height: 40).text
        #expect(down.contains("gw-b UNREACHABLE"))
        #expect(down.contains("gw-b healthy (unreachable)"))
    }

    @Test func inferredStateIsShownAsInferred() {
        var m = LabModel(scenario: "watch", gatewayURL: "u", plan: "watching", rate: 0)
        m.apply(.replica(Self.snapshot("gw", at: 1, [[Self.view("10.0.0.7:8080", .evicted(remaining: 60), until: 61, source: .inferred)]])))
        #expect(m.groups[0][0].inferred)
        if case .evicted(_, let reason) = m.groups[0][0].state { #expect(reason == "inferred") } else { Issue.record("not evicted") }
        #expect(Dashboard.render(m, width: 120, height: 40).text.contains("(inferred)"))
    }

    @Test func watchOutputsBecomeDashboardEvents() {
        let req = Feed.events(.request(replica: "gw-a", at: 3, LoggedRequest(status: 429, endpoint: "10.0.0.7:8080", latency: 0.012)))
        guard case .request(let r)? = req.first else { Issue.record("no request"); return }
        #expect(r.status == 429 && r.provider == "10.0.0.7:8080" && r.replica == "gw-a")
        let change = ProviderChange(at: 4, replica: "gw-a", backend: "b", group: 0, provider: "p", state: .evicted(remaining: 41), remaining: 41,
                                    health: 0, source: .reported, stateChanged: true)
        guard case .note(let text, _)? = Feed.events(.provider(change)).first else { Issue.record("no note"); return }
        #expect(text == "gw-a: p (group 1) evicted, 41s left")
        var quiet = change
        quiet.stateChanged = false
        #expect(Feed.events(.provider(quiet)).isEmpty)
    }

    /// A source with provider states and no health events (watch on a real agentgateway)
    /// still gets the served-by chart's eviction band, opened and closed by the states.
    @Test func reportedStatesOpenAndCloseTheEvictionBand() {
        var m = LabModel(scenario: "s", gatewayURL: "u", plan: "watching", rate: 0)
        m.apply(.replica(Self.snapshot("gw", at: 10, [[Self.view("p429", .evicted(remaining: 55), until: 65)], [Self.view("openai", .healthy)]])))
        #expect(m.evictions.count == 1)
        #expect(m.evictions.first?.provider == "p429")
        // 65 s until the end of a 60 s eviction: it began at 5 s.
        #expect(m.evictions.first?.from == 5)
        #expect(m.evictions.first?.to == nil)
        m.apply(.replica(Self.snapshot("gw", at: 20, [[Self.view("p429", .evicted(remaining: 55), until: 65)], [Self.view("openai", .healthy)]])))
        #expect(m.evictions.count == 1, "one band, not one a poll")
        m.apply(.replica(Self.snapshot("gw", at: 70, [[Self.view("p429", .healthy)], [Self.view("openai", .healthy)]])))
        #expect(m.evictions.first?.to == 70)
    }
}

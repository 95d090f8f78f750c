import Testing
import Driver
import Wire
import Watch

@Suite struct WatchStateTests {
    static func dump(_ groups: [[ProviderReport]]) -> ConfigDump {
        ConfigDump(backends: [BackendReport(name: "failover", groups: groups)])
    }

    static func providers(_ outputs: [WatchOutput]) -> [ProviderChange] {
        outputs.compactMap { if case .provider(let c) = $0 { return c } else { return nil } }
    }

    @Test func changesPerReplicaAndTheCountdownByWholeSeconds() {
        var s = WatchState()
        let evicted = Self.dump([[ProviderReport(name: "p429", state: .evicted(remaining: 59.5))], [ProviderReport(name: "openai", state: .healthy)]])
        let healthy = Self.dump([[ProviderReport(name: "p429", state: .healthy)], [ProviderReport(name: "openai", state: .healthy)]])
        var a = Self.providers(s.apply(.dump(replica: "a", at: 1, evicted)))
        var b = Self.providers(s.apply(.dump(replica: "b", at: 1, healthy)))
        #expect(a.map { "\($0.replica) \($0.group + 1) \($0.provider) \($0.state.word)" } == ["a 1 p429 evicted", "a 2 openai healthy"])
        #expect(b.map { "\($0.replica) \($0.provider) \($0.state.word)" } == ["b p429 healthy", "b openai healthy"])
        #expect(a.first?.remaining == 59.5)
        #expect(a.allSatisfy { $0.stateChanged })
        // Half a second later the same eviction: same whole second (60 → 59.x rounds up to 60): no line.
        a = Self.providers(s.apply(.dump(replica: "a", at: 1.4, Self.dump([[ProviderReport(name: "p429", state: .evicted(remaining: 59.1))], [ProviderReport(name: "openai", state: .healthy)]]))))
        #expect(a.isEmpty)
        // A second later: a countdown line, not a state change.
        a = Self.providers(s.apply(.dump(replica: "a", at: 2, Self.dump([[ProviderReport(name: "p429", state: .evicted(remaining: 58.5))], [ProviderReport(name: "openai", state: .healthy)]]))))
        #expect(a.count == 1)
        #expect(a.first?.remaining == 58.5)
        #expect(a.first?.stateChanged == false)
        b = Self.providers(s.apply(.dump(replica: "b", at: 2, healthy)))
        #expect(b.isEmpty)
        // The local countdown: until is at + remaining.
        let view = s.snapshots["a"]?.backends.first?.groups[0][0]
        #expect(view?.until == 60.5)
        #expect(view?.remaining(at: 30.5) == 30)
        #expect(view?.evictedFor == 59.5)  // the same eviction keeps its first length
        #expect(s.snapshots["a"]?.backends.first?.activeGroup == 1)
        #expect(s.snapshots["b"]?.backends.first?.activeGroup == 0)
    }

    @Test func unreachableOnceThenRecovers() {
        var s = WatchState()
        _ = s.apply(.dump(replica: "a", at: 0, Self.dump([[ProviderReport(name: "p", state: .healthy)]])))
        let first = s.apply(.unreachable(replica: "a", url: "http://x", reason: "couldn't connect to server", at: 1))
        #expect(first.contains { if case .reachability(_, .unreachable, _, _) = $0 { return true }; return false })
        #expect(s.apply(.unreachable(replica: "a", url: "http://x", reason: "couldn't connect to server", at: 1.5)).isEmpty)
        #expect(s.snapshots["a"]?.reachability == .unreachable("couldn't connect to server"))
        let back = s.apply(.dump(replica: "a", at: 2, Self.dump([[ProviderReport(name: "p", state: .healthy)]])))
        #expect(back.contains { if case .reachability(_, .reachable, _, _) = $0 { return true }; return false })
        #expect(s.snapshots["a"]?.reachability == .reachable)
        #expect(s.counts["a"]?.unreachablePolls == 2)
        #expect(s.counts["a"]?.polls == 4)
    }

    @Test func aProblemIsReportedOncePerURLAndMessage() {
        var s = WatchState()
        let once = s.apply(.problem(replica: "a", url: "http://x:1", message: "no \"backends\" field", at: 0))
        #expect(once.count == 1)
        if case .note(let text, _) = once.first { #expect(text.contains("http://x:1/config_dump") && text.contains("backends")) }
        #expect(s.apply(.problem(replica: "a", url: "http://x:1", message: "no \"backends\" field", at: 1)).isEmpty)
        #expect(s.apply(.problem(replica: "a", url: "http://x:1", message: "not JSON", at: 2)).count == 1)
    }

    @Test func inferredFromA429UntilTheAssumedRetryAfterAndReportedWins() {
        var s = WatchState(assumeRetryAfter: 60)
        let r429 = LoggedRequest(status: 429, endpoint: "10.0.0.7:8080", route: "default/r")
        var out = Self.providers(s.apply(.request(replica: "gw", at: 5, r429)))
        #expect(out.count == 1)
        #expect(out.first?.state == .evicted(remaining: 60))
        #expect(out.first?.source == .inferred)
        #expect(out.first?.provider == "10.0.0.7:8080")
        // A second 429 does not extend it.
        #expect(Self.providers(s.apply(.request(replica: "gw", at: 6, r429))).isEmpty)
        #expect(Self.providers(s.tick(now: 64.9)).isEmpty)
        out = Self.providers(s.tick(now: 65))
        #expect(out.first?.state == .healthy && out.first?.source == .inferred)
        // Once a config dump is read for the replica, logs infer nothing.
        _ = s.apply(.dump(replica: "gw", at: 70, Self.dump([[ProviderReport(name: "p", state: .healthy)]])))
        #expect(Self.providers(s.apply(.request(replica: "gw", at: 71, r429))).isEmpty)
        #expect(s.snapshots["gw"]?.backends.first?.groups[0].map(\.source) == [.reported])
        #expect(s.counts["gw"]?.requests == 3)
    }

    @Test func ourAttemptsInferEachTry() {
        var s = WatchState(assumeRetryAfter: 30)
        var r = LoggedRequest(status: 200, provider: "openai", group: 1)
        r.attempts = [FailoverAttempts.Entry(provider: "p429", status: 429), FailoverAttempts.Entry(provider: "openai", status: 200)]
        let out = Self.providers(s.apply(.request(replica: "gw", at: 1, r)))
        #expect(out.map { "\($0.provider) \($0.state.word) g\($0.group + 1)" } == ["p429 evicted g1", "openai healthy g2"])
    }

    @Test func skippedLinesAreCountedPerReplica() {
        var s = WatchState()
        for _ in 0..<7 { _ = s.apply(.skipped(replica: "a", at: 0, .notJSON)) }
        _ = s.apply(.skipped(replica: "b", at: 0, .notRequest))
        #expect(s.totalSkipped == 8)
        let summary = WatchLines.summary(s)
        #expect(summary.contains(#""skipped_lines":8"#))
        #expect(summary.contains(#""a":{"requests":0,"skipped_lines":7"#))
    }

    @Test func jsonLinesHaveTheIssuesFields() throws {
        let c = ProviderChange(at: 1.23456, replica: "gw-a", backend: "failover", group: 0, provider: "p", state: .evicted(remaining: 41.2),
                               remaining: 41.2, health: 0.5, source: .reported, stateChanged: true)
        let line = try #require(WatchLines.json(.provider(c)))
        let json = try JSONValue.parse(line)
        #expect(json["type"]?.string == "provider")
        #expect(json["at"]?.number == 1.235)
        #expect(json["replica"]?.string == "gw-a")
        #expect(json["group"]?.number == 1)
        #expect(json["state"]?.string == "evicted")
        #expect(json["remaining_s"]?.number == 41.2)
        #expect(json["health"]?.number == 0.5)
        let req = try JSONValue.parse(try #require(WatchLines.json(.request(replica: "gw-b", at: 2, LoggedRequest(status: 429, endpoint: "e", provider: "p")))))
        #expect(req["type"]?.string == "request" && req["status"]?.number == 429 && req["endpoint"]?.string == "e" && req["provider"]?.string == "p")
        #expect(WatchLines.headless(.provider(c))?.contains("gw-a  failover group 1  p evicted 42s left") == true)
    }
}

@Suite struct WatchSourcesTests {
    @Test func namesAndDefaults() throws {
        let s = try WatchSources.parse(admin: ["gw-a=http://10.0.0.5:15000", "http://10.0.0.6:15000/config_dump"],
                                       accessLog: ["gw-a=a.log", "/var/log/b.log"], metrics: ["http://10.0.0.5:15020/metrics"])
        #expect(s.admins.map(\.replica) == ["gw-a", "10.0.0.6:15000"])
        #expect(s.admins[1].location == "http://10.0.0.6:15000")
        #expect(s.logs.map(\.replica) == ["gw-a", "b.log"])
        #expect(s.metrics.map(\.replica) == ["10.0.0.5:15020"])
        let one = try WatchSources.parse(admin: ["http://127.0.0.1:15000/"], accessLog: ["-"], metrics: [])
        #expect(one.logs.first?.replica == "127.0.0.1:15000")
        #expect(one.logs.first?.named == false)
    }

    @Test(arguments: [
        (["ftp://x"], [String](), "http:// or https://"),
        (["a b=http://x"], [], "NAME must be"),
        (["=http://x"], [], "NAME must be"),
        ([], ["-", "-"], "standard input can be read once"),
        ([], [], "nothing to watch"),
        (["http://"], [], "no host"),
    ])
    func badFlagsSayWhich(_ admin: [String], _ logs: [String], _ message: String) {
        do {
            _ = try WatchSources.parse(admin: admin, accessLog: logs, metrics: [])
            Issue.record("accepted \(admin) \(logs)")
        } catch {
            #expect(error.description.contains(message), "\(error.description)")
        }
    }
}

@Suite struct WatchStateRulesTests {
    @Test func evictedAgainBetweenPollsIsAStateChange() {
        var s = WatchState()
        func dump(_ remaining: Double, times: Int) -> ConfigDump {
            ConfigDump(backends: [BackendReport(name: "b", groups: [[ProviderReport(name: "p", state: .evicted(remaining: remaining), timesEjected: times)]])])
        }
        _ = s.apply(.dump(replica: "a", at: 0, dump(0.2, times: 1)))
        let again = WatchStateTests.providers(s.apply(.dump(replica: "a", at: 0.5, dump(59.9, times: 2))))
        #expect(again.count == 1)
        #expect(again.first?.stateChanged == true)
        let tick = WatchStateTests.providers(s.apply(.dump(replica: "a", at: 1.5, dump(58.9, times: 2))))
        #expect(tick.first?.stateChanged == false)
    }

    @Test func noInferenceForAReplicaWithAnAdminSourceOrFromOldLines() {
        var s = WatchState(assumeRetryAfter: 60)
        s.reportingReplicas = ["gw-a"]
        s.wallStart = 1_800_000_000
        let r429 = LoggedRequest(status: 429, endpoint: "e")
        #expect(WatchStateTests.providers(s.apply(.request(replica: "gw-a", at: 1, r429))).isEmpty)
        var old = r429
        old.time = "2027-01-15T07:58:59Z"  // 1_800_000_000 is 2027-01-15T08:00:00Z: 61 s before
        #expect(WatchStateTests.providers(s.apply(.request(replica: "gw-b", at: 0, old))).isEmpty)
        var recent = r429
        recent.time = "2027-01-15T07:59:30Z"
        #expect(WatchStateTests.providers(s.apply(.request(replica: "gw-b", at: 0, recent))).first?.state == .evicted(remaining: 60))
        #expect(s.counts["gw-a"]?.requests == 1 && s.counts["gw-b"]?.requests == 2)
    }
}

@Suite struct WatchMetricsTests {
    static func counts(_ ok: Double, _ limited: Double) -> RequestCounts {
        RequestCounts(counts: [.init(backend: "failover", status: "200"): ok, .init(backend: "failover", status: "429"): limited])
    }

    @Test func ratesByBackendAndStatusOverTheWindow() {
        var s = WatchState()
        #expect(s.apply(.metrics(replica: "a", url: "u", at: 0, Self.counts(100, 10))).isEmpty)
        #expect(s.apply(.metrics(replica: "a", url: "u", at: 1, Self.counts(110, 10))).isEmpty)  // under the 2 s window
        let out = s.apply(.metrics(replica: "a", url: "u", at: 2, Self.counts(130, 11)))
        guard case .metrics(_, _, let rates, let total)? = out.first else { Issue.record("no rates: \(out)"); return }
        #expect(rates[.init(backend: "failover", status: "200")] == 15)
        #expect(rates[.init(backend: "failover", status: "429")] == 0.5)
        #expect(total == 31)
        #expect(s.snapshots["a"]?.requestRates == rates)
        #expect(WatchLines.rateText(rates) == "failover 200 15/s 429 0.5/s")
        // A counter reset (the replica restarted) is not a negative rate.
        guard case .metrics(_, _, let after, _)? = s.apply(.metrics(replica: "a", url: "u", at: 4, Self.counts(4, 0))).first else { Issue.record("no rates"); return }
        #expect(after.values.allSatisfy { $0 == 0 })
    }

    @Test func aDisagreementWithTheAccessLogIsSaidOnceWhenItLasts() {
        var s = WatchState()
        _ = s.apply(.metrics(replica: "a", url: "http://x/metrics", at: 0, Self.counts(0, 0)))
        for i in 0..<3 { _ = s.apply(.request(replica: "a", at: Double(i), LoggedRequest(status: 200))) }
        func notes(_ o: [WatchOutput]) -> [String] { o.compactMap { if case .note(let t, _) = $0 { return t } else { return nil } } }
        // 3 logged, 3 counted: agree.
        #expect(notes(s.apply(.metrics(replica: "a", url: "http://x/metrics", at: 3, Self.counts(3, 0)))).isEmpty)
        // 50 counted, 3 logged: once is not enough (a log line can lag a scrape), twice is.
        #expect(notes(s.apply(.metrics(replica: "a", url: "http://x/metrics", at: 4, Self.counts(50, 0)))).isEmpty)
        let said = notes(s.apply(.metrics(replica: "a", url: "http://x/metrics", at: 5, Self.counts(50, 0))))
        #expect(said == ["a: http://x/metrics counts 50 requests since the first scrape, the access log 3: they disagree"])
        #expect(notes(s.apply(.metrics(replica: "a", url: "http://x/metrics", at: 6, Self.counts(60, 0)))).isEmpty)
    }
}

import Testing
import Watch

/// Fixtures written by hand after agentgateway's serializer: `backends[].backend.ai.target.providers`
/// is the `EndpointSet` (one `EndpointGroup` per priority, `active`/`rejected` maps of
/// `{endpoint, info}`); `EndpointInfo` is camelCase now, snake_case in older builds;
/// `evictedUntil` is the time left as a Go duration string, or null.
@Suite struct ConfigDumpTests {
    static let camel = """
    {"config": {}, "services": [],
     "backends": [
      {"backend": {"host": {"name": "httpbin", "namespace": "default", "target": "httpbingo.org:80"}}},
      {"backend": {"ai": {"name": "failover", "namespace": "agentgateway-system",
        "target": {"providers": [
          {"active": {},
           "rejected": {"http-429-provider": {"endpoint": {"name": "http-429-provider", "provider": {"openAI": {}}},
                          "capacity": 1,
                          "info": {"health": 0.0, "requestLatency": 0.0, "pendingRequests": 0, "totalRequests": 3,
                                   "consecutiveFailures": 1, "timesEjected": 1, "evictedUntil": "59.876s"}}}},
          {"active": {"openai-provider": {"endpoint": {"name": "openai-provider"},
                        "info": {"health": 0.875, "requestLatency": 1.466366426, "pendingRequests": 2, "totalRequests": 12,
                                 "consecutiveFailures": 0, "timesEjected": 0, "evictedUntil": null}},
                      "anthropic-provider": {"endpoint": {"name": "anthropic-provider"},
                        "info": {"health": 1, "requestLatency": 0.25, "pendingRequests": 0, "totalRequests": 1,
                                 "consecutiveFailures": 0, "timesEjected": 0, "evictedUntil": null}}},
           "rejected": {}},
          {"active": {"backup": {"endpoint": {"name": "backup"}, "info": {"health": 1}}}}
        ]}}}}
     ]}
    """

    @Test func camelCaseDumpReadsGroupsInOrderWithState() throws {
        let dump = try ConfigDumpParser.parse(bytes: Array(Self.camel.utf8)).get()
        #expect(dump.otherBackends == 1)  // the host backend
        #expect(dump.backends.count == 1)
        let b = try #require(dump.backends.first)
        #expect(b.name == "failover")
        #expect(b.namespace == "agentgateway-system")
        #expect(b.groups.map { $0.map(\.name) } == [["http-429-provider"], ["anthropic-provider", "openai-provider"], ["backup"]])
        let evicted = b.groups[0][0]
        #expect(evicted.state == .evicted(remaining: 59.876))
        #expect(evicted.totalRequests == 3 && evicted.consecutiveFailures == 1 && evicted.timesEjected == 1)
        #expect(evicted.health == 0)
        let openai = b.groups[1][1]
        #expect(openai.state == .healthy)
        #expect(openai.health == 0.875)
        #expect(openai.latency == 1.466366426)
        #expect(openai.inFlight == 2 && openai.totalRequests == 12)
        // Group 1's only provider is rejected: group 2 is active.
        #expect(b.activeGroup == 1)
        // Fields the dump leaves out are nil, not zero.
        #expect(b.groups[2][0].totalRequests == nil && b.groups[2][0].latency == nil)
    }

    @Test func snakeCaseFromOlderBuildsIsRead() throws {
        let text = """
        {"backends": [{"backend": {"ai": {"name": "old", "target": {"providers": [
          {"active": {"p": {"endpoint": {"name": "p"}, "info": {"health": 0.5, "request_latency": 0.302, "pending_requests": 1,
                     "total_requests": 5, "consecutive_failures": 2, "times_ejected": 3}}},
           "rejected": {"q": {"endpoint": {}, "info": {"health": 0, "request_latency": 0.5, "total_requests": 3, "evicted_until": "1m0s"}}}}
        ]}}}}]}
        """
        let b = try #require(try ConfigDumpParser.parse(bytes: Array(text.utf8)).get().backends.first)
        let p = b.groups[0][0], q = b.groups[0][1]
        #expect(p.latency == 0.302 && p.inFlight == 1 && p.totalRequests == 5 && p.consecutiveFailures == 2 && p.timesEjected == 3)
        #expect(q.state == .evicted(remaining: 60))
        #expect(q.totalRequests == 3)
        #expect(b.activeGroup == 0)
    }

    @Test func goDurationsOfEvictedUntil() {
        #expect(ConfigDumpParser.remainingSeconds("59.876s") == 59.876)
        #expect(ConfigDumpParser.remainingSeconds("1m0s") == 60)
        #expect(ConfigDumpParser.remainingSeconds("1h2m3.5s") == 3723.5)
        #expect(ConfigDumpParser.remainingSeconds("250ms") == 0.25)
        #expect(ConfigDumpParser.remainingSeconds("12.345µs").map { abs($0 - 0.000012345) < 1e-12 } == true)
        #expect(ConfigDumpParser.remainingSeconds("0s") == 0)
        for bad in ["", "soon", "-1s", "1x", "99999999999999h", String(repeating: "1", count: 100) + "s"] {
            #expect(ConfigDumpParser.remainingSeconds(bad) == nil, "\(bad)")
        }
    }

    @Test func rejectedWithoutOrWithBadEvictedUntilIsEvictedWithUnknownCountdown() throws {
        let text = """
        {"backends": [{"backend": {"ai": {"name": "b", "target": {"providers": [
          {"rejected": {"a": {"info": {"evictedUntil": null}}, "b": {"info": {"evictedUntil": "forever"}}, "c": {"info": {}}}}]}}}}]}
        """
        let b = try #require(try ConfigDumpParser.parse(bytes: Array(text.utf8)).get().backends.first)
        #expect(b.groups[0].map(\.state) == [.evicted(remaining: nil), .evicted(remaining: nil), .evicted(remaining: nil)])
        #expect(b.activeGroup == nil)
    }

    @Test func ourProbingExtensionIsRead() throws {
        let text = """
        {"backends": [{"backend": {"ai": {"name": "b", "target": {"providers": [
          {"rejected": {"due": {"info": {"state": "probing", "evictedUntil": "0s"}},
                        "sent": {"info": {"state": "probing", "probeSent": true, "evictedUntil": "0s"}}}},
          {"active": {"z": {"info": {}}}}]}}}}]}
        """
        let b = try #require(try ConfigDumpParser.parse(bytes: Array(text.utf8)).get().backends.first)
        #expect(b.groups[0].map(\.state) == [.probing(probeSent: false), .probing(probeSent: true)])
        // A probe not yet sent takes the next request: group 1 is still active (the balancer's rule).
        #expect(b.activeGroup == 0)
        let sentOnly = BackendReport(name: "x", groups: [[b.groups[0][1]], b.groups[1]])
        #expect(sentOnly.activeGroup == 1)
    }

    @Test func hostileNumbersAreCheckedNotTrapped() throws {
        let text = """
        {"backends": [{"backend": {"ai": {"name": "b", "target": {"providers": [
          {"active": {"p": {"info": {"health": 7.5, "requestLatency": -3, "pendingRequests": 1e300, "totalRequests": -4,
                                     "consecutiveFailures": "many", "timesEjected": 1.5e19}}}}]}}}}]}
        """
        let p = try #require(try ConfigDumpParser.parse(bytes: Array(text.utf8)).get().backends.first?.groups[0][0])
        #expect(p.health == 1)  // clamped into 0...1
        #expect(p.latency == nil)  // negative: no latency
        #expect(p.inFlight == Int.max)  // clamped
        #expect(p.totalRequests == nil)
        #expect(p.consecutiveFailures == nil)
        #expect(p.timesEjected == Int.max)
    }

    @Test(arguments: [
        ("not json at all", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ("{\"config\": {}}", "no \"backends\" field"),
        ("{\"backends\": 3}", "\"backends\" is not an array"),
    ])
    func badBodiesSayWhatWasWrong(_ body: String, _ expected: String) {
        switch ConfigDumpParser.parse(bytes: Array(body.utf8)) {
        case .success: Issue.record("accepted \(body)")
        case .failure(let p): #expect(p.message.contains(expected), "\(p.message)")
        }
    }

    @Test func aNonAIBackendOnlyIsEmptyNotAnError() throws {
        let text = #"{"backends": [{"backend": {"host": {"name": "h", "target": "x:80"}}}, {"backend": {"ai": {"name": "a", "target": "not providers"}}}]}"#
        let dump = try ConfigDumpParser.parse(bytes: Array(text.utf8)).get()
        #expect(dump.backends.isEmpty)
        #expect(dump.otherBackends == 2)
    }

    @Test func deepNestingAndHugeBodiesAreRefused() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        if case .success = ConfigDumpParser.parse(bytes: Array(deep.utf8)) { Issue.record("accepted 100,000 nested arrays") }
        let huge = [UInt8](repeating: UInt8(ascii: " "), count: ConfigDumpParser.maxBytes + 1)
        guard case .failure(let p) = ConfigDumpParser.parse(bytes: huge) else { Issue.record("accepted an oversized body"); return }
        #expect(p.message.contains("MiB"))
    }
}

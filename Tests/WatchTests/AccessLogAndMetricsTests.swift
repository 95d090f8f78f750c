import Testing
import Wire
import Watch

@Suite struct AccessLogLineTests {
    /// agentgateway's field names (flat dotted keys), as its JSON logger writes a request.
    static let agentgateway = #"{"level":"info","time":"2026-12-02T07:31:08.123456Z","scope":"request","gateway":"agentgateway-system/agentgateway","listener":"http","route":"default/http-429","endpoint":"10.0.0.7:8080","src.addr":"10.0.0.1:53312","http.method":"POST","http.host":"gw","http.path":"/http-429","http.version":"HTTP/1.1","http.status":429,"gen_ai.operation.name":"chat","gen_ai.provider.name":"openai","gen_ai.request.model":"gpt-4o-mini","retry.attempt":1,"duration":"12ms"}"#

    @Test func agentgatewayRequestLine() throws {
        guard case .request(let r) = AccessLogParser.parse(Self.agentgateway) else { Issue.record("not a request"); return }
        #expect(r.status == 429)
        #expect(r.endpoint == "10.0.0.7:8080")
        #expect(r.route == "default/http-429")
        #expect(r.latency == 0.012)
        #expect(r.model == "gpt-4o-mini")
        #expect(r.provider == nil && r.answeredBy == "10.0.0.7:8080")
        #expect(r.time == "2026-12-02T07:31:08.123456Z")
        #expect(r.replica == nil)
    }

    @Test func ourLineWithProviderGroupAttemptsAndTokens() throws {
        let line = #"{"time":"2026-12-02T07:31:08.1Z","level":"info","scope":"request","route":"default/http-429","endpoint":"127.0.0.1:9001","http.method":"POST","http.path":"/http-429","http.status":200,"duration":"1372ms","gen_ai.response.model":"gpt-4o-mini-2024","gen_ai.usage.input_tokens":12,"gen_ai.usage.output_tokens":30,"provider":"openai-provider","group":2,"attempts":"http-429-provider=429,openai-provider=200"}"#
        guard case .request(let r) = AccessLogParser.parse(line) else { Issue.record("not a request"); return }
        #expect(r.provider == "openai-provider")
        #expect(r.group == 1)
        #expect(r.latency == 1.372)
        #expect(r.tokens == 42)
        #expect(r.model == "gpt-4o-mini-2024")
        #expect(r.attempts == [FailoverAttempts.Entry(provider: "http-429-provider", status: 429), FailoverAttempts.Entry(provider: "openai-provider", status: 200)])
    }

    @Test func kubectlPrefixGivesTheReplica() {
        guard case .request(let r) = AccessLogParser.parse("[pod/agentgateway-7d9f8-x2k/agentgateway] " + Self.agentgateway) else { Issue.record("not read"); return }
        #expect(r.replica == "agentgateway-7d9f8-x2k")
        guard case .request(let r2) = AccessLogParser.parse("[agw-1/main] " + Self.agentgateway + "\r") else { Issue.record("not read"); return }
        #expect(r2.replica == "agw-1")
    }

    @Test(arguments: [
        ("", AccessLogItem.SkipReason.notJSON),
        ("2026-12-02T07:31:08Z INFO agentgateway starting", .notJSON),
        ("{not json", .notJSON),
        ("[pod/x/y] no json here", .notJSON),
        ("[unclosed prefix {\"scope\":\"request\"}", .notJSON),
        (#"{"level":"info","scope":"xds","message":"connected"}"#, .notRequest),
        (#"{"level":"info","message":"no scope"}"#, .notRequest),
        (#"{"scope":7}"#, .notRequest),
        ("[1,2,3]", .notJSON),
    ])
    func otherLinesAreSkippedWithAReason(_ line: String, _ reason: AccessLogItem.SkipReason) {
        #expect(AccessLogParser.parse(line) == .skipped(reason))
    }

    @Test func hostileFieldsAreCheckedNotTrapped() {
        let line = #"{"scope":"request","http.status":1e300,"group":-5,"duration":"99999999999999h","gen_ai.usage.input_tokens":1e30,"endpoint":"a\u0000\u001b[31mb","attempts":7}"#
        guard case .request(let r) = AccessLogParser.parse(line) else { Issue.record("not read"); return }
        #expect(r.status == nil)
        #expect(r.group == nil)
        #expect(r.latency == nil)
        #expect(r.tokens == nil)
        #expect(r.endpoint == "a[31mb")  // control characters dropped
        #expect(r.attempts.isEmpty)
        let long = "{\"scope\":\"request\",\"x\":\"" + String(repeating: "a", count: AccessLogParser.maxLineBytes) + "\"}"
        #expect(AccessLogParser.parse(long) == .skipped(.tooLong))
    }

    @Test func nestedFieldsAreReadToo() {
        guard case .request(let r) = AccessLogParser.parse(#"{"scope":"request","http":{"status":503},"endpoint":"e"}"#) else { Issue.record("not read"); return }
        #expect(r.status == 503)
    }
}

@Suite struct LineSplitterTests {
    @Test func linesAcrossReadsAndTooLongLines() {
        var s = LineSplitter(maxLine: 8)
        var lines: [String] = []
        func feed(_ text: String) {
            Array(text.utf8).withUnsafeBytes { s.feed($0) { lines.append(String(decoding: $0, as: UTF8.self)) } }
        }
        feed("ab\ncd")
        feed("ef\n\n0123456789abcdef")
        feed("ghij\nok\nlast")
        #expect(lines == ["ab", "cdef", "", "012345678", "ok"])
        s.flush { lines.append(String(decoding: $0, as: UTF8.self)) }
        #expect(lines.last == "last")
        // Cut at maxLine + 1: the reader sees it is too long.
        #expect(lines[3].utf8.count == 9)
    }
}

@Suite struct PrometheusTextTests {
    static let text = """
    # HELP agentgateway_requests The total number of HTTP requests sent
    # TYPE agentgateway_requests counter
    agentgateway_requests_total{backend="failover",route="default/http-429",status="200",reason="Upstream"} 12
    agentgateway_requests_total{backend="failover",route="default/other",status="200",reason="Upstream"} 3
    agentgateway_requests_total{backend="failover",route="default/http-429",status="429",reason="Upstream"} 2 1733125868000
    agentgateway_requests_total{backend="we\\"ird,name",status="503"} 1
    agentgateway_requests_total_created{backend="failover",status="200"} 1733125868
    agentgateway_requests_total{backend="failover",status="500"} NaN
    agentgateway_requests_total{backend="failover",status="500"} -3
    agentgateway_requests_total{backend="failover",status="500" 4
    agentgateway_requests_total 7
    other_metric{backend="failover",status="200"} 99
    """

    @Test func requestCounterByBackendAndStatus() {
        let c = PrometheusText.requestCounts(Self.text)
        #expect(c.counts[.init(backend: "failover", status: "200")] == 15)
        #expect(c.counts[.init(backend: "failover", status: "429")] == 2)
        #expect(c.counts[.init(backend: "we\"ird,name", status: "503")] == 1)
        #expect(c.counts[.init(backend: "unknown", status: "unknown")] == 7)
        #expect(c.counts[.init(backend: "failover", status: "500")] == nil)
        #expect(c.badSamples == 3)  // NaN, negative, unclosed labels
        #expect(c.total == 25)
    }
}

import Testing
@testable import Driver
import Wire

@Suite struct JSONAndTimeTests {
    @Test func parsesAndWritesJSON() throws {
        let v = try JSONValue.parse(#" {"a": [1, 2.5, -3e2, true, false, null], "b": "x\"y\\z\n\u00e9\ud83d\ude00", "c": {}} "#)
        #expect(v["a"] == .array([.number(1), .number(2.5), .number(-300), .bool(true), .bool(false), .null]))
        #expect(v["b"]?.string == "x\"y\\z\né😀")
        #expect(try JSONValue.parse(v.serialized) == v)
        #expect(throws: JSONError.self) { try JSONValue.parse("{\"a\": }") }
        #expect(throws: JSONError.self) { try JSONValue.parse("{\"a\": 1} x") }
        #expect(throws: JSONError.self) { try JSONValue.parse("[1, 2") }
    }

    @Test func wallTimeRoundTrips() {
        let ns: Int64 = 1_795_769_622_271_926_000
        let text = WallTime.format(ns)
        #expect(text == "2026-11-27T08:53:42.271926Z")
        #expect(WallTime.parse(text) == ns)
        #expect(WallTime.parse("1970-01-01T00:00:00Z") == 0)
        #expect(WallTime.parse("2000-03-01T00:00:00.5+01:00") == 951_865_200_500_000_000)
        #expect(WallTime.parse("2025-06-10T12:00:00.123456789Z")! % 1_000_000_000 == 123_456_789)
        #expect(WallTime.parse("2025-13-10T12:00:00Z") == nil)
        #expect(WallTime.parse("yesterday") == nil)
    }
}

@Suite struct RecordTests {
    static let full = RequestRecord(
        seq: 41, runStartWall: 1_795_769_622_271_926_000, intended: 5_000_123, sent: 5_061_999, late: true,
        method: "POST", url: "http://127.0.0.1:8080/http-429", model: "", status: 200,
        latency: 812_345, correctedLatency: 874_221, ttfb: 700_001, bytesIn: 512, bytesOut: 230, error: nil,
        provider: "openai-provider",
        attempts: [Attempt(provider: "http-429-provider", status: 429), Attempt(provider: "openai-provider", status: 200)],
        tokens: TokenUsage(prompt: 13, completion: 1, total: 14))

    @Test func recordsRoundTrip() throws {
        let line = Self.full.jsonLine
        #expect(!line.contains("\n"))
        #expect(try RequestRecord(line: line) == Self.full)
        let json = try JSONValue.parse(line)
        #expect(json["intended_at"]?.string == "2026-11-27T08:53:42.276926Z")
        #expect(json["latency_ms"]?.number == 0.812345)
        #expect(json["attempts"]?.array?.count == 2)
    }

    @Test func unsentAndErrorRecordsRoundTrip() throws {
        let unsent = RequestRecord(seq: 3, runStartWall: 1_000_000_000_000_000, intended: 7, late: true, method: "GET",
                                   url: "http://h/x?q=\"1\"", error: "not sent: all 2 slots (--max-in-flight) stayed busy")
        #expect(try RequestRecord(line: unsent.jsonLine) == unsent)
        let failed = RequestRecord(seq: 4, intended: 0, sent: 10, url: "http://h", latency: 5, correctedLatency: 15,
                                   error: "curl error 7: Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server")
        #expect(try RequestRecord(line: failed.jsonLine) == failed)
    }

    @Test func rejectsLinesThatAreNotRecords() {
        #expect(throws: RequestRecord.DecodeError.self) { try RequestRecord(line: "{\"seq\": 1}") }
        #expect(throws: RequestRecord.DecodeError.self) { try RequestRecord(line: "not json") }
        #expect(throws: RequestRecord.DecodeError.self) {
            try RequestRecord(line: "{\"seq\":1,\"intended_offset_ns\":0,\"url\":\"u\",\"latency_ms\":\"fast\"}")
        }
    }

    @Test func responseFactsFromHeaderBodyAndStream() {
        let header = ResponseFacts.extract(attemptsHeader: " http-429-provider=429, openai-provider=200",
                                           body: Array("{\"model\":\"gpt-4o-mini\"}".utf8), isEventStream: false)
        #expect(header.provider == "openai-provider")
        #expect(header.attempts?.map(\.status) == [429, 200])
        let body = ResponseFacts.extract(attemptsHeader: nil,
                                         body: Array("{\"model\":\"gpt-4o-mini\",\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}".utf8),
                                         isEventStream: false)
        #expect(body.provider == "gpt-4o-mini")
        #expect(body.attempts == nil)
        #expect(body.tokens == TokenUsage(prompt: 5, completion: 7, total: 12))
        let sse = """
        data: {"model":"gpt-4o-mini","choices":[{"delta":{"content":"4"}}]}\r
        \r
        data: {"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}

        data: [DONE]

        """
        let stream = ResponseFacts.extract(attemptsHeader: nil, body: Array(sse.utf8), isEventStream: true)
        #expect(stream.provider == "gpt-4o-mini")
        #expect(stream.tokens?.total == 3)
        let nothing = ResponseFacts.extract(attemptsHeader: "garbage", body: Array("<html>".utf8), isEventStream: false)
        #expect(nothing.provider == nil && nothing.attempts == nil && nothing.tokens == nil)
    }
}

/// The seed lab's story: the first request gets the 429 and fails over, the rest go to OpenAI.
private func labRecords() -> [RequestRecord] {
    var out: [RequestRecord] = []
    let ms: Nanos = 1_000_000
    for i in 0..<100 {
        let t = Nanos(i) * 10 * ms
        var r = RequestRecord(seq: UInt64(i), runStartWall: 1_700_000_000_000_000_000, intended: t, sent: t + 50_000,
                              url: "http://127.0.0.1:8080/http-429", model: "", status: 200,
                              latency: Nanos(1 + i % 10) * ms, correctedLatency: Nanos(1 + i % 10) * ms + 50_000,
                              ttfb: ms / 2, bytesIn: 300, bytesOut: 200, provider: "openai-provider",
                              attempts: [Attempt(provider: "openai-provider", status: 200)],
                              tokens: TokenUsage(prompt: 10, completion: 2, total: 12))
        if i == 0 {
            r.attempts = [Attempt(provider: "http-429-provider", status: 429), Attempt(provider: "openai-provider", status: 200)]
        }
        if i == 50 { // the eviction ends: one more 429 straight from the http-429 provider
            r.status = 429
            r.provider = "http-429-provider"
            r.attempts = [Attempt(provider: "http-429-provider", status: 429)]
            r.tokens = nil
        }
        if i == 70 {
            r.status = nil
            r.provider = nil
            r.attempts = nil
            r.tokens = nil
            r.error = "curl error 28: Operation timed out after 30000 milliseconds"
        }
        out.append(r)
    }
    return out
}

@Suite struct ReportTests {
    func built() -> (Report, ReportBuilder) {
        var b = ReportBuilder()
        labRecords().forEach { b.add($0) }
        return (b.build(), b)
    }

    @Test func countsStatusesProvidersAndTokens() {
        let (r, _) = built()
        #expect(r.requests == 100)
        #expect(r.statusCounts == [200: 98, 429: 1, 0: 1])
        #expect(r.errors == 1)
        #expect(r.errorKinds.first?.kind == "timeout")
        let openai = r.providers.first { $0.provider == "openai-provider" }!
        #expect(openai.served == 98)
        #expect(openai.share == 0.98)
        #expect(openai.attempts == 98)
        let p429 = r.providers.first { $0.provider == "http-429-provider" }!
        #expect(p429.served == 1)
        #expect(p429.attempts == 2)
        #expect(p429.failedAttempts == 2)
        #expect(r.tokens.total == 12 * 98)
        // 100 sends 10 ms apart: 99 gaps over 0.99 s.
        #expect(abs(r.achievedRate - 100) < 0.01)
    }

    @Test func percentilesComeFromTheHistograms() {
        let (r, b) = built()
        let sent = r.uncorrected!
        #expect(sent.count == 100) // the timed-out request counts too, with the time it took
        #expect(abs(Double(sent.p50) / 1e6 - 5) <= 0.01)
        #expect(abs(Double(sent.max) / 1e6 - 10) <= 0.01)
        #expect(r.corrected!.p50 >= sent.p50)
        #expect(b.percentile(99, of: .corrected)! >= b.percentile(99, of: .sent)!)
    }

    @Test("build(latencies: false) is the same report without its latency summaries")
    func buildWithoutLatencies() {
        var b = ReportBuilder()
        for i in 0..<500 {
            b.add(RequestRecord(seq: UInt64(i), intended: Nanos(i) * 1_000_000, sent: Nanos(i) * 1_000_000, url: "http://h/", status: i % 7 == 0 ? 429 : 200,
                                latency: Nanos(i % 50 + 1) * 1_000_000, correctedLatency: Nanos(i % 50 + 1) * 1_000_000,
                                provider: i % 3 == 0 ? "a" : "b"))
        }
        let full = b.build(), light = b.build(latencies: false)
        #expect(full.corrected != nil && light.corrected == nil && light.uncorrected == nil && light.ttfb == nil && light.scheduleLag == nil)
        #expect(light.providers.allSatisfy { $0.latency == nil } && full.providers.allSatisfy { $0.latency != nil })
        #expect(light.requests == full.requests && light.statusCounts == full.statusCounts && light.achievedRate == full.achievedRate)
        #expect(light.providers.map(\.provider) == full.providers.map(\.provider) && light.providers.map(\.served) == full.providers.map(\.served))
    }

    @Test func timelineShowsEachChangeAndWhatCameBefore() {
        let (r, _) = built()
        #expect(r.timeline.count == 3)
        #expect(r.timeline[0].from == nil && r.timeline[0].to == "openai-provider")
        #expect(r.timeline[1].from == "openai-provider" && r.timeline[1].to == "http-429-provider" && r.timeline[1].seq == 50)
        #expect(r.timeline[2].from == "http-429-provider" && r.timeline[2].to == "openai-provider")
        #expect(r.timeline[2].precededBy == 429)
        #expect(r.timeline[2].at == 510_000_000 + 50_000)
        let text = r.text
        #expect(text.contains("http-429-provider -> openai-provider  after 429"))
        #expect(text.contains("requests   100"))
        let json = r.json
        #expect(json["timeline"]?.array?.count == 3)
        #expect(json["status"]?["429"]?["count"] == .number(1))
        #expect(json["status"]?["200"]?["share"] == .number(0.98))
    }

    @Test func reportMemoryDoesNotGrowWithRecords() {
        var b = ReportBuilder()
        b.timelineLimit = 10
        for i in 0..<10_000 {
            b.add(RequestRecord(seq: UInt64(i), intended: Nanos(i), sent: Nanos(i), url: "u", status: 200,
                                latency: 1000, correctedLatency: 1000, provider: i % 2 == 0 ? "a" : "b"))
        }
        let r = b.build()
        #expect(r.timeline.count == 10)
        #expect(r.timelineDropped == 9_990)
    }
}

@Suite struct ExpectationTests {
    @Test func parsesTheIssuesExamples() throws {
        let a = try Expectation(parsing: "status[429] <= 1")
        #expect(a.metric == .status("429") && a.comparison == .le && a.value == .count(1))
        let b = try Expectation(parsing: "provider[openai-provider] >= 0.9")
        #expect(b.metric == .provider("openai-provider") && b.comparison == .ge && b.value == .share(0.9))
        let c = try Expectation(parsing: "p99 < 50ms")
        #expect(c.metric == .latency(99, .corrected) && c.comparison == .lt && c.value == .duration(50_000_000))
        let d = try Expectation(parsing: "sent.p99.9<=2s")
        #expect(d.metric == .latency(99.9, .sent) && d.value == .duration(2_000_000_000))
        let e = try Expectation(parsing: "status[5xx] == 0%")
        #expect(e.metric == .status("5xx") && e.value == .share(0))
        #expect(try Expectation(parsing: "rate >= 190/s").value == .rate(190))
    }

    @Test func rejectsWithAMessageThatNamesTheFlag() {
        for bad in ["p99 50ms", "latency < 5ms", "p99 < 50", "status[abc] < 1", "provider[x] >= 1.5", "< 3", "late <"] {
            #expect(throws: Expectation.ParseError.self) { try Expectation(parsing: bad) }
        }
        do {
            _ = try Expectation(parsing: "p98.x < 5ms")
            Issue.record("should not parse")
        } catch {
            #expect(error.description.hasPrefix("--expect 'p98.x < 5ms': unknown metric"))
        }
    }

    @Test func evaluatesAgainstAReport() throws {
        var b = ReportBuilder()
        labRecords().forEach { b.add($0) }
        let r = b.build()
        func check(_ s: String) throws -> Bool { try Expectation(parsing: s).evaluate(r, b).holds }
        #expect(try check("status[429] <= 1"))
        #expect(try !check("status[429] < 1"))
        #expect(try check("provider[openai-provider] >= 0.9"))
        #expect(try !check("provider[openai-provider] >= 0.99"))
        #expect(try check("provider[openai-provider] >= 98"))
        #expect(try check("p99 < 50ms"))
        #expect(try !check("p50 < 1ms"))
        #expect(try check("max <= 10.1ms"))
        #expect(try check("errors == 1"))
        #expect(try check("error[timeout] == 1"))
        #expect(try check("status[2xx] >= 0.98"))
        #expect(try check("status[error] == 1"))
        #expect(try check("rate > 99/s"))
        let (holds, measured) = try Expectation(parsing: "p99 < 1ms").evaluate(r, b)
        #expect(!holds)
        #expect(measured.hasSuffix("ms"))
    }
}

@Suite struct ScannerTests {
    @Test func findsModelAndUsageWithoutBuildingTheRest() throws {
        let text = #"{"id":"x","usage_note":{"total_tokens":99},"choices":[{"message":{"content":"a \"model\": no","model":"inner"}}],"model":"gpt-4o-mini","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"details":{"cached_tokens":1}},"n":[1,2.5e3,true,null,{}]}"#
        let bytes = Array(text.utf8)
        let (model, usage) = try bytes.withUnsafeBufferPointer { buf in
            var p = ModelUsageScanner(bytes: buf)
            return try p.modelAndUsage()
        }
        #expect(model == "gpt-4o-mini")
        #expect(usage == TokenUsage(prompt: 3, completion: 4, total: 7))
        let broken = Array(#"{"model": "a", "usage": {"#.utf8)
        #expect(throws: JSONError.self) {
            try broken.withUnsafeBufferPointer { buf in
                var p = ModelUsageScanner(bytes: buf)
                _ = try p.modelAndUsage()
            }
        }
    }

    /// Skipped strings are searched a word (eight bytes) at a time: a quote or an escape at any
    /// offset, near the end of the body or not, must end (or not end) the string exactly there.
    @Test func skippedStringsEndAtTheirClosingQuoteWhereverItFalls() throws {
        func scan(_ text: String) throws -> (String?, TokenUsage?) {
            let bytes = Array(text.utf8)
            return try bytes.withUnsafeBufferPointer { buf in
                var p = ModelUsageScanner(bytes: buf)
                return try p.modelAndUsage()
            }
        }
        for n in 0..<20 {
            for k in 0...n {
                let plain = String(repeating: "x", count: n)
                // An escaped quote and an escaped backslash at offset k of the skipped value and key.
                var escaped = plain
                escaped.insert(contentsOf: #"\"\\"#, at: escaped.index(escaped.startIndex, offsetBy: k))
                for value in [plain, escaped] {
                    let text = #"{"id":""# + value + #"",""# + value + #"":"model","model":"m\#(n)","usage":{"total_tokens":\#(k)}}"#
                    let (model, usage) = try scan(text)
                    #expect(model == "m\(n)", "\(text)")
                    #expect(usage == TokenUsage(total: k), "\(text)")
                    // The same body cut anywhere inside the skipped strings never reads past its end.
                    for cut in 1..<min(text.utf8.count, 40) {
                        let prefix = String(decoding: Array(text.utf8).prefix(cut), as: UTF8.self)
                        #expect(throws: JSONError.self) { _ = try scan(prefix) }
                    }
                }
            }
        }
        // A backslash as the last byte of an unterminated string.
        #expect(throws: JSONError.self) { _ = try scan(#"{"id":"abcdefghij"#) }
    }
}

@Suite struct NumberTests {
    @Test func integersAndOtherNumbers() throws {
        #expect(try JSONValue.parse("[0, -12, 123456789012345, 1234567890123456789, 1.5, -2e3, 7E-1]") ==
            .array([.number(0), .number(-12), .number(123_456_789_012_345), .number(Double("1234567890123456789")!),
                    .number(1.5), .number(-2000), .number(0.7)]))
        // Foundation gives booleans as NSNumber too: they must stay booleans, and 0 and 1 numbers.
        #expect(try JSONValue.parse("[true, 1, 0, false]") == .array([.bool(true), .number(1), .number(0), .bool(false)]))
        #expect(throws: JSONError.self) { try JSONValue.parse("[1-2]") }
        #expect(throws: JSONError.self) { try JSONValue.parse("-") }
    }
}

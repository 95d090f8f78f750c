import Foundation
import Testing
import Wire
@testable import Driver

private func hostileFile(_ name: String, _ text: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("fl-hostile-\(getpid())-\(name)").path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// `x-failover-attempts` words survive from the response to the record and the report.
@Suite struct AttemptWordsTests {
    @Test func aTryWithAWordIsKeptFromHeaderToRecordToReport() throws {
        let facts = ResponseFacts.extract(attemptsHeader: "http-429-provider=429,openai-provider=timeout,backup=200",
                                          body: [], isEventStream: false)
        #expect(facts.attempts == [Attempt(provider: "http-429-provider", status: 429),
                                   Attempt(provider: "openai-provider", outcome: .timeout),
                                   Attempt(provider: "backup", status: 200)])
        #expect(facts.provider == "backup")
        var record = RequestRecord(seq: 0, intended: 0, sent: 0, url: "http://127.0.0.1/x", status: 200, latency: 1_000_000,
                                   provider: facts.provider, attempts: facts.attempts)
        let line = record.jsonLine
        #expect(line.contains(#"{"provider":"openai-provider","status":null,"failure":"timeout"}"#))
        let back = try RequestRecord(line: line)
        #expect(back.attempts == facts.attempts)
        // Every word the gateway writes round-trips through a record.
        for word in FailoverAttempts.Outcome.knownWords {
            record.attempts = [Attempt(provider: "p", outcome: word)]
            #expect(try RequestRecord(line: record.jsonLine).attempts == record.attempts)
        }
        // The report counts the timed-out try as a failed attempt of its provider.
        var b = ReportBuilder()
        b.add(back)
        let openai = b.build().providers.first { $0.provider == "openai-provider" }
        #expect(openai?.attempts == 1)
        #expect(openai?.failedAttempts == 1)
    }

    @Test func theTimelineNamesTheWordBeforeAFailover() {
        var b = ReportBuilder()
        b.add(RequestRecord(seq: 0, intended: 0, sent: 0, url: "http://h/", status: 200, latency: 1000, provider: "a",
                            attempts: [Attempt(provider: "a", status: 200)]))
        b.add(RequestRecord(seq: 1, intended: 10, sent: 10, url: "http://h/", status: 200, latency: 1000, provider: "b",
                            attempts: [Attempt(provider: "a", outcome: .connect), Attempt(provider: "b", status: 200)]))
        let report = b.build()
        #expect(report.timeline.last?.precededBy == nil)
        #expect(report.timeline.last?.precededByFailure == "connect")
        #expect(report.text.contains("a -> b  after connect"))
    }

    @Test func oldRecordsWithOnlyStatusesStillRead() throws {
        let line = #"{"seq":0,"intended_offset_ns":0,"url":"http://h/","attempts":[{"provider":"a","status":429},{"provider":"b","status":200}]}"#
        #expect(try RequestRecord(line: line).attempts == [Attempt(provider: "a", status: 429), Attempt(provider: "b", status: 200)])
    }
}

/// Numbers in records, access logs, flags and plans are checked before any conversion.
@Suite struct HostileNumbersTests {
    static let base = #""seq":1,"intended_offset_ns":0,"url":"http://127.0.0.1/x""#

    @Test(arguments: [
        #""latency_ms":1e308"#, #""latency_ms":-1"#, #""ttfb_ms":1e16"#, #""ttft_ms":"x""#,
        #""latency_corrected_ms":9.3e12"#, #""itl_ms":{"events":1,"mean":1e300,"max":1}"#,
        #""itl_ms":{"events":1e300,"mean":1,"max":1}"#, #""sent_offset_ns":1e300"#, #""sent_offset_ns":-5"#,
        #""tokens":{"prompt":9e18,"completion":9e18}"#, #""status":1e300"#, #""bytes_in":-1"#,
        #""attempts":[{"provider":"a","status":1e300}]"#, #""attempts":[{"provider":"a","failure":"NOT A WORD"}]"#,
        #""intended_at":"2262-04-11T23:47:16Z","intended_offset_ns":9000000000000000000"#,
        #""intended_at":"9999-01-01T00:00:00Z""#, #""intended_at":"yesterday""#,
    ])
    func hostileRecordFieldsAreAnErrorNotATrap(field: String) {
        let line = "{" + Self.base + "," + field + "}"
        #expect(throws: RequestRecord.DecodeError.self, "\(field)") { try RequestRecord(line: line) }
    }

    @Test func reportSumsSaturateInsteadOfTrapping() throws {
        var b = ReportBuilder()
        for i in 0..<3 {
            let line = "{" + #""seq":\#(i),"intended_offset_ns":0,"sent_offset_ns":0,"url":"http://h/","status":200,"latency_ms":1e12,"provider":"p","# +
                #""tokens":{"prompt":1000000000000,"completion":1000000000000,"total":null}}"#
            b.add(try RequestRecord(line: line))
        }
        let report = b.build()
        #expect(report.requests == 3)
    }

    @Test(arguments: ["9999-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "2262-04-12T00:00:00Z", "1677-09-21T00:00:00Z"])
    func accessLogTimesOutsideNanosecondRangeAreMalformed(time: String) {
        let line = #"{"time":"\#(time)","scope":"request","http.method":"POST","http.path":"/x"}"#
        guard case .malformed(let why) = ReplayParser.parseLine(line) else {
            Issue.record("\(time) was not reported as malformed")
            return
        }
        #expect(why.contains("\"time\""))
        #expect(WallTime.parse(time) == nil)
    }

    @Test func wallTimeFormatsTheExtremes() {
        #expect(WallTime.format(.min).hasPrefix("1677-09-21"))
        #expect(WallTime.format(.max).hasPrefix("2262-04-11"))
        #expect(WallTime.parse(WallTime.format(1_700_000_000_123_456_000)) == 1_700_000_000_123_456_000)
    }

    @Test(arguments: ["1e300", "1e11", "99999999999h", "367d", "9000000h", "1e400s", "nan", "inf", "-1s", "1e300ms"])
    func outOfRangeDurationsAreErrors(text: String) {
        #expect(Units.parseDuration(text) == nil, "\(text)")
        #expect(throws: Units.UnitError.self) { try Units.duration(text) }
    }

    @Test func durationErrorsSayWhy() {
        #expect(throws: Units.UnitError(description: "'99999999999h' is longer than the longest allowed, 366 days")) {
            try Units.duration("99999999999h")
        }
        #expect(Units.parseDuration("366d") == nil) // no day unit
        #expect(Units.parseDuration("8784h") == Units.maxDuration)
    }

    @Test(arguments: ["1e300/s", "1e300", "20000000/s", "1/1e-300s", "inf/s", "1e9/ms"])
    func outOfRangeRatesAreErrors(text: String) {
        #expect(Units.parseRate(text) == nil, "\(text)")
    }

    @Test func speedsAreBounded() {
        #expect(Units.parseSpeed("1e-300x") == nil)
        #expect(Units.parseSpeed("1e300") == nil)
        #expect(Units.parseSpeed("2x") == 2)
        // A tiny speed that passed no longer traps a loop's next pass.
        var timer = ReplayTimer(speed: 1e-6, maxGap: nil)
        _ = timer.schedule(0)
        timer.newPass()
        _ = timer.schedule(.max)
        _ = timer.schedule(.min)
    }

    @Test(arguments: [
        ("concurrency: 1000000000000", "concurrency must be 1...100000"),
        ("concurrency: 1e12", "is not a whole number"),
        ("phases:\n  - constant: 1e300/s\n    for: 1s", "above the highest rate"),
        ("duration: 99999999999h", "longer than the longest allowed"),
        ("phases:\n  - steps: [1/s, 2/s]\n    every: 9999999999999h", "longer than the longest allowed"),
        ("max-in-flight: 99999999", "max-in-flight must be 1...100000"),
        ("phases:\n  - burst: 99999999\n    every: 1s", "burst must be 1...100000"),
    ])
    func planNumbersOutOfRangeAreErrorsWithTheLine(yaml: String, message: String) {
        do {
            _ = try PlanFile.parse(yaml, path: "p.yaml")
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.description.contains(message), "\(error)")
            #expect(error.description.hasPrefix("p.yaml:"), "\(error)")
        }
    }

    @Test func deeplyNestedPlansAreRefusedBeforeYams() {
        for text in [String(repeating: "[", count: 50_000), "a: " + String(repeating: "{", count: 50_000),
                     String(repeating: "- ", count: 50_000) + "x", "x: 'it''s'\n" + String(repeating: "[", count: 100)] {
            #expect(throws: PlanError.self) { try PlanFile.parse(text, path: "deep.yaml") }
        }
        // A quote inside a plain scalar does not hide brackets from the check.
        #expect(throws: PlanError.self) { try PlanFile.parse("message: it's\n" + String(repeating: "[", count: 50_000), path: "q.yaml") }
    }

    @Test func pacerSaturatesLongSteps() {
        let steps = Pacing.steps(rates: Array(repeating: 1, count: 1000), every: Units.maxDuration)
        #expect(steps.naturalLength == .max)
        var pacer = Pacer(phases: [Phase(steps)], rng: SeededRandom(seed: 1))
        #expect(pacer.next() == 0)
    }
}

/// Replay sends only what is a valid request: a bad method or target is a skipped, counted line.
@Suite(.serialized) struct ReplayValidationTests {
    @Test func injectedMethodsAndTargetsAreSkippedNeverSent() throws {
        final class Seen: @unchecked Sendable {
            let lock = NSLock()
            var requests: [(String, String, [String: String])] = []
        }
        let seen = Seen()
        let server = try TestServer { r in
            seen.lock.withLock { seen.requests.append((r.method, r.path, r.headers)) }
            return .init()
        }
        defer { server.stop() }
        func access(_ ms: Int, _ method: String, _ path: String) -> String {
            var o = #"{"time":"2025-06-10T12:00:00.\#(String(format: "%03d", ms))Z","scope":"request","http.method":"#
            JSONValue.writeString(method, into: &o)
            o += #","http.path":"#
            JSONValue.writeString(path, into: &o)
            return o + "}"
        }
        let lines = [
            access(0, "POST", "/ok1"),
            access(1, "POST /evil HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET", "/a"),  // line 2
            access(2, "GET", "/ok2?q=1"),
            access(3, "POST", "/a\r\nX-Injected: 2"),                             // line 4
            access(4, "POST", "http://evil.example/x"),                           // line 5
            access(5, "POST", "/with space"),                                     // line 6
            access(6, "PO ST", "/x"),                                             // line 7
            access(7, "POST", "/ctl\u{1}"),                                       // line 8
            access(8, "", "/x"),                                                  // line 9
            access(9, "POST", "*"),                                               // line 10
            access(10, "POST", "/caf\u{e9}"),                                     // line 11
            access(11, "DELETE", "/ok3"),
            // A record whose URL holds CR/LF in its path.
            RequestRecord(seq: 0, runStartWall: 1_749_556_800_000_000_000, intended: 12_000_000, method: "POST",
                          url: "http://127.0.0.1:1/r\r\nX-Injected: 3").jsonLine,                  // line 13
            RequestRecord(seq: 1, runStartWall: 1_749_556_800_000_000_000, intended: 13_000_000, method: "GET\r\nX: 4",
                          url: "http://127.0.0.1:1/r").jsonLine,                                   // line 14
        ]
        let path = try hostileFile("inject.log", lines.joined(separator: "\n"))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let messages = Messages()
        let diagnostics = ReplayDiagnostics(report: { messages.add($0) })
        let target = server.base
        let make: @Sendable () -> any ArrivalFeed = {
            try! ReplayFeed(path: path, builder: ReplayRequestBuilder(target: target), speed: 100, maxGap: nil, loop: false,
                            diagnostics: diagnostics)
        }
        let got = Collected()
        Driver(configuration: DriverConfiguration(workload: .replay(make), mix: RequestMix([])), sink: got.sink).run()
        let arrived = seen.lock.withLock { seen.requests }
        #expect(arrived.map { "\($0.0) \($0.1)" }.sorted() == ["DELETE /ok3", "GET /ok2?q=1", "POST /ok1"])
        #expect(arrived.allSatisfy { r in !r.2.keys.contains { $0.lowercased().hasPrefix("x") } })
        #expect(got.records.count == 3)
        #expect(diagnostics.entries == 3)
        #expect(diagnostics.malformed == 11)
        let all = messages.all
        for line in [2, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14] {
            #expect(all.contains { $0.hasPrefix("\(path):\(line): ") }, "no message for line \(line): \(all)")
        }
        // Messages quote hostile text escaped: no raw CR/LF reaches the terminal.
        #expect(all.allSatisfy { !$0.contains("\r") && !$0.contains("\n") })
    }
}

@Suite struct LongLineTests {
    /// One line far past the cap is skipped with its number, never held; the next line reads.
    @Test func anEndlessLineIsSkippedAndTheRestReads() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fl-long-\(getpid())").path
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        h.write(Data("first\r\n".utf8))
        let block = Data(repeating: UInt8(ascii: "x"), count: 1 << 20)
        for _ in 0..<(LineReader.maxLineBytes >> 20) + 2 { h.write(block) }
        h.write(Data("\nlast".utf8))
        try h.close()
        let reader = try LineReader(path: path)
        var skipped: [Int] = []
        reader.overlong = { skipped.append($0) }
        var lines: [String] = []
        while let l = reader.next() { lines.append(l) }
        #expect(lines == ["first", "last"])
        #expect(skipped == [2])
        #expect(reader.lineNumber == 3)
    }

    @Test func linesAcrossBufferBoundariesAndLimitsReadAsBefore() throws {
        let text = (0..<5000).map { "line \($0) " + String(repeating: "y", count: $0 % 97) }.joined(separator: "\n") + "\n"
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fl-lines-\(getpid())").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let reader = try LineReader(path: path)
        var lines: [String] = []
        while let l = reader.next() { lines.append(l) }
        #expect(lines == text.split(separator: "\n").map(String.init))
        // A limit inside line 2 still gives line 2 whole, then stops.
        let limited = try LineReader(path: path, limit: Int64(lines[0].utf8.count + 3))
        #expect(limited.next() == lines[0])
        #expect(limited.next() == lines[1])
        #expect(limited.next() == nil)
    }
}

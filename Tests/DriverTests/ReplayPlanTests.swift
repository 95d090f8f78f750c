import Foundation
import Testing
@testable import Driver

private let second: Nanos = 1_000_000_000

private func tempFile(_ name: String, _ text: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("fl-\(getpid())-\(name)").path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

final class Messages: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ s: String) { lock.withLock { items.append(s) } }
    var all: [String] { lock.withLock { items } }
}

@Suite struct ReplayTimerTests {
    @Test func keepsOffsetsDividedBySpeed() {
        var t = ReplayTimer(speed: 2)
        let base: Int64 = 1_700_000_000_000_000_000
        #expect(t.schedule(base) == 0)
        #expect(t.schedule(base + 1_000_000_000) == 500_000_000)
        #expect(t.schedule(base + 3_000_000_000) == 1_500_000_000)
        // Out of order: no going back in time.
        #expect(t.schedule(base + 2_000_000_000) == 1_500_000_000)
    }

    @Test func cutsLongGaps() {
        var t = ReplayTimer(speed: 1, maxGap: 2 * second)
        #expect(t.schedule(0) == 0)
        #expect(t.schedule(1_000_000_000) == second)
        #expect(t.schedule(61_000_000_000) == 3 * second)  // a minute of silence becomes 2 s
        #expect(t.schedule(61_500_000_000) == 3_500_000_000)
    }

    @Test func loopsWithATypicalGap() {
        var t = ReplayTimer(speed: 1)
        #expect(t.schedule(10) == 0)
        #expect(t.schedule(10 + 100_000_000) == 100_000_000)
        #expect(t.schedule(10 + 200_000_000) == 200_000_000)
        t.newPass()
        // Mean gap 100 ms after the last request, then the same spacing.
        #expect(t.schedule(10) == 300_000_000)
        #expect(t.schedule(10 + 100_000_000) == 400_000_000)
    }
}

@Suite struct ReplayInputTests {
    @Test func readsAccessLogsOurRecordsAndReportsBadLines() throws {
        let record = RequestRecord(seq: 0, runStartWall: 1_700_000_000_000_000_000, intended: 2_000_000_000,
                                   url: "http://127.0.0.1:9/http-429?x=1", model: "gpt-4o").jsonLine
        let text = """
        {"time":"2025-06-10T12:00:00.000Z","level":"info","scope":"request","http.method":"POST","http.path":"/http-429","gen_ai.request.model":"gpt-5"}
        plain text from kubectl
        {"time":"2025-06-10T12:00:00.250Z","scope":"request","http":{"method":"GET","path":"/health"}}
        {"time":"not a time","scope":"request","http.method":"POST","http.path":"/x"}
        {"broken": 
        {"time":"2025-06-10T12:00:00.100Z","scope":"upstream","http.method":"POST","http.path":"/up"}
        {
          "time": "2025-06-10T12:00:01Z",
          "scope": "request",
          "http.method": "POST",
          "http.path": "/http-429"
        }
        \(record)
        """
        let path = try tempFile("access.log", text)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let messages = Messages()
        let diagnostics = ReplayDiagnostics(report: { messages.add($0) })
        let feed = try ReplayFeed(path: path, builder: ReplayRequestBuilder(target: "http://127.0.0.1:8080/"),
                                  speed: 1, maxGap: nil, loop: false, diagnostics: diagnostics)
        var got: [(Nanos, RequestSpec)] = []
        while let (o, r) = feed.next() { got.append((o, r)) }
        #expect(got.count == 4)
        #expect(got.map(\.1.url) == ["http://127.0.0.1:8080/http-429", "http://127.0.0.1:8080/health",
                                      "http://127.0.0.1:8080/http-429", "http://127.0.0.1:8080/http-429?x=1"])
        #expect(got.map(\.0)[0...2] == [0, 250_000_000, 1_000_000_000])
        #expect(got[0].1.model == "gpt-5")
        #expect(got[0].1.method == "POST" && got[0].1.body != nil)
        #expect(got[1].1.method == "GET" && got[1].1.body == nil)
        #expect(got[3].1.model == "gpt-4o")
        #expect(diagnostics.entries == 4)
        #expect(diagnostics.skipped == 2) // the text line and the upstream-scope line
        #expect(diagnostics.malformed == 2)
        let all = messages.all
        #expect(all.contains { $0.hasPrefix("\(path):4: \"time\" is not an RFC 3339 time") })
        #expect(all.contains { $0.hasPrefix("\(path):5: malformed JSON") })
    }

    @Test func accessLogsNeedATarget() throws {
        let path = try tempFile("noteam.log", #"{"time":"2025-06-10T12:00:00Z","http.method":"POST","http.path":"/a"}"#)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let messages = Messages()
        let feed = try ReplayFeed(path: path, builder: ReplayRequestBuilder(target: nil), speed: 1, maxGap: nil, loop: false,
                                  diagnostics: ReplayDiagnostics(report: { messages.add($0) }))
        #expect(feed.next() == nil)
        #expect(messages.all.first?.contains("--target") == true)
    }

    @Test func readsObjectsAsJqPrintsThem() throws {
        let text = #"""
        {
          "time": "2025-06-10T12:00:00Z",
          "scope": "request",
          "http": {
            "method": "POST",
            "path": "/a}{"
          },
          "gen_ai.request.model": "m\"{"
        }
        {"time": "2025-06-10T12:00:01Z",
          "http.method": "GET", "http.path": "/b"}
        {
          "time": "2025-06-10T12:00:02Z",
          "http.method":
        {"time":"2025-06-10T12:00:03Z","http.method":"POST","http.path":"/c"}
        """#
        let path = try tempFile("jq.log", text)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let messages = Messages()
        let diagnostics = ReplayDiagnostics(report: { messages.add($0) })
        let feed = try ReplayFeed(path: path, builder: ReplayRequestBuilder(target: "http://h"), speed: 1, maxGap: nil,
                                  loop: false, diagnostics: diagnostics)
        var got: [(Nanos, RequestSpec)] = []
        while let (o, r) = feed.next() { got.append((o, r)) }
        #expect(got.map(\.1.url) == ["http://h/a}{", "http://h/b", "http://h/c"])
        #expect(got.map(\.0) == [0, second, 3 * second])
        #expect(got.first?.1.model == "m\"{")
        #expect(diagnostics.entries == 3 && diagnostics.malformed == 1 && diagnostics.skipped == 0)
        #expect(messages.all.count == 1)
        #expect(messages.all.first?.hasPrefix("\(path):12: malformed JSON") == true)
    }

    @Test func loopsOverTheFile() throws {
        let lines = (0..<3).map { #"{"time":"2025-06-10T12:00:0\#($0).000Z","http.method":"POST","http.path":"/p"}"# }
        let path = try tempFile("loop.log", lines.joined(separator: "\n"))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let feed = try ReplayFeed(path: path, builder: ReplayRequestBuilder(target: "http://h"), speed: 10, maxGap: nil,
                                  loop: true, diagnostics: ReplayDiagnostics())
        var offsets: [Nanos] = []
        for _ in 0..<7 { offsets.append(feed.next()!.offset) }
        #expect(offsets == [0, 100_000_000, 200_000_000, 300_000_000, 400_000_000, 500_000_000, 600_000_000])
    }

    @Test func replayDrivesTheEngineOnSchedule() throws {
        let server = try TestServer { _ in .init() }
        defer { server.stop() }
        let lines = (0..<5).map { #"{"time":"2025-06-10T12:00:00.\#($0)00Z","http.method":"POST","http.path":"/r\#($0)"}"# }
        let path = try tempFile("engine.log", lines.joined(separator: "\n"))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let target = server.base
        let make: @Sendable () -> any ArrivalFeed = {
            try! ReplayFeed(path: path, builder: ReplayRequestBuilder(target: target), speed: 2, maxGap: nil, loop: false,
                            diagnostics: ReplayDiagnostics())
        }
        let got = Collected()
        Driver(configuration: DriverConfiguration(workload: .replay(make), mix: RequestMix([])), sink: got.sink).run()
        let records = got.records.sorted { $0.seq < $1.seq }
        #expect(records.count == 5)
        #expect(records.map(\.intended) == [0, 50_000_000, 100_000_000, 150_000_000, 200_000_000])
        #expect(records.map(\.url) == (0..<5).map { "\(target)/r\($0)" })
        #expect(records.allSatisfy { $0.status == 200 && !$0.late })
    }

    /// A schedule denser than the slots: when the file ends, the arrivals still waiting for a
    /// slot are sent late, not dropped as "never sent" (only a limit or a stop may drop them).
    @Test func replaySendsEveryRequestItReadEvenWhenLate() throws {
        let server = try TestServer { _ in .init(delay: 0.05) }
        defer { server.stop() }
        let count = 30
        let lines = (0..<count).map { i in
            #"{"time":"2025-06-10T12:00:00.\#(String(format: "%03d", i))Z","http.method":"POST","http.path":"/r\#(i)"}"#
        }
        let path = try tempFile("dense.log", lines.joined(separator: "\n"))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let target = server.base
        let make: @Sendable () -> any ArrivalFeed = {
            try! ReplayFeed(path: path, builder: ReplayRequestBuilder(target: target), speed: 1, maxGap: nil, loop: false,
                            diagnostics: ReplayDiagnostics())
        }
        var config = DriverConfiguration(workload: .replay(make), mix: RequestMix([]))
        config.maxInFlight = 2
        let got = Collected()
        let driver = Driver(configuration: config, sink: got.sink)
        driver.run()
        let records = got.records.sorted { $0.seq < $1.seq }
        let stats = driver.stats
        #expect(records.count == count)
        #expect(records.map(\.url) == (0..<count).map { "\(target)/r\($0)" })
        #expect(records.allSatisfy { $0.sent != nil && $0.error == nil && $0.status == 200 })
        #expect(stats.sent == UInt64(count))
        #expect(stats.errors == 0)
        #expect(server.requests == count)
        // 2 slots each busy 50 ms against one arrival a millisecond: nearly all wait.
        #expect(stats.late >= UInt64(count - 4))
        #expect(records.filter(\.late).count == Int(stats.late))
        for r in records where r.late { #expect(r.sent! > r.intended) }
    }

    /// A finite open-loop plan ends like a replay file: its late arrivals are still sent.
    @Test func aFinitePlanSendsItsLateArrivals() throws {
        let server = try TestServer { _ in .init(delay: 0.05) }
        defer { server.stop() }
        var config = DriverConfiguration(workload: .openLoop([Phase(.constant(rate: 200), duration: 100_000_000)]),
                                         mix: RequestMix([RequestSpec.chat(url: server.base + "/")]))
        config.maxInFlight = 2
        let got = Collected()
        let driver = Driver(configuration: config, sink: got.sink)
        driver.run()
        let records = got.records
        #expect(records.count == 20)
        #expect(records.allSatisfy { $0.sent != nil && $0.status == 200 })
        #expect(driver.stats.late >= 14)
        #expect(server.requests == 20)
    }

    /// The engine takes replay arrivals from a reader thread: longer than its buffer, in order, none lost.
    @Test func readAheadKeepsOrderPastItsBuffer() {
        struct Counting: ArrivalFeed {
            var i: Nanos = 0
            mutating func next() -> (offset: Nanos, request: RequestSpec)? {
                guard i < 10_000 else { return nil }
                defer { i += 1 }
                return (i, RequestSpec(method: "GET", url: "http://h/", headers: [], body: nil, model: nil))
            }
        }
        let feed = ReadAheadFeed { Counting() }
        feed.prime()
        var offsets: [Nanos] = []
        while let item = feed.next() { offsets.append(item.offset) }
        #expect(offsets == Array(0..<10_000))
        let stopped = ReadAheadFeed { Counting() }
        stopped.prime()
        #expect(stopped.next()?.offset == 0)
        stopped.cancel()
    }

    /// Replaying a gateway's access log against that gateway appends to the file as it goes:
    /// the replay reads only what the file held when it started.
    @Test func replayReadsTheFileAsItWasAtTheStart() throws {
        let line = #"{"time":"2025-06-10T12:00:00.000Z","http.method":"GET","http.path":"/a"}"#
        let path = try tempFile("growing.log", [line, line, line].joined(separator: "\n") + "\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let feed = try ReplayFeed(path: path, builder: ReplayRequestBuilder(target: "http://h"), speed: 1, maxGap: nil,
                                  loop: false, diagnostics: ReplayDiagnostics())
        #expect(feed.next() != nil)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(String(repeating: line + "\n", count: 5).utf8))
        try handle.close()
        var n = 1
        while feed.next() != nil { n += 1 }
        #expect(n == 3)
    }
}

@Suite struct PlanTests {
    @Test func parsesAFullPlan() throws {
        let plan = try PlanFile.parse("""
        # a lab plan
        targets:
          - url: http://127.0.0.1:8080/http-429
            weight: 3
          - http://127.0.0.1:8080/other
        request:
          model: gpt-4o-mini
          message: "What is 2+2?  # not a comment"
          stream: true
          headers:
            x-lab: "1"
        duration: 1m
        requests: 5000
        seed: 9
        phases:
          - constant: 50/s
            for: 10s
          - poisson: 100/s
            for: 10s
          - ramp: 50/s -> 500/s
            for: 30s
          - ramp: 500/s
            to: 0/s
            for: 5s
          - steps: [100/s, 200/s]
            every: 5s
          - burst: 50
            every: 1s
            rate: 10/s
            for: 10s
        """, path: "plan.yaml")
        #expect(plan.targets == [.init(url: "http://127.0.0.1:8080/http-429", weight: 3), .init(url: "http://127.0.0.1:8080/other", weight: 1)])
        #expect(plan.model == "gpt-4o-mini")
        #expect(plan.message == "What is 2+2?  # not a comment")
        #expect(plan.stream == true)
        #expect(plan.headers == ["x-lab: 1"])
        #expect(plan.duration == 60 * second && plan.requests == 5000 && plan.seed == 9)
        #expect(plan.phases == [
            Phase(.constant(rate: 50), duration: 10 * second),
            Phase(.poisson(rate: 100), duration: 10 * second),
            Phase(.ramp(from: 50, to: 500, over: 30 * second), duration: 30 * second),
            Phase(.ramp(from: 500, to: 0, over: 5 * second), duration: 5 * second),
            Phase(.steps(rates: [100, 200], every: 5 * second)),
            Phase(.bursts(size: 50, every: second, baseRate: 10), duration: 10 * second),
        ])
    }

    @Test func closedLoopPlanAndFlowStyle() throws {
        let plan = try PlanFile.parse("targets: [http://a/x, {url: http://b/y, weight: 2}]\nconcurrency: 16\n", path: "p.yaml")
        #expect(plan.concurrency == 16)
        #expect(plan.targets.map(\.weight) == [1, 2])
    }

    @Test func errorsNameTheFileAndLine() {
        func message(_ text: String) -> String {
            do {
                _ = try PlanFile.parse(text, path: "lab/plan.yaml")
                return "parsed"
            } catch {
                return error.description
            }
        }
        #expect(message("phases:\n  - constnt: 5/s\n").hasPrefix("lab/plan.yaml:2: a phase has exactly one of"))
        #expect(message("duration: soon\n").hasPrefix("lab/plan.yaml:1: duration: 'soon' is not a duration"))
        #expect(message("targets:\n  - url: http://a\n\nratez: 5\n").hasPrefix("lab/plan.yaml:4: unknown key 'ratez'"))
        #expect(message("phases:\n  - ramp: 5/s\n    for: 10s\n").hasPrefix("lab/plan.yaml:2: ramp needs to:"))
        #expect(message("concurrency: 2\nphases:\n  - constant: 1/s\n").contains("not both"))
        #expect(message("request:\n  model: a\n   stream: true\n").hasPrefix("lab/plan.yaml:3:"))
    }

    @Test func unknownKeysAndYAMLErrorsNameTheLine() {
        func message(_ text: String) -> String {
            do {
                _ = try PlanFile.parse(text, path: "lab/plan.yaml")
                return "parsed"
            } catch {
                return error.description
            }
        }
        #expect(message("request:\n  model: a\n  strem: true\n").hasPrefix("lab/plan.yaml:3: unknown request key 'strem'"))
        #expect(message("phases:\n  - constant: 5/s\n    for: 1s\n    evry: 1s\n").hasPrefix("lab/plan.yaml:4: unknown phase key 'evry'"))
        #expect(message("targets:\n  - url: http://a\n    wieght: 2\n").hasPrefix("lab/plan.yaml:3: unknown target key 'wieght'"))
        #expect(message("duration: 1s\nseed: 1\nduration: 2s\n").hasPrefix("lab/plan.yaml:1: 'duration' appears twice"))
        #expect(message("seed: 1\n\tduration: 2s\n").hasPrefix("lab/plan.yaml:2: tabs are not allowed"))
        #expect(message("seed: 1\ntargets: [http://a, {url: http://b\n").hasPrefix("lab/plan.yaml:3: not valid YAML"))
        #expect(message("- http://a\n").hasPrefix("lab/plan.yaml:1: a plan is a mapping"))
        #expect(message("targets: http://a\n").hasPrefix("lab/plan.yaml:1: targets is a list"))
    }

    @Test func emptyPlansAndTheHelpExample() throws {
        #expect(try PlanFile.parse("", path: "p.yaml").targets.isEmpty)
        #expect(try PlanFile.parse("# nothing yet\n---\n", path: "p.yaml").phases == nil)
        // The example of `drive --help`.
        let plan = try PlanFile.parse("""
        targets: [{url: http://127.0.0.1:8080/http-429, weight: 3}, http://127.0.0.1:8080/other]
        request: {model: gpt-4o-mini, message: "hi", stream: false, headers: ["x-lab: 1"]}
        phases:
          - constant: 50/s
            for: 10s
          - burst: 50
            every: 1s
            rate: 10/s
            for: 10s
        # or, instead of phases: concurrency: 16
        duration: 60s
        requests: 10000
        max-in-flight: 256
        seed: 1
        """, path: "p.yaml")
        #expect(plan.targets == [.init(url: "http://127.0.0.1:8080/http-429", weight: 3), .init(url: "http://127.0.0.1:8080/other", weight: 1)])
        #expect(plan.model == "gpt-4o-mini" && plan.message == "hi" && plan.stream == false)
        #expect(plan.headers == ["x-lab: 1"])
        #expect(plan.phases?.count == 2 && plan.maxInFlight == 256 && plan.requests == 10000 && plan.seed == 1)
    }
}

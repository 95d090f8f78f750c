import Driver
import struct Driver.Expectation
import Gateway
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import Lab
import Testing
import Upstreams

/// The step engine on fake time: no sockets, no clocks.
@Suite("Step engine")
struct StepEngineTests {
    static let ms: Nanos = 1_000_000
    static let s: Nanos = 1_000_000_000

    static func record(_ status: Int?, _ provider: String?) -> RequestRecord {
        RequestRecord(seq: 0, intended: 0, sent: 0, url: "http://127.0.0.1/lab", status: status,
                      latency: 2 * ms, correctedLatency: 2 * ms, error: status == nil ? "refused" : nil, provider: provider)
    }

    static func expect(_ texts: String...) -> [Expectation] { texts.map { try! Expectation(parsing: $0) } }

    static func step(_ name: String, set: [(standIn: String, behavior: StandInBehavior)] = [], send: Int = 0, returns: [String] = [],
                     for duration: Nanos? = nil, until: String? = nil, timeout: Nanos = 5 * s, expect: [Expectation] = []) -> LabScript.Step {
        let end: LabScript.Step.End = until.map { .until(try! Expectation(parsing: $0), timeout: timeout) } ?? .duration(duration ?? s)
        return LabScript.Step(name: name, set: set, send: send, returns: returns, end: end, expect: expect)
    }

    /// The verdicts among `actions`.
    static func ended(_ actions: [StepAction]) -> [StepVerdict] {
        actions.compactMap { if case .end(let v) = $0 { return v } else { return nil } }
    }

    @Test("a step starts with its set, then its return, then its send")
    func startActions() {
        var engine = StepEngine(steps: [Self.step("a", set: [("one", .healthy), ("two", .down)], send: 2, returns: ["p"])])
        #expect(engine.start(at: 7) == [.begin(step: 0), .setBehavior(standIn: "one", behavior: .healthy),
                                         .setBehavior(standIn: "two", behavior: .down), .returnProvider("p"), .send(2)])
        #expect(engine.state == .running(step: 0, since: 7))
        #expect(engine.start(at: 8).isEmpty, "a second start does nothing")
    }

    @Test("for: ends a step at its duration exactly, and the next one starts there")
    func forDuration() {
        var engine = StepEngine(steps: [Self.step("a", send: 1, for: Self.s), Self.step("b", for: 2 * Self.s)])
        _ = engine.start(at: 0)
        #expect(engine.deadline == Self.s)
        #expect(engine.advance(to: Self.s - 1).isEmpty)
        // A late look (1.5 s) still ends the step at 1 s and starts b there.
        let actions = engine.advance(to: 1500 * Self.ms)
        let verdicts = Self.ended(actions)
        #expect(verdicts.map(\.start) == [0])
        #expect(verdicts.map(\.end) == [Self.s])
        #expect(verdicts.map(\.ending) == [.duration])
        #expect(actions.last == .begin(step: 1))
        #expect(engine.state == .running(step: 1, since: Self.s))
        #expect(engine.deadline == 3 * Self.s)
        let last = engine.advance(to: 10 * Self.s)
        #expect(Self.ended(last).map(\.end) == [3 * Self.s])
        #expect(last.last == .finished)
        #expect(engine.state == .finished)
        #expect(engine.deadline == nil)
    }

    @Test("expectations count exactly the requests that finished inside the step's window")
    func windowBoundaries() {
        var engine = StepEngine(steps: [
            Self.step("a", for: Self.s, expect: Self.expect("requests == 2", "status[429] == 1", "status[200] == 1")),
            Self.step("b", for: Self.s, expect: Self.expect("requests == 2", "provider[second] == 2", "status[429] == 0")),
        ])
        _ = engine.start(at: 0)
        _ = engine.finished(Self.record(429, "first"), at: 0)               // at a's start: a's
        _ = engine.finished(Self.record(200, "second"), at: Self.s - 1)     // the last nanosecond of a
        let atBoundary = engine.finished(Self.record(200, "second"), at: Self.s) // b's first instant
        #expect(Self.ended(atBoundary).map(\.name) == ["a"])
        _ = engine.finished(Self.record(200, "second"), at: 2 * Self.s - 1)
        // After b's end (2 s): no step's. The call first ends b at 2 s, then drops it.
        let after = engine.finished(Self.record(429, "first"), at: 2 * Self.s)
        #expect(after.last == .finished)
        let a = try! #require(engine.verdicts[0])
        let b = try! #require(engine.verdicts[1])
        #expect(a.requests == 2)
        #expect(a.verdicts.map(\.holds) == [true, true, true], "\(a.verdicts)")
        #expect(a.statusCounts == [429: 1, 200: 1])
        #expect(a.providers == ["first": 1, "second": 1])
        #expect(b.requests == 2)
        #expect(b.verdicts.map(\.holds) == [true, true, true], "\(b.verdicts)")
        #expect(a.passed && b.passed)
    }

    @Test("a failed expectation says what was measured")
    func failedExpectation() {
        var engine = StepEngine(steps: [Self.step("a", for: Self.s, expect: Self.expect("status[429] == 1", "provider[second] >= 0.5"))])
        _ = engine.start(at: 0)
        _ = engine.finished(Self.record(200, "second"), at: 10 * Self.ms)
        _ = engine.finished(Self.record(200, "first"), at: 20 * Self.ms)
        _ = engine.finished(Self.record(200, "first"), at: 30 * Self.ms)
        _ = engine.finished(Self.record(200, "first"), at: 40 * Self.ms)
        _ = engine.advance(to: Self.s)
        let v = try! #require(engine.verdicts[0])
        #expect(!v.passed)
        #expect(v.verdicts.map(\.holds) == [false, false])
        #expect(v.verdicts.map(\.measured) == ["0", "0.2500 (25.00%)"])
    }

    @Test("until: ends the step at the request that makes it hold, which counts in it")
    func untilHolds() {
        var engine = StepEngine(steps: [
            Self.step("a", until: "provider[second] >= 2", expect: Self.expect("requests == 3")),
            Self.step("b", for: Self.s),
        ])
        _ = engine.start(at: 0)
        #expect(engine.deadline == 5 * Self.s, "the timeout is the deadline")
        #expect(Self.ended(engine.finished(Self.record(429, "first"), at: 10 * Self.ms)).isEmpty)
        #expect(Self.ended(engine.finished(Self.record(200, "second"), at: 20 * Self.ms)).isEmpty)
        let actions = engine.finished(Self.record(200, "second"), at: 30 * Self.ms)
        let v = try! #require(Self.ended(actions).first)
        #expect(v.ending == .until)
        #expect(v.end == 30 * Self.ms)
        #expect(v.requests == 3)
        #expect(v.verdicts.map(\.isUntil) == [true, false])
        #expect(v.passed)
        #expect(engine.state == .running(step: 1, since: 30 * Self.ms))
    }

    @Test("until: on a latency percentile holds at the request that makes it hold (read from the builder, not the report's summaries)")
    func untilOnALatency() {
        var engine = StepEngine(steps: [Self.step("a", until: "p99 >= 5ms"), Self.step("b", for: Self.s)])
        _ = engine.start(at: 0)
        for i in 1...20 { #expect(Self.ended(engine.finished(Self.record(200, "p"), at: Nanos(i) * Self.ms)).isEmpty) }
        var slow = Self.record(200, "p")
        slow.latency = 9 * Self.ms
        slow.correctedLatency = 9 * Self.ms
        let v = try! #require(Self.ended(engine.finished(slow, at: 30 * Self.ms)).first)
        #expect(v.ending == .until && v.requests == 21 && v.end == 30 * Self.ms)
    }

    @Test("until: that never holds ends at its timeout as a failure, with the measured figure")
    func untilTimesOut() {
        var engine = StepEngine(steps: [Self.step("a", until: "status[200] >= 1", timeout: 2 * Self.s, expect: Self.expect("requests == 1"))])
        _ = engine.start(at: 0)
        _ = engine.finished(Self.record(503, "second"), at: 100 * Self.ms)
        #expect(engine.advance(to: 2 * Self.s - 1).isEmpty)
        let actions = engine.advance(to: 3 * Self.s)
        let v = try! #require(Self.ended(actions).first)
        #expect(v.ending == .timeout)
        #expect(v.end == 2 * Self.s)
        #expect(v.verdicts.map(\.holds) == [false, true])
        #expect(v.verdicts[0].measured == "0")
        #expect(!v.passed)
        #expect(actions.last == .finished)
    }

    @Test("until: that holds with no requests ends the step as it begins")
    func untilAtOnce() {
        var engine = StepEngine(steps: [Self.step("a", send: 1, until: "status[429] == 0"), Self.step("b", for: Self.s)])
        let actions = engine.start(at: 5)
        #expect(actions.prefix(2) == [.begin(step: 0), .send(1)])
        #expect(Self.ended(actions).map(\.end) == [5])
        #expect(engine.state == .running(step: 1, since: 5))
    }

    @Test("--step-by-key: a step still ends at its for:, then the next waits for next; requests in between belong to no step")
    func stepByKey() {
        var engine = StepEngine(steps: [Self.step("a", for: Self.s), Self.step("b", set: [("one", .hang)], for: Self.s, expect: Self.expect("requests == 1"))],
                                stepByKey: true)
        _ = engine.start(at: 0)
        let actions = engine.advance(to: Self.s)
        #expect(Self.ended(actions).map(\.end) == [Self.s])
        #expect(actions.last == .waitForNext(after: 0))
        #expect(engine.state == .waiting(after: 0))
        #expect(engine.deadline == nil, "no timer runs while waiting")
        #expect(engine.advance(to: 100 * Self.s).isEmpty, "time alone does not move on")
        #expect(engine.finished(Self.record(200, "second"), at: 100 * Self.s).isEmpty)
        #expect(engine.next(at: 200 * Self.s) == [.begin(step: 1), .setBehavior(standIn: "one", behavior: .hang)])
        _ = engine.finished(Self.record(200, "second"), at: 200 * Self.s + 1)
        let last = engine.advance(to: 201 * Self.s)
        let v = try! #require(Self.ended(last).first)
        #expect(v.start == 200 * Self.s)
        #expect(v.requests == 1)
        #expect(v.passed)
        #expect(last.last == .finished, "after the last step there is nothing to wait for")
    }

    @Test("next cuts a running step short and moves on; previous runs the step before again, its set re-applied")
    func nextAndPrevious() {
        var engine = StepEngine(steps: [
            Self.step("a", set: [("one", .healthy)], for: 10 * Self.s),
            Self.step("b", set: [("one", .down)], until: "requests >= 5", timeout: 10 * Self.s),
        ])
        _ = engine.start(at: 0)
        let next = engine.next(at: Self.s)
        #expect(Self.ended(next).map(\.ending) == [.next])
        #expect(Array(next.dropFirst()) == [.begin(step: 1), .setBehavior(standIn: "one", behavior: .down)])
        _ = engine.finished(Self.record(200, "second"), at: 1500 * Self.ms)
        let previous = engine.previous(at: 2 * Self.s)
        let cut = try! #require(Self.ended(previous).first)
        #expect(cut.name == "b" && cut.ending == .next && cut.requests == 1)
        #expect(cut.verdicts.map(\.holds) == [false], "an until cut short before it held has not held")
        #expect(Array(previous.dropFirst()) == [.begin(step: 0), .setBehavior(standIn: "one", behavior: .healthy)])
        #expect(engine.state == .running(step: 0, since: 2 * Self.s))
        #expect(engine.deadline == 12 * Self.s)
    }

    @Test("live verdicts show the running step's expectations over its requests so far")
    func live() {
        var engine = StepEngine(steps: [Self.step("a", for: Self.s, expect: Self.expect("status[200] >= 2"))])
        #expect(engine.liveVerdicts().isEmpty)
        _ = engine.start(at: 0)
        _ = engine.finished(Self.record(200, "second"), at: 1)
        #expect(engine.liveVerdicts().map(\.holds) == [false])
        _ = engine.finished(Self.record(200, "second"), at: 2)
        #expect(engine.liveVerdicts().map(\.holds) == [true])
        #expect(engine.liveVerdicts().map(\.measured) == ["2"])
    }

    @Test("many instant steps run through in a loop, not recursion")
    func manyInstantSteps() {
        let steps = (0..<300).map { Self.step("s\($0)", for: 0) }
        var engine = StepEngine(steps: steps)
        let actions = engine.start(at: 0)
        #expect(Self.ended(actions).count == 300)
        #expect(actions.last == .finished)
    }

    @Test("no steps: finished at the start")
    func noSteps() {
        var engine = StepEngine(steps: [])
        #expect(engine.start(at: 0) == [.finished])
    }
}

/// The JUnit writer on hostile step names: the file stays well-formed and says the names back.
@Suite("Lab test reports")
struct LabTestReportTests {
    @Test("JUnit XML escapes step names and messages, and a failure names the expectation and the measured value")
    func junitEscapes() throws {
        let name = "a <b> & \"c\" 'd'\u{1}\u{7}\ttab"
        var engine = StepEngine(steps: [StepEngineTests.step(name, for: StepEngineTests.s, expect: StepEngineTests.expect("status[200] >= 1"))])
        _ = engine.start(at: 0)
        _ = engine.advance(to: StepEngineTests.s)
        let verdict = try #require(engine.verdicts[0])
        let result = LabTestResult(lab: "lab & <co>", file: "x.yaml", steps: [verdict], stepLocations: [SourceLocation(file: "x.yaml", line: 9)],
                                   stepCount: 1, seconds: 1.5, error: nil)
        let xml = LabTestReport.junit([result], seconds: 1.5)
        #if canImport(FoundationXML)
        let document = try XMLDocument(xmlString: xml, options: [])
        let testcase = try #require(try document.nodes(forXPath: "//testcase").first as? XMLElement)
        #expect(testcase.attribute(forName: "name")?.stringValue == "1. a <b> & \"c\" 'd'\u{FFFD}\u{FFFD}\ttab")
        #expect(testcase.attribute(forName: "line")?.stringValue == "9")
        let failure = try #require(testcase.elements(forName: "failure").first)
        #expect(failure.attribute(forName: "message")?.stringValue == "status[200] >= 1 (measured 0)")
        let suite = try #require(try document.nodes(forXPath: "//testsuite").first as? XMLElement)
        #expect(suite.attribute(forName: "name")?.stringValue == "lab & <co>")
        #expect(suite.attribute(forName: "failures")?.stringValue == "1")
        #endif
        #expect(!xml.contains("\u{1}"))
    }
}

import Foundation
import Testing
import Wire
@testable import Driver

/// The public parser entries the fuzz targets call, each fed seeds and seeded random
/// mutations of them: any trap fails the whole test run, so this test fails by crashing.
@Suite struct ParserEntryTests {
    static let recordSeed = RequestRecord(
        seq: 3, runStartWall: 1_795_769_622_271_926_000, intended: 5_000_123, sent: 5_061_999, method: "POST",
        url: "http://127.0.0.1:8080/http-429", model: "m", status: 200, latency: 812_345, correctedLatency: 874_221,
        ttfb: 700_001, interToken: InterTokenLatency(events: 3, mean: 1000, max: 2000), bytesIn: 5, bytesOut: 7,
        provider: "openai-provider", attempts: [Attempt(provider: "a", outcome: .timeout), Attempt(provider: "openai-provider", status: 200)],
        tokens: TokenUsage(prompt: 1, completion: 2, total: 3)).jsonLine
    static let accessSeed = #"{"time":"2025-06-10T12:00:00.000Z","level":"info","scope":"request","http.method":"POST","http.path":"/http-429?x=1","gen_ai.request.model":"gpt-5","attempts":"a=429,b=timeout"}"#
    static let planSeed = """
    targets: [{url: http://127.0.0.1:8080/a, weight: 3}, http://127.0.0.1:8080/b]
    request: {model: m, message: "hi", stream: false, headers: ["x-lab: 1"]}
    phases:
      - constant: 50/s
        for: 10s
      - ramp: 50/s -> 500/s
        for: 30s
      - steps: [100/s, 200/s]
        every: 5s
      - burst: 50
        every: 1s
        rate: 10/s
    duration: 60s
    max-in-flight: 256
    seed: 1
    """
    /// Bytes a mutation inserts: the ones parsers care about, plus extremes.
    static let interesting: [[UInt8]] = ["1e308", "-", "9999999999999999999999", "\u{0}", "\r\n", "{", "[", "\"", "\\",
                                         "=", ",", ":", "nan", "1e-400", "9999-12-31T23:59:59Z", "\u{FFFF}", "h", "/s", "- "]
        .map { Array($0.utf8) }

    static func mutate(_ seed: [UInt8], _ rng: inout SeededRandom) -> [UInt8] {
        var b = seed
        for _ in 0..<(1 + Int(rng.next() % 4)) {
            let at = b.isEmpty ? 0 : Int(rng.next() % UInt64(b.count + 1))
            switch rng.next() % 5 {
            case 0: if at < b.count { b[at] = UInt8(truncatingIfNeeded: rng.next()) }
            case 1: if at < b.count { b.remove(at: at) }
            case 2: b.insert(contentsOf: interesting[Int(rng.next() % UInt64(interesting.count))], at: at)
            case 3: if at < b.count { b.removeSubrange(at..<min(b.count, at + Int(rng.next() % 16))) }
            default: b.insert(contentsOf: b[at...].prefix(32), at: at)
            }
        }
        return b
    }

    static func runs(_ seed: String, _ count: Int = 1500, _ body: (String) -> Void) {
        var rng = SeededRandom(seed: 42)
        body(seed)
        for _ in 0..<count { body(String(decoding: mutate(Array(seed.utf8), &rng), as: UTF8.self)) }
    }

    @Test func seedsParse() throws {
        _ = try RequestRecord(line: Self.recordSeed)
        guard case .entry = ReplayParser.parseLine(Self.accessSeed) else { Issue.record("access-log seed"); return }
        _ = try PlanFile.parse(Self.planSeed, path: "seed.yaml")
        #expect(FailoverAttempts.parse("a=429,b=timeout").entries.count == 2)
    }

    @Test func recordLinesNeverTrap() {
        var accepted = 0
        Self.runs(Self.recordSeed) { if (try? RequestRecord(line: $0)) != nil { accepted += 1 } }
        var rng = SeededRandom(seed: 7)
        for _ in 0..<1500 { _ = try? RequestRecord(bytes: Self.mutate(Array(Self.recordSeed.utf8), &rng)) }
        #expect(accepted > 0) // some mutations still parse: the test reaches past the JSON parser
        // Nesting far beyond Foundation's limit, and numbers beyond Double.
        for text in [String(repeating: "[", count: 100_000), "{\"seq\":1e999,\"intended_offset_ns\":0,\"url\":\"u\"}",
                     "{\"seq\":0,\"intended_offset_ns\":-1e999,\"url\":\"u\"}"] {
            #expect(throws: RequestRecord.DecodeError.self) { try RequestRecord(line: text) }
        }
    }

    @Test func accessLogLinesNeverTrap() {
        var entries = 0
        Self.runs(Self.accessSeed) { if case .entry = ReplayParser.parseLine($0) { entries += 1 } }
        Self.runs(Self.recordSeed, 500) { _ = ReplayParser.parseLine($0) }
        var rng = SeededRandom(seed: 9)
        for _ in 0..<1500 { _ = ReplayParser.parseLine(bytes: Self.mutate(Array(Self.accessSeed.utf8), &rng)) }
        #expect(entries > 0)
    }

    @Test func plansNeverTrap() {
        Self.runs(Self.planSeed, 600) { _ = try? PlanFile.parse($0, path: "fuzz.yaml") }
    }

    @Test func expectationsAndUnitsNeverTrap() {
        for seed in ["status[429] <= 1", "provider[openai-provider] >= 0.9", "p99.9 < 50ms", "rate >= 100/s", "status[5xx] < 1%"] {
            Self.runs(seed, 400) { _ = try? Expectation(parsing: $0) }
        }
        for seed in ["1m30s", "250us", "12000/m", "3/ms", "1/10s", "0.5x"] {
            Self.runs(seed, 400) {
                _ = try? Units.duration($0)
                _ = try? Units.rate($0)
                _ = Units.parseSpeed($0)
            }
        }
    }

    @Test func attemptsHeadersNeverTrap() {
        Self.runs("http-429-provider=429, openai-provider=timeout,b=connect,c=broken,d=error,e=200", 3000) {
            let parsed = FailoverAttempts.parse($0)
            #expect(parsed.entries.count <= FailoverAttempts.maxEntries)
        }
    }
}

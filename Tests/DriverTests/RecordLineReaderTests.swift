import Foundation
import Testing
@testable import Driver
import Wire

/// The fast reader of our own record lines against the general JSON reader.
@Suite struct RecordLineReaderTests {
    static let wall: Int64 = 1_795_769_622_000_000_000

    /// Records as drive, run and replay write them, with the odd ones.
    static let records: [RequestRecord] = [
        RequestRecord(seq: 0, runStartWall: wall, intended: 0, sent: 120_000, method: "POST", url: "http://127.0.0.1:8080/http-429",
                      model: "gpt-4o-mini", status: 200, latency: 12_345_678, correctedLatency: 12_465_678, ttfb: 6_000_001,
                      bytesIn: 512, bytesOut: 230, provider: "openai-provider",
                      attempts: [Attempt(provider: "http-429-provider", status: 429), Attempt(provider: "openai-provider", status: 200)],
                      tokens: TokenUsage(prompt: 13, completion: 1, total: 14)),
        // Nothing came back: nulls everywhere, a try without a status.
        RequestRecord(seq: 1, runStartWall: wall, intended: 500_000, late: true, url: "http://127.0.0.1:8080/x", error: "Connection refused",
                      attempts: [Attempt(provider: "a", outcome: FailoverAttempts.parse("x=timeout").entries[0].outcome)]),
        // Streamed: ttft and inter-token gaps, tokens partly known.
        RequestRecord(seq: 2, runStartWall: wall, intended: 1_000_000, sent: 1_000_001, method: "GET", url: "http://h/v1/chat/completions",
                      status: 200, latency: 1, correctedLatency: 0, ttfb: 999_999, ttft: 3_000_000,
                      interToken: InterTokenLatency(events: 40, mean: 25_000_000, max: nil), provider: "p",
                      attempts: [], tokens: TokenUsage(prompt: nil, completion: 200, total: nil)),
        // No wall clock (records of a replay of a plan without one).
        RequestRecord(seq: 3, runStartWall: 0, intended: 7_000_123_456, url: "/relative", status: 0),
        // Odd strings: the writer escapes them, so the general reader takes them.
        RequestRecord(seq: 4, runStartWall: wall, intended: 0, method: "P\"ST", url: "http://h/é?q=\"\\\u{1}", model: "naïve",
                      status: 503, error: "tab\there", provider: "ünï"),
        // Large values: past 2^50 ns (2^53 for counts) the general reader's Double decides; the fast one steps aside.
        RequestRecord(seq: (1 << 53) + 1, runStartWall: wall, intended: RequestRecord.maxNanos, sent: RequestRecord.maxNanos,
                      url: "u", status: 999, latency: RequestRecord.maxNanos, correctedLatency: (1 << 50) + 1, ttfb: 1 << 50,
                      bytesIn: (1 << 53) + 1, bytesOut: 0, tokens: TokenUsage(prompt: RequestRecord.maxCount, completion: 0, total: 0)),
        // More tries than the readers keep.
        RequestRecord(seq: 6, runStartWall: wall, intended: 0, url: "u", status: 200,
                      attempts: (0..<300).map { Attempt(provider: "p\($0)", status: 500) }),
    ]

    @Test func bothReadersAgreeOnOurLines() throws {
        for r in Self.records {
            let line = r.jsonLine
            let general = try RequestRecord(line: line)
            let either = try RequestRecord(fastOrGeneral: line)
            #expect(either == general, "\(line)")
            if let fast = RequestRecord.fastRead(Array(line.utf8)) { #expect(fast == general, "\(line)") }
        }
        // The everyday lines go the fast way (or this test would pass on the general reader alone).
        for r in Self.records.prefix(4) {
            #expect(RequestRecord.fastRead(Array(r.jsonLine.utf8)) != nil, "\(r.jsonLine)")
        }
        // Escapes, huge numbers and over-long attempt lists step aside.
        for r in Self.records.suffix(3) {
            #expect(RequestRecord.fastRead(Array(r.jsonLine.utf8)) == nil, "\(r.jsonLine)")
        }
    }

    @Test func linesOfOtherShapesGoToTheGeneralReader() throws {
        let base = Self.records[0].jsonLine
        let variants = [
            base.replacingOccurrences(of: "{\"seq\":0,", with: "{ \"seq\":0,"),           // whitespace
            base.replacingOccurrences(of: "\"bytes_in\":512", with: "\"bytes_in\":5.12e2"), // exponent
            base.replacingOccurrences(of: "\"status\":200,", with: "\"status\":200.0,"),   // a fraction
            base.replacingOccurrences(of: "\"latency_ms\":12.345678", with: "\"latency_ms\":12.3"), // other decimals
            "{\"url\":\"u\",\"seq\":1,\"intended_offset_ns\":5}",                            // another writer's order
            base + " ",                                                                      // trailing space
        ]
        for line in variants {
            #expect(RequestRecord.fastRead(Array(line.utf8)) == nil, "\(line)")
            let general = try RequestRecord(line: line)
            #expect(try RequestRecord(fastOrGeneral: line) == general)
        }
        // Bad values: the fast reader refuses, and the general one's error is the one given.
        let bad = [
            base.replacingOccurrences(of: "\"status\":200,", with: "\"status\":1000,"),
            base.replacingOccurrences(of: "\"seq\":0,", with: "\"seq\":00,"),
            base.replacingOccurrences(of: "\"seq\":0,", with: "\"seq\":99999999999999999999999,"),
            base.replacingOccurrences(of: "\"status\":429}", with: "\"status\":42}"),
            base.replacingOccurrences(of: "\"intended_at\":\"", with: "\"intended_at\":\"x"),
            String(base.dropLast()),
        ]
        for line in bad {
            #expect(RequestRecord.fastRead(Array(line.utf8)) == nil, "\(line)")
            var generalError: RequestRecord.DecodeError?
            do { _ = try RequestRecord(line: line) } catch { generalError = error }
            var eitherError: RequestRecord.DecodeError?
            do { _ = try RequestRecord(fastOrGeneral: line) } catch { eitherError = error }
            #expect(generalError != nil, "\(line)")
            #expect(eitherError == generalError)
        }
    }

    @Test func hostileBytesNeverTrapAndNeverMakeTheReadersDisagree() {
        var state: UInt64 = 14
        func next(_ n: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: state >> 33) % n
        }
        var accepted = 0
        for r in Self.records.prefix(3) {
            let line = Array(r.jsonLine.utf8)
            for _ in 0..<700 {
                var b = line
                switch next(4) {
                case 0: b[next(b.count)] = UInt8(truncatingIfNeeded: next(256))
                case 1: b.removeSubrange(next(b.count)..<b.count)
                case 2: b.insert(UInt8(truncatingIfNeeded: next(256)), at: next(b.count))
                default:
                    // A digit changed: still our shape, other values.
                    let digits = b.indices.filter { b[$0] >= 0x30 && b[$0] <= 0x39 }
                    b[digits[next(digits.count)]] = UInt8(0x30 + next(10))
                }
                #expect(FuzzProperty.recordLineFast(b) == nil)
                if RequestRecord.fastRead(b) != nil { accepted += 1 }
            }
        }
        // Some mutations (the changed digits) stay lines the fast reader takes.
        #expect(accepted > 100)
    }
}

/// The fuzz target's property, here so the Driver tests need not link the fuzz targets.
enum FuzzProperty {
    static func recordLineFast(_ bytes: [UInt8]) -> String? {
        guard let fast = RequestRecord.fastRead(bytes) else { return nil }
        guard let general = try? RequestRecord(bytes: bytes) else { return "fast took a line general refuses" }
        return fast == general ? nil : "disagree: \(fast) vs \(general)"
    }
}

import Driver
import Foundation
import Testing
@testable import Driver

/// One OpenAI-style chunk, as the lab's mock OpenAI writes it.
private func chunk(_ delta: String) -> String {
    #"data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":"# + delta
        + #","logprobs":null,"finish_reason":null}]}"# + "\n\n"
}

private let roleChunk = chunk(#"{"role":"assistant","content":""}"#)
private func contentChunk(_ i: Int) -> String { chunk(#"{"content":" word\#(i) \"content\":\"x\""}"#) }
private let finishChunk = #"data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"# + "\n\n"
private let usageChunk = #"data: {"id":"c1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":4,"total_tokens":9}}"# + "\n\n"
private let done = "data: [DONE]\n\n"

private func scanCount(_ text: String, splits: [Int]) -> Int {
    var scanner = SSEContentScanner()
    let bytes = Array(text.utf8)
    var found = 0
    var start = 0
    for end in splits.map({ min($0, bytes.count) }) + [bytes.count] where end >= start {
        found += bytes[start..<end].withUnsafeBufferPointer { scanner.scan($0.baseAddress!, $0.count) }
        start = end
    }
    return found
}

private let ms: Nanos = 1_000_000

/// The scanner as it was before its skip-ahead fast paths (commit 11f453a), byte by byte: the reference.
private struct ByteByByteScanner {
    var line: UInt8 = 0
    var match: UInt8 = 0

    mutating func scan(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int {
        var found = 0
        var line = self.line, match = self.match
        var i = 0
        while i < n {
            let c = p[i]
            i += 1
            if c == 0x0A || c == 0x0D {
                line = 0
                match = 0
                continue
            }
            if line == SSEContentScanner.skip { continue }
            if line < SSEContentScanner.inData {
                line = c == SSEContentScanner.prefixByte(line) ? line + 1 : SSEContentScanner.skip
                continue
            }
            // Inside a data line.
            switch match {
            case SSEContentScanner.afterColon:
                if c == 0x20 || c == 0x09 { continue }
                match = c == 0x22 ? SSEContentScanner.afterQuote : 0
            case SSEContentScanner.afterQuote:
                if c == 0x22 {
                    match = 0 // "content":"" (the role-only first chunk)
                } else {
                    found += 1
                    match = 0
                    line = SSEContentScanner.skip
                }
            default:
                // The needle's first byte (a quote) appears nowhere else in it, so a mismatch restarts simply.
                if c == SSEContentScanner.needleByte(match) {
                    match += 1
                } else {
                    match = c == 0x22 ? 1 : 0
                }
            }
        }
        self.line = line
        self.match = match
        return found
    }
}

private func referenceCount(_ bytes: [UInt8], splits: [Int]) -> Int {
    var scanner = ByteByByteScanner()
    var found = 0
    var start = 0
    for end in splits.map({ min($0, bytes.count) }) + [bytes.count] where end >= start {
        found += bytes[start..<end].withUnsafeBufferPointer { $0.count == 0 ? 0 : scanner.scan($0.baseAddress!, $0.count) }
        start = end
    }
    return found
}

@Suite(.serialized) struct StreamTimingTests {
    @Test func scannerCountsContentEventsOnly() {
        let stream = roleChunk + (0..<5).map(contentChunk).joined() + finishChunk + usageChunk + done
        #expect(scanCount(stream, splits: []) == 5)
        // Split at every byte, and at every single position: the same count.
        #expect(scanCount(stream, splits: Array(1..<stream.utf8.count)) == 5)
        for cut in 1..<stream.utf8.count {
            #expect(scanCount(stream, splits: [cut]) == 5, "cut at \(cut)")
        }
        // Spaces after the colon, CRLF line ends, comments and other fields.
        let loose = ": keep-alive\r\nevent: message\r\ndata: {\"delta\": {\"content\": \"hi\"}}\r\n\r\n"
            + "data:{\"delta\":{\"content\":null}}\n\n" + "id: 3\ndata: {\"delta\":{\"content\":\"\"}}\n\n"
            + "data: {\"delta\":{\"content\":\"a\"}}\n\n"
        #expect(scanCount(loose, splits: []) == 2)
        // Not a data line, though it holds the pattern.
        #expect(scanCount("event: {\"content\":\"x\"}\n\n", splits: []) == 0)
        #expect(scanCount(" data: {\"content\":\"x\"}\n\n", splits: []) == 0)
    }

    @Test("the scanner with its fast paths counts as the byte-by-byte one did, on random streams cut at random places")
    func scannerAgreesWithTheRule() {
        let pieces = ["data:", "data: ", "\"content\":", "\"content\": ", "\"", "\"\"", "x", "\n", "\r", "\r\n", " ", "\t",
                      "{\"delta\":{", "}", "content", "\"conte", "nt\":", "event: ", ":", "d", "ata:"]
        var rng = SystemRandomNumberGenerator()
        for round in 0..<3000 {
            let text = (0..<Int.random(in: 0...40, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined()
            let bytes = Array(text.utf8)
            let splits = (0..<Int.random(in: 0...4, using: &rng)).map { _ in Int.random(in: 0...max(0, bytes.count), using: &rng) }.sorted()
            #expect(scanCount(text, splits: splits) == referenceCount(bytes, splits: splits), "round \(round): \(text.debugDescription) cut at \(splits)")
        }
    }

    @Test func clockFoldsGaps() {
        var c = StreamClock()
        #expect(c.ttft(since: 0) == nil && c.interToken == nil)
        c.arrived(1, at: 100 * ms)
        #expect(c.interToken == InterTokenLatency(events: 1))
        c.arrived(2, at: 120 * ms) // two events in one callback: gaps 20 ms and 0
        c.arrived(1, at: 150 * ms)
        #expect(c.ttft(since: 90 * ms) == 10 * ms)
        #expect(c.interToken == InterTokenLatency(events: 4, mean: 50 * ms / 3, max: 30 * ms))
    }

    @Test func streamedRecordsRoundTrip() throws {
        let r = RequestRecord(seq: 1, runStartWall: 1_795_769_622_271_926_000, intended: 5, sent: 6, url: "http://h/s",
                              status: 200, latency: 250_000_123, correctedLatency: 250_000_124, ttfb: 1_000_001,
                              ttft: 21_234_567, interToken: InterTokenLatency(events: 10, mean: 20_111_111, max: 25_000_001))
        let line = r.jsonLine
        #expect(try RequestRecord(line: line) == r)
        let json = try JSONValue.parse(line)
        #expect(json["ttft_ms"]?.number == 21.234567)
        #expect(json["itl_ms"]?["events"]?.int == 10)
        #expect(json["itl_ms"]?["max"]?.number == 25.000001)
        let single = RequestRecord(seq: 2, intended: 0, sent: 1, url: "u", status: 200, latency: 9, correctedLatency: 10,
                                   ttft: 5, interToken: InterTokenLatency(events: 1))
        #expect(try RequestRecord(line: single.jsonLine) == single)
        // Not streamed: both null, and read back as nil.
        let plain = RequestRecord(seq: 3, intended: 0, sent: 1, url: "u", status: 200, latency: 9, correctedLatency: 10)
        let plainJSON = try JSONValue.parse(plain.jsonLine)
        #expect(plainJSON["ttft_ms"]?.isNull == true && plainJSON["itl_ms"]?.isNull == true)
        #expect(try RequestRecord(line: plain.jsonLine) == plain)
        // Records written before these fields existed still read.
        let old = try RequestRecord(line: #"{"seq":1,"intended_offset_ns":0,"url":"u","status":200}"#)
        #expect(old.ttft == nil && old.interToken == nil)
        #expect(throws: RequestRecord.DecodeError.self) {
            try RequestRecord(line: #"{"seq":1,"intended_offset_ns":0,"url":"u","itl_ms":{"mean":1}}"#)
        }
    }

    @Test func reportShowsStreamPercentilesOnlyForStreams() throws {
        var b = ReportBuilder()
        for i in 0..<100 {
            b.add(RequestRecord(seq: UInt64(i), intended: Nanos(i) * 10 * ms, sent: Nanos(i) * 10 * ms, url: "u", status: 200,
                                latency: 300 * ms, correctedLatency: 300 * ms,
                                ttft: Nanos(i + 1) * ms, interToken: InterTokenLatency(events: 10, mean: 20 * ms, max: Nanos(20 + i) * ms)))
        }
        let r = b.build()
        #expect(r.streamed == 100 && r.contentEvents == 1000)
        #expect(abs(Double(r.ttft!.p50) / 1e6 - 50) <= 0.1)
        #expect(abs(Double(r.ttft!.max) / 1e6 - 100) <= 0.1)
        #expect(abs(Double(r.interToken!.p99) / 1e6 - 20) <= 0.05)
        #expect(abs(Double(r.interTokenMax!.max) / 1e6 - 119) <= 0.1)
        #expect(b.percentile(90, of: .ttft).map { abs(Double($0) / 1e6 - 90) <= 0.1 } == true)
        let text = r.text
        #expect(text.contains("\nttft "))
        #expect(text.contains("\nitl "))
        #expect(text.contains("\nitl max "))
        #expect(text.contains("streamed   100 responses, 1000 content events"))
        let json = r.json
        #expect(json["ttft_ms"]?["p50"]?.number.map { abs($0 - 50) <= 0.1 } == true)
        #expect(json["itl_ms"]?["count"]?.int == 100)
        #expect(json["itl_max_ms"]?["max"]?.number.map { abs($0 - 119) <= 0.1 } == true)
        #expect(json["streamed"]?.int == 100)
        let e = try Expectation(parsing: "ttft.p99 < 200ms")
        #expect(e.metric == .latency(99, .ttft))
        #expect(e.evaluate(r, b).holds)

        var plain = ReportBuilder()
        plain.add(RequestRecord(seq: 0, intended: 0, sent: 0, url: "u", status: 200, latency: ms, correctedLatency: ms))
        let p = plain.build()
        #expect(p.ttft == nil && p.interToken == nil && p.streamed == 0)
        #expect(!p.text.contains("ttft") && !p.text.contains("itl"))
        #expect(p.json["ttft_ms"] == nil && p.json["itl_ms"] == nil)
        #expect(plain.percentile(50, of: .ttft) == nil)
    }

    /// The test server streams events `delay` apart; the driver must see the same gaps.
    private func streamServer(delay: Double) throws -> TestServer {
        try TestServer { req in
            let sse = [("Content-Type", "text/event-stream")]
            switch req.path {
            case "/stream":
                // Role chunk at once, then 10 content events `delay` apart.
                var parts = [TestServer.StreamPart(pause: 0, text: roleChunk)]
                parts += (0..<10).map { TestServer.StreamPart(pause: delay, text: contentChunk($0)) }
                parts += [.init(pause: 0, text: finishChunk + usageChunk + done)]
                return .init(headers: sse, stream: parts)
            case "/split":
                // Each content event is cut inside `"content":"`, the pause between its halves.
                var parts = [TestServer.StreamPart(pause: 0, text: roleChunk)]
                for i in 0..<10 {
                    let whole = contentChunk(i)
                    let cut = whole.range(of: "\"cont")!.upperBound
                    parts.append(.init(pause: 0, text: String(whole[..<cut])))
                    parts.append(.init(pause: delay, text: String(whole[cut...])))
                }
                parts += [.init(pause: 0, text: finishChunk + done)]
                return .init(headers: sse, stream: parts)
            default:
                return .init(body: #"{"model":"m","choices":[{"message":{"role":"assistant","content":"hi"}}]}"#)
            }
        }
    }

    private func drive(_ url: String, stream: Bool, count: Int) -> [RequestRecord] {
        let got = Collected()
        let config = DriverConfiguration(workload: .closedLoop(concurrency: 1),
                                         mix: RequestMix([RequestSpec.chat(url: url, stream: stream)]), requestLimit: UInt64(count))
        Driver(configuration: config, sink: got.sink).run()
        return got.records.sorted { $0.seq < $1.seq }
    }

    @Test(arguments: ["/stream", "/split"]) func measuresTTFTAndInterTokenLatency(path: String) throws {
        let delay = 0.020
        let server = try streamServer(delay: delay)
        defer { server.stop() }
        let records = drive(server.base + path, stream: true, count: 3)
        #expect(records.count == 3)
        var builder = ReportBuilder()
        for r in records {
            builder.add(r)
            #expect(r.status == 200 && r.error == nil)
            let ttft = try #require(r.ttft, "no ttft on \(path)")
            let itl = try #require(r.interToken)
            #expect(itl.events == 10)
            // The first content event comes `delay` after the head (and the empty role chunk).
            #expect(ttft >= 18 * ms && ttft <= 80 * ms, "ttft \(Double(ttft) / 1e6) ms")
            #expect(ttft >= r.ttfb! + 15 * ms, "ttft \(ttft) vs ttfb \(r.ttfb!)")
            let mean = try #require(itl.mean), max = try #require(itl.max)
            #expect(mean >= 17 * ms && mean <= 40 * ms, "itl mean \(Double(mean) / 1e6) ms")
            #expect(max >= 19 * ms && max <= 120 * ms, "itl max \(Double(max) / 1e6) ms")
            // The last content event falls within the response. ttft and itl run on the
            // driver's clock from its send stamp; latency is libcurl's total time, which starts
            // when libcurl picks the transfer up (a little after that stamp) and is cut to whole
            // microseconds. That gap is allowed for (it failed about 1 run in 10 without).
            #expect(ttft + 9 * mean <= r.latency! + 2 * ms, "ttft \(ttft) + 9 x itl \(mean) vs latency \(r.latency!)")
            // What the recorder writes reads back the same.
            #expect(try RequestRecord(line: r.jsonLine) == r)
        }
        let report = builder.build()
        #expect(report.streamed == 3 && report.contentEvents == 30)
        let text = report.text
        #expect(text.contains("\nttft "), "\(text)")
        #expect(text.contains("\nitl "))
        #expect(text.contains("streamed   3 responses, 30 content events"))
        let p50 = try #require(report.interToken?.p50)
        #expect(p50 >= 17 * ms && p50 <= 40 * ms)
        #expect(report.json["ttft_ms"]?["count"]?.int == 3)
    }

    @Test func aPlainRunHasNoStreamFigures() throws {
        let server = try streamServer(delay: 0.020)
        defer { server.stop() }
        // Not an event stream: nothing, even with "stream": true asked.
        let records = drive(server.base + "/plain", stream: true, count: 3)
        #expect(records.count == 3)
        var builder = ReportBuilder()
        for r in records {
            builder.add(r)
            #expect(r.status == 200)
            #expect(r.ttft == nil && r.interToken == nil)
        }
        let report = builder.build()
        #expect(report.streamed == 0 && report.ttft == nil)
        #expect(!report.text.contains("ttft") && !report.text.contains("itl"))
        #expect(report.json["ttft_ms"] == nil)
    }
}

import NIOCore
import Testing
@testable import Gateway
import Wire

/// A stream's copy (for its usage chunk) keeps its last two whole events and what came of
/// the next, whatever the reads' sizes: small for every open stream, and never missing the
/// usage chunk before `[DONE]`.
@Suite struct StreamTailTests {
    static func feed(_ events: [String], splitAt cuts: [Int], tail: Int = Exchange.streamTail) -> (kept: String, largest: Int) {
        let bytes = Array(events.joined().utf8)
        var copy = ByteBufferAllocator().buffer(capacity: 512)
        var largest = 0
        var start = 0
        for end in (cuts.filter { $0 > 0 && $0 < bytes.count }.sorted() + [bytes.count]) where end > start {
            copy.writeBytes(bytes[start..<end])
            Exchange.keepLastEvents(&copy, tail: tail)
            largest = max(largest, copy.readableBytes)
            start = end
        }
        return (String(decoding: copy.readableBytesView, as: UTF8.self), largest)
    }

    static func event(_ i: Int, crlf: Bool = false) -> String {
        let nl = crlf ? "\r\n" : "\n"
        return "data: {\"choices\":[{\"delta\":{\"content\":\"token \(i)\"}}]}" + nl + nl
    }

    @Test("a 400-token stream read in random pieces: the usage chunk and [DONE] are what is kept, and never more than a few events")
    func usageKept() {
        var rng = SeededRandom(seed: 11)
        for crlf in [false, true] {
            let nl = crlf ? "\r\n" : "\n"
            let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":400}}" + nl + nl
            let done = "data: [DONE]" + nl + nl
            let events = (0..<400).map { Self.event($0, crlf: crlf) } + [usage, done]
            let total = events.joined().utf8.count
            let cuts = (0..<300).map { _ in Int.random(in: 1..<total, using: &rng) }
            let (kept, largest) = Self.feed(events, splitAt: cuts)
            #expect(kept == usage + done)
            // At most two whole events and the part of a third: bounded by three events' size.
            #expect(largest <= 3 * Self.event(399, crlf: crlf).utf8.count + usage.utf8.count, "held \(largest) bytes")
            let read = UsageReader.read(Array(kept.utf8), contentType: "text/event-stream")
            #expect(read.outputTokens == 400 && read.inputTokens == 12)
        }
    }

    @Test("events longer than the tail keep only the tail's worth of their end")
    func longEventsCut() {
        let long = "data: " + String(repeating: "x", count: 10_000) + "\n\n"
        let (kept, largest) = Self.feed([long, long], splitAt: [3_000, 9_000, 15_000], tail: 4096)
        #expect(kept.utf8.count == 4096)
        #expect(largest <= 4096)
        #expect(kept.hasSuffix("x\n\n"))
    }

    @Test("nothing is cut while fewer than three events have ended")
    func shortStreamsWhole() {
        let events = [Self.event(1), Self.event(2)]
        #expect(Self.feed(events, splitAt: [10]).kept == events.joined())
    }
}

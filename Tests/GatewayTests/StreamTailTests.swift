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
            var tap = StreamUsageTap()
            Array(kept.utf8).withUnsafeBytes { tap.feed($0) }
            let read = tap.usage
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

    // MARK: Usage read as events pass (`StreamUsageTap`): no copy of the stream is kept.

    static func tap(_ bytes: [UInt8], splitAt cuts: [Int]) -> (tap: StreamUsageTap, largest: Int) {
        var tap = StreamUsageTap()
        var largest = 0
        var start = 0
        for end in (cuts.filter { $0 > 0 && $0 < bytes.count }.sorted() + [bytes.count]) where end > start {
            bytes[start..<end].withUnsafeBytes { tap.feed($0) }
            largest = max(largest, tap.heldBytes)
            start = end
        }
        return (tap, largest)
    }

    static func modelEvent(_ i: Int, model: String, crlf: Bool) -> String {
        let nl = crlf ? "\r\n" : "\n"
        return "data: {\"model\":\"\(model)\",\"choices\":[{\"delta\":{\"content\":\"token \(i)\"}}]}" + nl + nl
    }

    @Test("usage read as events pass, the stream read in random pieces: tokens and model found, at most one event held, nothing held at the end")
    func usageTapped() {
        var rng = SeededRandom(seed: 12)
        for crlf in [false, true] {
            let nl = crlf ? "\r\n" : "\n"
            let usage = "data: {\"model\":\"gpt-4o-mini-2024\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":400}}" + nl + nl
            let done = "data: [DONE]" + nl + nl
            let events = (0..<400).map { Self.modelEvent($0, model: "gpt-4o-mini", crlf: crlf) } + [usage, done]
            let bytes = Array(events.joined().utf8)
            for round in 0..<20 {
                let cuts = (0..<(round * 40)).map { _ in Int.random(in: 1..<bytes.count, using: &rng) }
                let (tap, largest) = Self.tap(bytes, splitAt: cuts)
                #expect(tap.usage.inputTokens == 12 && tap.usage.outputTokens == 400, "round \(round) crlf \(crlf)")
                // The usage chunk names the model last: its name stands.
                #expect(tap.usage.model == "gpt-4o-mini-2024")
                #expect(largest < usage.utf8.count, "held \(largest) bytes")
                #expect(tap.heldBytes == 0)
            }
        }
    }

    @Test("whole events in each read: nothing is held between reads")
    func wholeEventsHoldNothing() {
        var tap = StreamUsageTap()
        for i in 0..<50 {
            Array(Self.modelEvent(i, model: "m", crlf: false).utf8).withUnsafeBytes { tap.feed($0) }
            #expect(tap.heldBytes == 0)
        }
        #expect(tap.usage.model == "m" && tap.usage.outputTokens == nil)
    }

    @Test("an event longer than the limit is skipped to its end, a blank line cut between reads included; the usage after it is read")
    func longEventSkipped() {
        let long = "data: {\"x\":\"" + String(repeating: "x", count: 10_000) + "\"}\n\n"
        let usage = "data: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":7}}\n\n"
        let bytes = Array((long + long + usage).utf8)
        // Cuts inside the long events, and between the two line feeds that end the first.
        let (tap, largest) = Self.tap(bytes, splitAt: [3_000, 9_000, long.utf8.count - 1, long.utf8.count + 5_000])
        #expect(tap.usage.inputTokens == 3 && tap.usage.outputTokens == 7)
        #expect(StreamUsageTap.limit == 4096)
        #expect(largest <= StreamUsageTap.limit)
        #expect(tap.heldBytes == 0)
        // The same with the blank line cut on a CR.
        let crlfLong = "data: " + String(repeating: "y", count: 6_000) + "\r\n\r\n"
        let crlfBytes = Array((crlfLong + usage).utf8)
        let (t2, _) = Self.tap(crlfBytes, splitAt: [5_000, crlfLong.utf8.count - 1, crlfLong.utf8.count - 2])
        #expect(t2.usage.outputTokens == 7)
    }

    @Test("the model comes from the first event; later events without usage are passed over")
    func usageMentionOnly() {
        var tap = StreamUsageTap()
        Array("data: {\"model\":\"a\"}\n\ndata: {\"model\":\"b\",\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\"\"}}]}\n\n".utf8).withUnsafeBytes { tap.feed($0) }
        #expect(tap.usage.model == "a")
        #expect(tap.usage.outputTokens == nil)
        #expect(Array("{\"usage\":1}".utf8).withUnsafeBufferPointer { StreamUsageTap.mentionsUsage($0) })
        #expect(!Array("{\"usage:1}".utf8).withUnsafeBufferPointer { StreamUsageTap.mentionsUsage($0) })
    }

    @Test("the quick `\"usage\"` test agrees with a plain search on 20,000 random payloads")
    func mentionsUsageAgrees() {
        var rng = SeededRandom(seed: 13)
        let alphabet = Array("\"usagex".utf8)
        let needle = Array("\"usage\"".utf8)
        var found = 0
        for _ in 0..<20_000 {
            var payload = (0..<Int.random(in: 0..<24, using: &rng)).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] }
            // Often the needle, whole or with one byte changed, somewhere in it.
            if Int.random(in: 0..<2, using: &rng) == 0 {
                var piece = needle
                if Bool.random(using: &rng) { piece[Int.random(in: 0..<7, using: &rng)] = alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] }
                payload.insert(contentsOf: piece, at: Int.random(in: 0...payload.count, using: &rng))
            }
            let plain = payload.count >= 7 && (0...(payload.count - 7)).contains { Array(payload[$0..<($0 + 7)]) == needle }
            let quick = payload.withUnsafeBufferPointer { StreamUsageTap.mentionsUsage($0) }
            #expect(quick == plain, "\(String(decoding: payload, as: UTF8.self))")
            if plain { found += 1 }
        }
        #expect(found > 2_000 && found < 20_000)
    }
}

import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import Testing
@testable import Upstreams
import Wire

@Suite("Mock OpenAI: the token clock and raw chunk framing")
struct TokenClockTests {
    @Test("a tick takes exactly the streams due by its clock reading, earliest first, and none due later")
    func dueQueue() {
        var rng = SeededRandom(seed: 15)
        for round in 0..<200 {
            var queue = DueQueue()
            var dues: [Int32: Int64] = [:]
            let n = Int(rng.next() % 300)
            for slot in 0..<n {
                // Many ties, and times on both sides of every reading below.
                let due = Int64(rng.next() % 2_000)
                dues[Int32(slot)] = due
                queue.insert(slot: Int32(slot), due: due)
            }
            var taken: Set<Int32> = []
            var now: Int64 = -1
            while !queue.isEmpty {
                now += Int64(rng.next() % 150)
                var out: [Int32] = []
                queue.popDue(now: now, into: &out)
                var last = Int64.min
                for slot in out {
                    let due = dues[slot]!
                    #expect(due <= now, "round \(round): slot \(slot) due \(due) taken at \(now): early")
                    #expect(due >= last, "round \(round): not earliest first")
                    #expect(!taken.contains(slot))
                    last = due
                    taken.insert(slot)
                }
                // Whatever is left is due after this reading.
                if let earliest = queue.earliest { #expect(earliest > now, "round \(round): \(earliest) left at \(now)") }
            }
            #expect(taken.count == n)
        }
    }

    @Test("the tick for a due time is the first slot boundary at or after it, never before it")
    func tickTime() {
        let r: Int64 = 1_000_000
        var rng = SeededRandom(seed: 7)
        for _ in 0..<10_000 {
            let due = Int64(truncatingIfNeeded: rng.next() >> 2) - (Int64.max >> 3)
            let t = DueQueue.tick(for: due, resolution: r)
            #expect(t >= due && t - due < r && t % r == 0, "due \(due) tick \(t)")
        }
        #expect(DueQueue.tick(for: 5_000_000, resolution: r) == 5_000_000)
        #expect(DueQueue.tick(for: 5_000_001, resolution: r) == 6_000_000)
        #expect(DueQueue.tick(for: -1, resolution: r) == 0)
        #expect(DueQueue.tick(for: .max - 3, resolution: r) == .max)
        #expect(DueQueue.tick(for: 12_345, resolution: 1) == 12_345)
    }

    /// What NIOHTTP1's encoder writes for these body parts of a chunked response, after the head.
    static func encoderBytes(_ parts: [ByteBuffer], end: Bool = true) throws -> [UInt8] {
        let channel = EmbeddedChannel(handler: HTTPResponseEncoder())
        try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        while try channel.readOutbound(as: ByteBuffer.self) != nil {}
        for part in parts { try channel.writeOutbound(HTTPServerResponsePart.body(.byteBuffer(part))) }
        if end { try channel.writeOutbound(HTTPServerResponsePart.end(nil)) }
        var out: [UInt8] = []
        while let b = try channel.readOutbound(as: ByteBuffer.self) { out += b.readableBytesView }
        _ = try channel.finish()
        return out
    }

    @Test("raw chunk framing is byte for byte what NIOHTTP1's encoder writes, at every size-line width")
    func rawFraming() throws {
        let sizes = [1, 2, 9, 10, 15, 16, 17, 255, 256, 257, 4095, 4096, 65535, 65536, 70_001]
        var parts: [ByteBuffer] = []
        var raw = ByteBuffer()
        for (k, size) in sizes.enumerated() {
            let part = ByteBuffer(bytes: (0..<size).map { UInt8(truncatingIfNeeded: $0 &+ k) })
            parts.append(part)
            RawChunk.frame(part, into: &raw)
            var sized = ByteBuffer()
            RawChunk.writeSizeLine(size, into: &sized)
            #expect(String(buffer: sized) == String(size, radix: 16) + "\r\n")
        }
        RawChunk.frame(ByteBuffer(), into: &raw)  // an empty part is not framed
        raw.writeString("0\r\n\r\n")
        #expect(Array(raw.readableBytesView) == (try Self.encoderBytes(parts)))
    }

    /// A stand-in's handler on an embedded channel whose loop's time the test moves.
    final class Served {
        let channel: EmbeddedChannel
        let loop: EmbeddedEventLoop
        var out: [UInt8] = []

        init(standIn: StandIn) throws {
            loop = EmbeddedEventLoop()
            channel = EmbeddedChannel(loop: loop)
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
            try channel.pipeline.syncOperations.addHandler(StandInHandler(standIn: standIn))
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }

        func request(_ body: String, version: String = "HTTP/1.1") throws {
            let text = "POST /v1/chat/completions \(version)\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)"
            try channel.writeInbound(ByteBuffer(string: text))
        }

        /// Everything written so far.
        func drain() throws -> [UInt8] {
            while let b = try channel.readOutbound(as: ByteBuffer.self) { out += b.readableBytesView }
            return out
        }

        var text: String { String(decoding: out, as: UTF8.self) }

        /// The bytes after the response head.
        func body() throws -> [UInt8] {
            let all = try drain()
            let sep: [UInt8] = Array("\r\n\r\n".utf8)
            for i in 0...(all.count - 4) where Array(all[i..<(i + 4)]) == sep { return Array(all[(i + 4)...]) }
            return []
        }
    }

    static func idAndCreated(_ text: String) throws -> (String, Int) {
        let m = try #require(text.firstMatch(of: #/"id":"(chatcmpl-[^"]+)","object":"chat.completion.chunk","created":(\d+)/#))
        return (String(m.1), try #require(Int(m.2)))
    }

    @Test("a shaped stream: raw-framed bytes equal the encoder's framing of the old events, and no token is written before it is due")
    func shapedStreamBytesAndTiming() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let standIn = try await StandIn.start(name: "openai", behavior: .healthy, group: group)
        try await standIn.apply(StandInSetting.parse("ttft 100ms tokens 12 rate 10/s"))
        let body = #"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"What is 2+2?"}]}"#
        // The embedded loop is used, and released, on this thread: no await inside.
        do {
        let served = try Served(standIn: standIn)
        try served.request(body)
        func contentEvents() throws -> Int {
            _ = try served.drain()
            return served.text.components(separatedBy: #""delta":{"content":"#).count - 1
        }
        #expect(try contentEvents() == 0)
        // Token k (from 0) is due at 100 ms + k × 100 ms (no jitter): check just before and at each.
        var ms: Int64 = 0
        for k in 0..<12 {
            let due = 100 + Int64(k) * 100
            served.loop.advanceTime(by: .milliseconds(due - 1 - ms))
            #expect(try contentEvents() == k, "before token \(k) is due")
            served.loop.advanceTime(by: .milliseconds(1))
            ms = due
            #expect(try contentEvents() == k + 1, "when token \(k) is due")
        }
        let got = try served.body()
        let request = try #require(MockOpenAI.parse(Data(body.utf8)))
        let (id, created) = try Self.idAndCreated(served.text)
        let chunk = MockOpenAI.chunkHead(for: request, id: id, created: created)
        let pieces = MockOpenAI.tokenPieces(MockOpenAI.reply(to: request.lastUserMessage))
        // The parts the handler wrote through the encoder before: role, tokens, last token with the end events.
        var parts = [ByteBuffer(string: MockOpenAI.roleEvent(head: chunk))]
        for i in 0..<11 { parts.append(ByteBuffer(string: MockOpenAI.tokenEvent(head: chunk, piece: MockOpenAI.shapedPiece(i, of: pieces)))) }
        parts.append(ByteBuffer(string: MockOpenAI.tokenEvent(head: chunk, piece: MockOpenAI.shapedPiece(11, of: pieces))
            + MockOpenAI.endEvents(head: chunk, request: request, completionTokens: 12, cut: false)))
        #expect(got == (try Self.encoderBytes(parts)))
        #expect(served.text.hasSuffix("data: [DONE]\n\n\r\n0\r\n\r\n"))
        _ = try? served.channel.finish()
        }
        await standIn.stop()
        try await group.shutdownGracefully()
    }

    @Test("a late tick writes every token due by then (each its own chunk, one flush), none ahead; HTTP/1.0 goes through the encoder")
    func lateTickAndOldClients() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let standIn = try await StandIn.start(name: "openai", behavior: .healthy, group: group)
        try await standIn.apply(StandInSetting.parse("ttft 50ms tokens 6 rate 100/s"))
        let body = #"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
        for version in ["HTTP/1.1", "HTTP/1.0"] {
            let served = try Served(standIn: standIn)
            try served.request(body, version: version)
            // Tokens due at 50, 60, 70, 80, 90, 100 ms; the loop only gets to run at 75 ms.
            served.loop.advanceTime(by: .milliseconds(75))
            _ = try served.drain()
            #expect(served.text.components(separatedBy: #""delta":{"content":"#).count - 1 == 3, "\(version)")
            served.loop.advanceTime(by: .milliseconds(25))
            let got = try served.body()
            let request = try #require(MockOpenAI.parse(Data(body.utf8)))
            let (id, created) = try Self.idAndCreated(served.text)
            let chunk = MockOpenAI.chunkHead(for: request, id: id, created: created)
            let pieces = MockOpenAI.tokenPieces(MockOpenAI.reply(to: request.lastUserMessage))
            var events = [MockOpenAI.roleEvent(head: chunk)]
            for i in 0..<5 { events.append(MockOpenAI.tokenEvent(head: chunk, piece: MockOpenAI.shapedPiece(i, of: pieces))) }
            events.append(MockOpenAI.tokenEvent(head: chunk, piece: MockOpenAI.shapedPiece(5, of: pieces))
                + MockOpenAI.endEvents(head: chunk, request: request, completionTokens: 6, cut: false))
            if version == "HTTP/1.1" {
                #expect(got == (try Self.encoderBytes(events.map { ByteBuffer(string: $0) })))
            } else {
                // Not chunked: the bare events, then the connection closes.
                #expect(got == Array(events.joined().utf8))
                #expect(!served.channel.isActive)
            }
            _ = try? served.channel.finish()
        }
        await standIn.stop()
        try await group.shutdownGracefully()
    }

    @Test("today's unshaped stream, with and without a token delay, is the encoder's framing of MockOpenAI.streamEvents")
    func unshapedStream() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let standIn = try await StandIn.start(name: "openai", behavior: .healthy, group: group)
        let body = #"{"model":"m","stream":true,"messages":[{"role":"user","content":"What is 2+2?"}]}"#
        let request = try #require(MockOpenAI.parse(Data(body.utf8)))
        for delay in [0, 20] {
            standIn.setTokenDelay(.milliseconds(delay))
            let served = try Served(standIn: standIn)
            try served.request(body)
            _ = try served.drain()
            let (id, created) = try Self.idAndCreated(served.text)
            let events = MockOpenAI.streamEvents(for: request, id: id, created: created)
            if delay > 0 {
                // Only the first event at once; event k at k delays.
                #expect(served.text.components(separatedBy: "data: ").count - 1 == 1)
                served.loop.advanceTime(by: .milliseconds(Int64(delay) * 2 - 1))
                _ = try served.drain()
                #expect(served.text.components(separatedBy: "data: ").count - 1 == 2)
                served.loop.advanceTime(by: .seconds(5))
            }
            #expect(try served.body() == (try Self.encoderBytes(events.map { ByteBuffer(string: $0) })), "delay \(delay)")
            _ = try? served.channel.finish()
        }
        await standIn.stop()
        try await group.shutdownGracefully()
    }
}

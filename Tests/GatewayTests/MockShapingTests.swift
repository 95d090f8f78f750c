import Foundation
import Testing
import NIOCore
import NIOHTTP1
import NIOPosix
@testable import Gateway
@testable import Lab
@testable import Upstreams
import Wire

/// The mock OpenAI shaped like a model: the pure shaping, the texts that set it, and
/// (over sockets) hundreds of streams at once.
@Suite("Mock OpenAI: model shaping")
struct MockShapingTests {
    @Test("the text form reads, and its description reads back to the same shape")
    func textForms() throws {
        let shape = try ModelShape.parse("ttft 300ms tokens 200 rate 50/s jitter 10%")
        #expect(shape == ModelShape(ttftNanos: 300_000_000, length: .fixed(200), rate: 50, jitterPercent: 10))
        #expect(try ModelShape.parse(shape.description) == shape)
        #expect(try ModelShape.parse("tokens 50-200") == ModelShape(length: .range(50, 200)))
        #expect(try ModelShape.parse("TOKENS max_tokens ttft 1.5s") == ModelShape(ttftNanos: 1_500_000_000, length: .maxTokens))
        #expect(try ModelShape.parse("rate 0.5/s jitter 33.3") == ModelShape(rate: 0.5, jitterPercent: 33.3))
        #expect(try ModelShape.parse("default").isDefault)
        for text in ["ttft 0.001ms", "rate 0.001/s jitter 0.5%", "tokens 1-100000", "ttft 3600s tokens max_tokens rate 100000/s jitter 100%"] {
            let s = try ModelShape.parse(text)
            #expect(try ModelShape.parse(s.description) == s, "\(text) -> \(s)")
        }
    }

    @Test("bad shape text is an error saying what was wrong", arguments: [
        ("rate 0/s", "rate 0/s must be from"), ("rate 1e300/s", "must be from"), ("rate inf", "is not tokens a second"),
        ("rate nan/s", "is not tokens a second"), ("rate -5/s", "must be from"),
        ("tokens 1e12", "give a whole number"), ("tokens 1000000000000", "at most 100000 tokens"),
        ("tokens 99999999999999999999", "give a whole number"), ("tokens 0", "give a whole number"),
        ("tokens 200-50", "low end is above"), ("tokens 1-2-3", "two numbers"), ("tokens -5", "give a whole number"),
        ("ttft infms", "is not a duration"), ("ttft 1e300s", "longer than an hour"), ("ttft -1ms", "is not a duration"),
        ("jitter 101%", "percentage from 0% to 100%"), ("jitter nan%", "percentage"),
        ("ttft 1s ttft 2s", "given twice"), ("ttft", "needs a value"), ("speed 5", "unknown word \"speed\""), ("", "empty"),
    ])
    func badShape(_ text: String, _ expected: String) {
        do {
            let shape = try ModelShape.parse(text)
            Issue.record("\(text) gave \(shape)")
        } catch {
            #expect(error.reason.contains(expected), "\(text): \(error.reason)")
        }
    }

    @Test("inter-token gaps stay within mean ± jitter, repeat for a seed and spread over the range")
    func jitterBounds() {
        let shape = ModelShape(rate: 50, jitterPercent: 10)
        var rng = SeededRandom(seed: 42)
        let gaps = (0..<10_000).map { _ in shape.interTokenNanos(tokenDelayNanos: 0, using: &rng) }
        #expect(gaps.allSatisfy { (18_000_000...22_000_000).contains($0) })
        // Uniform over the band: both ends are reached and the mean is the rate's.
        #expect(gaps.min()! < 18_100_000 && gaps.max()! > 21_900_000)
        let mean = Double(gaps.reduce(0, +)) / Double(gaps.count)
        #expect(abs(mean - 20_000_000) < 100_000)
        var again = SeededRandom(seed: 42)
        #expect((0..<100).map { _ in shape.interTokenNanos(tokenDelayNanos: 0, using: &again) } == Array(gaps.prefix(100)))
        // Without jitter every gap is the mean; without a rate, the stand-in's token delay.
        func gap(_ shape: ModelShape, _ tokenDelay: Int64) -> Int64 { shape.interTokenNanos(tokenDelayNanos: tokenDelay, using: &rng) }
        #expect(gap(ModelShape(rate: 4), 7) == 250_000_000)
        #expect(gap(ModelShape(ttftNanos: 1), 7_000) == 7_000)
        // The extremes do not trap.
        #expect(gap(ModelShape(rate: ModelShape.lowestRate, jitterPercent: 100), .max) <= 2_000_000_000_000)
        #expect(gap(ModelShape(rate: ModelShape.highestRate), 0) == 10_000)
    }

    @Test("time to first token: ttft when set, else one token delay as today")
    func firstToken() {
        #expect(ModelShape(ttftNanos: 300_000_000).firstTokenNanos(tokenDelayNanos: 5) == 300_000_000)
        #expect(ModelShape(length: .fixed(3)).firstTokenNanos(tokenDelayNanos: 5) == 5)
        #expect(ModelShape(rate: 10).firstTokenNanos(tokenDelayNanos: 5) == 100_000_000)
    }

    @Test("output length: fixed, drawn from a range, the request's max_tokens, cut by it")
    func lengths() {
        var rng = SeededRandom(seed: 1)
        func out(_ shape: ModelShape, _ requested: Int?) -> [Int] {
            let r = shape.outputTokens(requested: requested, sentence: 9, using: &rng)
            return [r.count, r.cut ? 1 : 0]
        }
        #expect(out(ModelShape(length: .fixed(200)), nil) == [200, 0])
        #expect(out(ModelShape(length: .fixed(200)), 50) == [50, 1])
        #expect(out(ModelShape(length: .fixed(20)), 50) == [20, 0])
        #expect(out(ModelShape(), nil) == [9, 0])
        #expect(out(ModelShape(length: .maxTokens), 77) == [77, 0])
        #expect(out(ModelShape(length: .maxTokens), nil) == [9, 0])
        let drawn = (0..<2000).map { _ in out(ModelShape(length: .range(50, 200)), nil)[0] }
        #expect(drawn.allSatisfy { (50...200).contains($0) })
        #expect(drawn.contains(50) && drawn.contains(200) && Set(drawn).count > 100)
        // A client's max_tokens: capped, and nonsense ignored rather than trapped on.
        #expect(ModelShape.requestedTokens(1e300) == ModelShape.mostTokens)
        #expect(ModelShape.requestedTokens(.infinity) == nil)
        #expect(ModelShape.requestedTokens(.nan) == nil)
        #expect(ModelShape.requestedTokens(-5) == nil)
        #expect(ModelShape.requestedTokens(0) == nil)
        #expect(ModelShape.requestedTokens(64) == 64)
    }

    @Test("the request's max_tokens, max_completion_tokens and prompt tokens are read")
    func requestReading() throws {
        let a = try #require(MockOpenAI.parse(Data(#"{"model":"m","max_tokens":30,"messages":[{"role":"user","content":"one two three four"}]}"#.utf8)))
        #expect(a.maxTokens == 30)
        // 18 characters: 5 tokens, 4 framing the message, 3 priming the answer.
        #expect(a.promptTokens == 5 + 4 + 3)
        let b = try #require(MockOpenAI.parse(Data(#"{"max_tokens":30,"max_completion_tokens":12,"messages":[]}"#.utf8)))
        #expect(b.maxTokens == 12)
        let c = try #require(MockOpenAI.parse(Data(#"{"max_tokens":1e300,"messages":[]}"#.utf8)))
        #expect(c.maxTokens == ModelShape.mostTokens)
        let d = try #require(MockOpenAI.parse(Data(#"{"max_tokens":"lots","messages":[]}"#.utf8)))
        #expect(d.maxTokens == nil)
        // Content as a list of parts counts like the same text as a string.
        let parts = try #require(MockOpenAI.parse(Data(#"{"messages":[{"role":"user","content":[{"type":"text","text":"one two three four"}]}]}"#.utf8)))
        #expect(parts.promptTokens == 5 + 4 + 3)
        #expect(parts.lastUserMessage == "one two three four")
    }

    @Test("shaped tokens repeat the reply's words, and a shaped completion counts them")
    func shapedText() throws {
        let pieces = MockOpenAI.tokenPieces("2 + 2 equals 4.")
        #expect((0..<7).map { MockOpenAI.shapedPiece($0, of: pieces) }.joined() == "2 + 2 equals 4. 2 +")
        let request = try #require(MockOpenAI.parse(Data(TestClient.seedBody.utf8)))
        let body = MockOpenAI.shapedCompletion(for: request, id: "x", created: 0, count: 7, cut: true)
        let json = try #require((try JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any])
        #expect((json["usage"] as? [String: Any])?["completion_tokens"] as? Int == 7)
        #expect((json["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String == "length")
    }

    @Test("a shaped stream's token events, written from pre-encoded bytes, are byte for byte MockOpenAI.tokenEvent's")
    func tokenEventsFromBytes() throws {
        let request = try #require(MockOpenAI.parse(Data(#"{"model":"m\"x","stream":true,"messages":[{"role":"user","content":"What is 6 x 7?"}]}"#.utf8)))
        let chunk = MockOpenAI.chunkHead(for: request, id: "chatcmpl-1", created: 7)
        for reply in ["6 * 7 equals 42.", "say \"hi\"\n\u{1}", ""] {
            let pieces = MockOpenAI.tokenPieces(reply)
            let stream = StandInHandler.ShapedStream(chunk: chunk, request: request, pieces: pieces, count: 40, cut: false, shape: ModelShape(),
                                                     tokenDelayNanos: 0, rng: SeededRandom(seed: 1), keepAlive: true, due: 0)
            for i in 0..<40 {
                var buffer = ByteBuffer()
                stream.writeToken(i, into: &buffer)
                #expect(String(buffer: buffer) == MockOpenAI.tokenEvent(head: chunk, piece: MockOpenAI.shapedPiece(i, of: pieces)), "token \(i) of \(reply.debugDescription)")
            }
        }
    }

    @Test("a setting text sets the behaviour, the shape, or both")
    func settings() throws {
        #expect(try StandInSetting.parse("503 50% ttft 300ms tokens 20") ==
                StandInSetting(behavior: .serverErrors(status: 503, share: 0.5), shape: ModelShape(ttftNanos: 300_000_000, length: .fixed(20))))
        #expect(try StandInSetting.parse("ttft 300ms") == StandInSetting(shape: ModelShape(ttftNanos: 300_000_000)))
        #expect(try StandInSetting.parse("slow 200ms jitter=50ms") == StandInSetting(behavior: .slow(delayMs: 200, jitterMs: 50)))
        #expect(try StandInSetting.parse("model default") == StandInSetting(shape: ModelShape()))
        #expect(try StandInSetting.parse("healthy model rate 5/s") == StandInSetting(behavior: .healthy, shape: ModelShape(rate: 5)))
        for (text, expected) in [("teapot ttft 1s", "unknown behavior teapot"), ("healthy rate 0/s", "rate 0/s must be from"),
                                 ("model speed 3", "unknown word")] {
            do {
                let s = try StandInSetting.parse(text)
                Issue.record("\(text) gave \(s)")
            } catch {
                #expect(error.reason.contains(expected), "\(text): \(error.reason)")
            }
        }
    }

    @Test("the admin API's model JSON: text or an object of strings and numbers")
    func adminJSON() {
        func read(_ json: String) -> ModelShapeJSON.Read {
            ModelShapeJSON.read((try? JSONSerialization.jsonObject(with: Data(json.utf8), options: .fragmentsAllowed)) ?? NSNull())
        }
        guard case .success(let a) = read(#"{"ttft": 300, "tokens": 200, "rate": "50/s", "jitter": 10}"#) else { Issue.record("object refused"); return }
        #expect(a == ModelShape(ttftNanos: 300_000_000, length: .fixed(200), rate: 50, jitterPercent: 10))
        guard case .success(let b) = read(#""tokens 50-200""#) else { Issue.record("text refused"); return }
        #expect(b == ModelShape(length: .range(50, 200)))
        for (json, expected) in [(#"{"rate": 0}"#, "rate 0"), (#"{"tokens": 1e12}"#, "at most 100000"), (#"{"speed": 1}"#, "unknown key speed"),
                                 (#"{"rate": true}"#, "a string or a number"), (#"{"jitter": false}"#, "a string or a number"), (#"{"ttft": "1 s"}"#, "a string or a number"), ("[1]", "must be a text")] {
            guard case .failure(let message) = read(json) else { Issue.record("\(json) accepted"); continue }
            #expect(message.contains(expected), "\(json): \(message)")
        }
    }

    @Test("a Scenario sets the shape per stand-in; bad values are errors at their file:line")
    func scenario() throws {
        let good = """
        apiVersion: failover-lab.dev/v1alpha1
        kind: Scenario
        metadata: {name: shaped}
        spec:
          standIns:
            - name: openai
              kind: mock-openai
              answers: api.openai.com:443
              model:
                ttft: 300ms
                tokens: 50-200
                rate: 50/s
                jitter: 10%
            - name: other
              kind: mock-openai
              answers: other:443
              model: "tokens max_tokens rate 20/s"
        """
        let config = try loadLab(good)
        let specs = try #require(config.scenario?.standIns)
        #expect(specs[0].model == ModelShape(ttftNanos: 300_000_000, length: .range(50, 200), rate: 50, jitterPercent: 10))
        #expect(specs[1].model == ModelShape(length: .maxTokens, rate: 20))
        let bad = good.replacingOccurrences(of: "rate: 50/s", with: "rate: 1e300/s").replacingOccurrences(of: "tokens max_tokens", with: "tokens 1000000000000")
        do {
            _ = try loadLab(bad, file: "shaped.yaml")
            Issue.record("a bad model was accepted")
        } catch {
            let text = "\(error)"
            #expect(text.contains("shaped.yaml:12: error: spec.standIns[0].model.rate: rate 1e300/s must be from"), "\(text)")
            #expect(text.contains("shaped.yaml:17: error: spec.standIns[1].model: invalid model shape"), "\(text)")
        }
    }
}

extension OverSockets {
    @Suite("Mock OpenAI: shaped streams over loopback")
    struct MockShapingSocketTests {
        /// One stream as a client sees it: when each content event came.
        final class TokenTimer: ChannelInboundHandler, @unchecked Sendable {
            typealias InboundIn = HTTPClientResponsePart
            var start = ContinuousClock.now
            var arrivals: [Duration] = []
            var text = ""
            let done = LatePromise<(arrivals: [Duration], text: String)>()

            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                switch unwrapInboundIn(data) {
                case .head: break
                case .body(let b):
                    let part = String(buffer: b)
                    let now = ContinuousClock.now - start
                    // Content events (not the role chunk's empty content) in this read.
                    let events = part.components(separatedBy: #""delta":{"content":"#).count - 1
                    arrivals += Array(repeating: now, count: events)
                    text += part
                case .end:
                    done.complete(.success((arrivals, text)))
                }
            }

            func errorCaught(context: ChannelHandlerContext, error: Error) { done.complete(.failure(error)) }
        }

        static func stream(port: Int, body: String) async throws -> (arrivals: [Duration], text: String) {
            let timer = TokenTimer()
            let channel = try await ClientBootstrap(group: TestClient.group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(timer)
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/chat/completions")
            head.headers.add(name: "host", value: "127.0.0.1")
            head.headers.add(name: "content-type", value: "application/json")
            head.headers.add(name: "content-length", value: String(body.utf8.count))
            timer.start = ContinuousClock.now
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: body))), promise: nil)
            try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
            let result = try await timer.done.futureResult(on: channel.eventLoop).get()
            try? await channel.close()
            return result
        }

        @Test("300 streams at once: every one gets all its tokens, TTFT and ITL within bounds of ttft 200ms rate 10/s jitter 20%")
        func manyStreams() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)  // one loop: the hardest case for timers
            let standIn = try await StandIn.start(name: "openai", behavior: .healthy, group: group)
            try await standIn.apply(StandInSetting.parse("ttft 200ms tokens 8 rate 10/s jitter 20%"))
            let body = #"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"What is 2+2?"}]}"#
            let results = try await withThrowingTaskGroup(of: (arrivals: [Duration], text: String).self) { tasks in
                for _ in 0..<300 { tasks.addTask { try await Self.stream(port: standIn.port, body: body) } }
                var all: [(arrivals: [Duration], text: String)] = []
                for try await r in tasks { all.append(r) }
                return all
            }
            await standIn.stop()
            try await group.shutdownGracefully()

            #expect(results.count == 300)
            var ttfts: [Duration] = []
            var gaps: [Duration] = []
            for r in results {
                #expect(r.arrivals.count == 8, "a stream got \(r.arrivals.count) tokens")
                #expect(r.text.contains(#""completion_tokens":8"#) && r.text.hasSuffix("data: [DONE]\n\n"))
                guard let first = r.arrivals.first else { continue }
                ttfts.append(first)
                let g = zip(r.arrivals.dropFirst(), r.arrivals).map { $0 - $1 }
                gaps += g
            }
            ttfts.sort()
            gaps.sort()
            let median = ttfts[ttfts.count / 2]
            let mean = gaps.reduce(Duration.zero, +) / gaps.count
            print("300 shaped streams: TTFT min \(ttfts.first!) p50 \(median) max \(ttfts.last!); ITL mean \(mean) p50 \(gaps[gaps.count / 2])")
            // TTFT: never before the 200 ms (timers do not fire early). The upper bounds leave
            // room for a debug build on a shared 2-core machine (300 connections at once).
            #expect(ttfts.first! >= .milliseconds(200), "fastest TTFT \(ttfts.first!)")
            #expect(median <= .milliseconds(900), "median TTFT \(median)")
            #expect(ttfts.last! <= .milliseconds(2500), "slowest TTFT \(ttfts.last!)")
            // ITL: the server draws 80...120 ms gaps (mean 100) and keeps each token's time
            // from the answer's start, so lateness does not add up: the mean and the median
            // the client sees stay near 100 ms; a wrong rate (50 or 200 ms) is far outside.
            #expect(mean >= .milliseconds(85) && mean <= .milliseconds(130), "mean ITL \(mean)")
            #expect(gaps[gaps.count / 2] >= .milliseconds(80) && gaps[gaps.count / 2] <= .milliseconds(130), "median ITL \(gaps[gaps.count / 2])")
            // Each stream's last token is due 200 ms + 7 gaps of at least 80 ms after its start:
            // never earlier, whatever the load; and not much later.
            let lasts = results.compactMap { $0.arrivals.last }.sorted()
            #expect(lasts.first! >= .milliseconds(760), "earliest last token \(lasts.first!)")
            #expect(lasts[lasts.count / 2] <= .milliseconds(1600), "median last token \(lasts[lasts.count / 2])")
        }

        @Test("without a shape the stream is byte for byte today's; a non-streamed shaped answer is cut by max_tokens")
        func defaultsAndNonStreamed() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let standIn = try await StandIn.start(name: "openai", behavior: .healthy, group: group)
            let body = #"{"model":"m","stream":true,"messages":[{"role":"user","content":"What is 2+2?"}]}"#
            let today = try await Self.stream(port: standIn.port, body: body)
            let request = try #require(MockOpenAI.parse(Data(body.utf8)))
            let id = try #require(today.text.firstMatch(of: #/"id":"(chatcmpl-[^"]+)","object":"chat.completion.chunk","created":(\d+)/#))
            let expected = MockOpenAI.streamEvents(for: request, id: String(id.1), created: try #require(Int(id.2))).joined()
            #expect(today.text == expected)

            try await standIn.apply(StandInSetting.parse("ttft 100ms tokens 50 rate 100/s"))
            let start = ContinuousClock.now
            let answer = try await TestClient.post(port: standIn.port, path: "/v1/chat/completions",
                                                   body: #"{"model":"m","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#)
            let took = ContinuousClock.now - start
            #expect(answer.status == 200)
            #expect((answer.json?["usage"] as? [String: Any])?["completion_tokens"] as? Int == 20)
            #expect((answer.json?["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String == "length")
            // 100 ms, then 19 gaps of 10 ms: the whole generation before the answer.
            #expect(took >= .milliseconds(290) && took < .seconds(2), "\(took)")
            // Back to today's answer.
            try await standIn.apply(StandInSetting.parse("model default"))
            let back = try await TestClient.post(port: standIn.port, path: "/v1/chat/completions")
            #expect(back.body.contains("2 + 2 equals 4.") && back.body.contains(#""finish_reason":"stop""#))
            await standIn.stop()
            try await group.shutdownGracefully()
        }
    }
}

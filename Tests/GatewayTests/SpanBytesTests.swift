import Foundation
import Testing
@testable import Gateway
import Wire

/// The exporter encodes a request's spans straight from its trace and log (on the event
/// loop); the dashboard makes `SpanRecord`s of the same trace and log. Both must be the
/// same spans: the direct bytes are compared with the records' encoding, byte for byte.
@Suite struct SpanBytesTests {
    static func recordsEncoding(_ log: RequestLog) -> [UInt8] {
        OTLPProtobuf.request(log.trace!.spans(log: log), serviceName: "svc")
    }

    static func directEncoding(_ log: RequestLog) -> [UInt8] {
        var w = OTLPProtobuf()
        w.requestSpans(log.trace!, log: log)
        return OTLPProtobuf.request(encodedSpans: w.out, serviceName: "svc")
    }

    @Test("a retried request (429 with an eviction, a backoff, then 200): the same bytes as its records")
    func retried() {
        let log = Self.retriedLog()
        #expect(Self.directEncoding(log) == Self.recordsEncoding(log))
        // Not trivially equal: the request's own fields are in both.
        #expect(Self.directEncoding(log).count > 400)
    }

    @Test("2,000 random requests (every optional field absent or present, failures, huge and negative numbers, long and unicode strings): the same bytes")
    func random() {
        var rng = SeededRandom(seed: 42)
        for i in 0..<2_000 {
            let log = Self.randomLog(&rng)
            let direct = Self.directEncoding(log), records = Self.recordsEncoding(log)
            if direct != records {
                Issue.record("request \(i) differs: \(direct.count) bytes direct, \(records.count) from records; \(log)")
                return
            }
        }
    }

    @Test("JSON: the request's spans are the records' JSON spans")
    func json() {
        let log = Self.retriedLog()
        var o: [UInt8] = []
        OTLPJSON.requestSpans(log.trace!, log: log, &o)
        #expect(OTLPJSON.request(encodedSpans: o, serviceName: "svc") == OTLPJSON.request(log.trace!.spans(log: log), serviceName: "svc"))
    }

    @Test("a changed field changes the bytes (the comparison can fail)")
    func sensitive() {
        let log = Self.retriedLog()
        var other = log
        other.trace!.tries[0].status = 503
        var w = OTLPProtobuf()
        w.requestSpans(other.trace!, log: other)
        #expect(OTLPProtobuf.request(encodedSpans: w.out, serviceName: "svc") != Self.recordsEncoding(log))
    }

    @Test("the byte buffer grows from its smallest size and opens room in the middle like an array")
    func protoBytes() {
        var rng = SeededRandom(seed: 7)
        let buffer = ProtoBytes(capacity: 1)
        var model: [UInt8] = []
        for _ in 0..<3_000 {
            switch Int.random(in: 0..<3, using: &rng) {
            case 0:
                let b = UInt8.random(in: 0...255, using: &rng)
                buffer.append(b)
                model.append(b)
            case 1:
                let chunk = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                chunk.withUnsafeBytes { buffer.append($0) }
                model += chunk
            default:
                let at = Int.random(in: 0...model.count, using: &rng), k = Int.random(in: 1...10, using: &rng)
                buffer.open(k, at: at)
                for i in 0..<k { buffer.base[at + i] = 0xEE }
                model.insert(contentsOf: repeatElement(0xEE, count: k), at: at)
            }
        }
        #expect(buffer.array == model)
        #expect(buffer.capacity >= model.count)
    }

    static func retriedLog() -> RequestLog {
        let t0: UInt64 = 1_700_000_000_000_000_000
        var trace = RequestTrace(traceID: TraceID(high: 0x0af7_6519_16cd_43dd, low: 0x8448_eb21_1c80_319c), spanID: SpanID(0x1111),
                                 parentSpanID: SpanID(0x9999), sampled: true, start: t0)
        var first = RequestTrace.Try(spanID: SpanID(0x2222), start: t0 + 1_000_000, provider: "http-429-provider", group: 0, endpoint: "127.0.0.1:9959")
        first.status = 429
        first.end = t0 + 3_000_000
        first.evictions = [.init(time: t0 + 3_000_000, provider: "http-429-provider", reason: "rate", duration: .seconds(60), times: 1)]
        var second = RequestTrace.Try(spanID: SpanID(0x3333), start: t0 + 203_000_000, provider: "openai-provider", group: 1, endpoint: "127.0.0.1:443")
        second.status = 200
        second.end = t0 + 240_000_000
        trace.tries = [first, second]
        trace.backoffs = [.init(spanID: SpanID(0x4444), start: t0 + 3_000_000, end: t0 + 203_000_000)]
        trace.end = t0 + 241_000_000
        var log = RequestLog(time: Date(), route: "retries", endpoint: "127.0.0.1:443", method: "POST", path: "/retries", status: 200,
                             duration: .milliseconds(241), providerKind: "openai", requestModel: "gpt-4o-mini", responseModel: "gpt-4o-mini",
                             inputTokens: 10, outputTokens: 5, provider: "openai-provider", group: 1,
                             attempts: [AttemptRecord(provider: "http-429-provider", group: 0, status: 429), AttemptRecord(provider: "openai-provider", group: 1, status: 200)],
                             error: nil, reason: nil)
        log.routeMatchPath = "/retries"
        log.trace = trace
        return log
    }

    static func randomLog(_ rng: inout SeededRandom) -> RequestLog {
        func maybe<T>(_ v: @autoclosure () -> T) -> T? { Bool.random(using: &rng) ? v() : nil }
        let words = ["", "a", "openai-provider", "é-ü\"\\\n", String(repeating: "x", count: 200), String(repeating: "ünï", count: 60)]
        func word() -> String { words.randomElement(using: &rng)! }
        let ints = [0, 1, 127, 128, 16_383, 16_384, -1, Int.max, Int.min, 429, 200, 503]
        func int() -> Int { ints.randomElement(using: &rng)! }
        let start = UInt64.random(in: 0...UInt64.max, using: &rng)
        var trace = RequestTrace(traceID: TraceID(high: rng.next(), low: rng.next()), spanID: SpanID(rng.next()),
                                 parentSpanID: maybe(SpanID(rng.next())), sampled: true, start: start)
        trace.end = Bool.random(using: &rng) ? start &+ UInt64.random(in: 0...1_000_000_000, using: &rng) : UInt64.random(in: 0...UInt64.max, using: &rng)
        for _ in 0..<Int.random(in: 0...4, using: &rng) {
            var t = RequestTrace.Try(spanID: SpanID(rng.next()), start: UInt64.random(in: 0...UInt64.max, using: &rng),
                                     provider: word(), group: Int.random(in: 0...5, using: &rng), endpoint: word())
            t.end = UInt64.random(in: 0...UInt64.max, using: &rng)
            t.status = maybe([200, 429, 503, 404, 100, 599].randomElement(using: &rng)!)
            t.failure = maybe(word())
            for _ in 0..<Int.random(in: 0...2, using: &rng) {
                t.evictions.append(.init(time: rng.next(), provider: word(), reason: word(),
                                         duration: .milliseconds(Int64.random(in: 0...100_000_000, using: &rng)), times: int()))
            }
            trace.tries.append(t)
        }
        for _ in 0..<Int.random(in: 0...2, using: &rng) {
            trace.backoffs.append(.init(spanID: SpanID(rng.next()), start: UInt64.random(in: 0...UInt64.max, using: &rng),
                                        end: UInt64.random(in: 0...UInt64.max, using: &rng)))
        }
        var attempts: [AttemptRecord] = []
        for _ in 0..<Int.random(in: 0...3, using: &rng) {
            attempts.append(AttemptRecord(provider: word().isEmpty ? "p" : "p-\(int())", group: Int.random(in: 0...3, using: &rng),
                                          status: maybe([200, 429, 503].randomElement(using: &rng)!),
                                          failure: maybe(["connect", "timeout", "broken"].randomElement(using: &rng)!)))
        }
        var log = RequestLog(time: Date(), route: maybe(word()), endpoint: maybe(word()), method: ["POST", "GET", "PATCH"].randomElement(using: &rng)!,
                             path: word(), status: [200, 429, 503, 400, 499, 502].randomElement(using: &rng)!, duration: .milliseconds(5),
                             providerKind: maybe("openai"), requestModel: maybe(word()), responseModel: maybe(word()),
                             inputTokens: maybe(int()), outputTokens: maybe(int()), provider: maybe(word()), group: maybe(Int.random(in: 0...4, using: &rng)),
                             attempts: attempts, error: maybe(word()), reason: maybe(word()))
        log.routeMatchPath = maybe(word())
        log.trace = trace
        return log
    }
}

import Foundation
import Wire

/// What one request's trace is made of, as the exchange records it on its event loop:
/// ids and times only. The spans (names, attributes) are made from it and the request's
/// `RequestLog` later, off the data path (`spans(log:)`), by the exporter and the dashboard alike.
public struct RequestTrace: Sendable {
    public var traceID: TraceID
    /// The server span's id.
    public var spanID: SpanID
    /// The client's span, when its `traceparent` was honoured.
    public var parentSpanID: SpanID?
    /// Recorded (exported, shown): the sampler's decision. Ids are made and sent either way.
    public var sampled: Bool
    /// Unix time in nanoseconds of the request's start and end.
    public var start: UInt64
    public var end: UInt64 = 0
    public var tries: [Try] = []
    public var backoffs: [Backoff] = []

    /// One upstream try: the client span.
    public struct Try: Sendable {
        public var spanID: SpanID
        public var start: UInt64
        public var end: UInt64 = 0
        public var provider: String
        /// 0-based.
        public var group: Int
        public var endpoint: String
        /// The response status, or nil when there was none.
        public var status: Int?
        /// `connect`, `timeout`, `broken`, or why the request ended while this try ran.
        public var failure: String?
        public var evictions: [Eviction] = []
    }

    /// An eviction this try's outcome caused.
    public struct Eviction: Sendable {
        public var time: UInt64
        public var provider: String
        public var reason: String
        public var duration: Duration
        /// How many times in a row the provider has been evicted.
        public var times: Int
    }

    /// The wait between a failed try and the next (the route's retry backoff).
    public struct Backoff: Sendable {
        public var spanID: SpanID
        public var start: UInt64
        public var end: UInt64
    }
}

/// Turns `ContinuousClock` instants into Unix nanoseconds, from one wall-clock reading
/// taken at the request's start (span times must be wall times; the clock reads are the
/// monotonic ones the exchange already makes).
struct TraceClock {
    let wallStart: UInt64
    let origin: ContinuousClock.Instant

    init(wall: Date, origin: ContinuousClock.Instant) {
        // checked: the wall clock, not input; clamped to 0...2^63 by Checked.
        wallStart = UInt64(clamping: Checked.nanoseconds(seconds: wall.timeIntervalSince1970) ?? 0)
        self.origin = origin
    }

    func nanos(_ instant: ContinuousClock.Instant) -> UInt64 {
        let offset = TraceClock.nanos(instant - origin)
        return offset >= 0 ? wallStart &+ UInt64(offset) : wallStart &- min(wallStart, offset.magnitude)
    }

    /// A duration in nanoseconds, saturating.
    static func nanos(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        let (whole, overflow) = s.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return s < 0 ? Int64.min : Int64.max }
        let (sum, overflow2) = whole.addingReportingOverflow(atto / 1_000_000_000)
        return overflow2 ? (s < 0 ? Int64.min : Int64.max) : sum
    }
}


/// Builds one request's `RequestTrace` as the exchange goes: a value the exchange holds
/// only when tracing is on (its every use is behind one nil check).
struct TraceBuilder {
    private(set) var trace: RequestTrace
    private let clock: TraceClock
    private var backoffStart: ContinuousClock.Instant?

    /// Starts the server span: a child of `incoming` when the client sent a valid one.
    init(incoming: TraceParent?, sampler: TraceSampler, wall: Date, origin: ContinuousClock.Instant, random: inout some RandomNumberGenerator) {
        clock = TraceClock(wall: wall, origin: origin)
        var id = incoming?.traceID ?? TraceID(high: random.next(), low: random.next())
        if !id.isValid { id.low = 1 }
        trace = RequestTrace(
            traceID: id, spanID: Self.spanID(&random), parentSpanID: incoming?.spanID,
            sampled: sampler.samples(id, parent: incoming?.sampled), start: clock.wallStart)
    }

    private static func spanID(_ random: inout some RandomNumberGenerator) -> SpanID {
        let v: UInt64 = random.next()
        return SpanID(v == 0 ? 1 : v)
    }

    /// A try starts (ending a backoff, if one ran): its `traceparent` for the upstream.
    mutating func beginTry(provider: String, group: Int, endpoint: String, now: ContinuousClock.Instant, random: inout some RandomNumberGenerator) -> TraceParent {
        let at = clock.nanos(now)
        if let from = backoffStart {
            trace.backoffs.append(.init(spanID: Self.spanID(&random), start: clock.nanos(from), end: at))
            backoffStart = nil
        }
        closeOpenTry(at: at, failure: "abandoned")
        let span = Self.spanID(&random)
        trace.tries.append(.init(spanID: span, start: at, provider: provider, group: group, endpoint: endpoint))
        return TraceParent(traceID: trace.traceID, spanID: span, sampled: trace.sampled)
    }

    /// The current try's outcome: a status, or a failure with no response.
    mutating func endTry(status: Int?, failure: String?, now: ContinuousClock.Instant) {
        let i = trace.tries.count - 1
        guard i >= 0, trace.tries[i].end == 0 else { return }
        // In place: a copy of the try taken out and put back costs retains and a uniqueness check.
        trace.tries[i].status = status
        trace.tries[i].failure = failure
        trace.tries[i].end = clock.nanos(now)
    }

    /// The outcome of the current try (ended or not) evicted a provider.
    mutating func evicted(provider: String, reason: String, duration: Duration, times: Int, now: ContinuousClock.Instant) {
        guard !trace.tries.isEmpty else { return }
        trace.tries[trace.tries.count - 1].evictions.append(.init(time: clock.nanos(now), provider: provider, reason: reason, duration: duration, times: times))
    }

    /// A retry backoff starts; it ends when the next try starts (or the request ends).
    mutating func beginBackoff(now: ContinuousClock.Instant) {
        backoffStart = now
    }

    /// The request ended: closes what is open. A successful try's span lasts to the
    /// response's end; one cut short says why.
    mutating func finish(now: ContinuousClock.Instant, reason: String?) -> RequestTrace {
        let at = clock.nanos(now)
        if let from = backoffStart {
            trace.backoffs.append(.init(spanID: SpanID(trace.spanID.value ^ 0x5A5A_5A5A_5A5A_5A5A), start: clock.nanos(from), end: at))
            backoffStart = nil
        }
        if var last = trace.tries.last {
            if last.end == 0 || last.status.map({ $0 < 400 }) == true {
                if last.status == nil && last.failure == nil { last.failure = reason ?? "abandoned" }
                last.end = at
            }
            trace.tries[trace.tries.count - 1] = last
        }
        trace.end = max(at, trace.start)
        return trace
    }

    private mutating func closeOpenTry(at: UInt64, failure: String) {
        guard var last = trace.tries.last, last.end == 0 else { return }
        if last.status == nil && last.failure == nil { last.failure = failure }
        last.end = at
        trace.tries[trace.tries.count - 1] = last
    }
}

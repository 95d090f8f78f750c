import Foundation
import NIOConcurrencyHelpers
import Wire

/// Sends finished requests' spans to an OTLP/HTTP collector from a thread of its own.
/// An event loop encodes a request's spans itself (into its own scratch buffer, no lock
/// held) and appends the bytes to the batch being filled, under a lock held for a copy;
/// a batch that would pass `maxBatch` spans is closed and the thread woken. The thread
/// wraps each batch in an `ExportTraceServiceRequest` and posts it. When the collector is
/// slow, down or refuses, spans are dropped and counted, and the data path never waits.
public final class TraceExporter: Sendable {
    public let options: TracingOptions
    private let endpoint: OTLPEndpoint
    /// Encoded spans of whole requests: protobuf `ScopeSpans.spans` fields one after the
    /// other, or JSON span objects separated by commas.
    private struct Batch {
        var bytes: [UInt8] = []
        var spans = 0
    }
    private struct State {
        /// Closed batches, oldest first.
        var ready: [Batch] = []
        /// The batch the loops append to.
        var filling = Batch()
        /// Spans in `ready` and `filling`, against `maxQueue`.
        var queuedSpans = 0
        var stopping = false
        var dropped: UInt64 = 0
        var exported: UInt64 = 0
        var failedRequests: UInt64 = 0
        var warned = false
    }
    private let state = NIOLockedValueBox(State())
    /// The connection to the collector: used by the exporter's thread only.
    private nonisolated(unsafe) let client: OTLPClient
    /// Wakes the thread early: a batch is full, or shutdown.
    private let wake = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    /// Where the one warning goes (stderr; tests catch it).
    private let warn: @Sendable (String) -> Void

    public init(options: TracingOptions, endpoint: OTLPEndpoint, warn: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) {
        self.options = options
        self.endpoint = endpoint
        self.warn = warn
        self.client = OTLPClient(endpoint: endpoint, contentType: options.encoding.contentType, headers: options.headers, timeout: options.exportTimeout)
        let thread = Thread { [self] in run() }
        thread.name = "otlp-exporter"
        thread.start()
    }

    /// Counts of spans: sent and acknowledged, and dropped (queue full, collector down or refusing).
    public var counts: (exported: UInt64, dropped: UInt64, failedRequests: UInt64) {
        state.withLockedValue { ($0.exported, $0.dropped, $0.failedRequests) }
    }

    /// Queues a finished request's spans; called on an event loop, so it never blocks on
    /// I/O. `scratch` is the loop's own buffer, reused from request to request.
    func submit(_ log: RequestLog, scratch: ProtoBytes) {
        guard let trace = log.trace, trace.sampled else { return }
        let n = 1 + trace.tries.count + trace.backoffs.count
        scratch.count = 0
        let json = options.encoding == .json
        if json {
            var o: [UInt8] = []
            OTLPJSON.requestSpans(trace, log: log, &o)
            o.withUnsafeBytes { scratch.append($0) }
        } else {
            var w = OTLPProtobuf(buffer: scratch)
            w.requestSpans(trace, log: log)
        }
        let maxBatch = options.maxBatch, maxQueue = options.maxQueue
        let (full, warnNow) = state.withLockedValue { s -> (Bool, Bool) in
            guard !s.stopping, s.queuedSpans + n <= maxQueue else {
                s.dropped &+= UInt64(n)
                let first = !s.warned
                s.warned = true
                return (false, first)
            }
            var closed = false
            if s.filling.spans > 0 && s.filling.spans + n > maxBatch {
                var next = Batch()
                next.bytes.reserveCapacity(s.filling.bytes.count)
                swap(&next, &s.filling)
                s.ready.append(next)
                closed = true
            }
            if json && s.filling.spans > 0 { s.filling.bytes.append(0x2C) }
            s.filling.bytes.append(contentsOf: scratch.bytes)
            s.filling.spans += n
            s.queuedSpans += n
            return (closed, false)
        }
        if full { wake.signal() }
        if warnNow { warn("traces: the export queue to \(endpoint) is full (the collector is slow or down); spans are dropped and counted in failover_trace_spans_dropped_total") }
    }

    /// Sends what is queued (waiting at most `timeout`), then ends the thread.
    public func shutdown(timeout: Duration = .seconds(3)) {
        let first = state.withLockedValue { s -> Bool in
            defer { s.stopping = true }
            return !s.stopping
        }
        guard first else { return }
        wake.signal()
        let ms = TraceClock.nanos(timeout) / 1_000_000
        _ = done.wait(timeout: .now() + .milliseconds(Int(clamping: ms)))
    }

    private func run() {
        let delayMs = Int(clamping: TraceClock.nanos(options.scheduleDelay) / 1_000_000)
        while true {
            // Woken early, only the closed batches go; at the schedule's delay (or at the
            // end) the one being filled goes too.
            let timedOut = wake.wait(timeout: .now() + .milliseconds(max(delayMs, 1))) == .timedOut
            let (batches, stopping) = state.withLockedValue { s -> ([Batch], Bool) in
                var out: [Batch] = []
                swap(&out, &s.ready)
                if (timedOut || s.stopping) && s.filling.spans > 0 {
                    var last = Batch()
                    swap(&last, &s.filling)
                    out.append(last)
                }
                return (out, s.stopping)
            }
            for batch in batches {
                export(batch)
                state.withLockedValue { $0.queuedSpans -= batch.spans }
            }
            if stopping {
                let empty = state.withLockedValue { $0.ready.isEmpty && $0.filling.spans == 0 }
                if empty {
                    done.signal()
                    return
                }
            }
        }
    }

    private func export(_ batch: Batch) {
        let json = options.encoding == .json
        let prefix = json ? OTLPJSON.requestPrefix(serviceName: options.serviceName)
                          : OTLPProtobuf.requestPrefix(spansLength: batch.bytes.count, serviceName: options.serviceName)
        let suffix = json ? OTLPJSON.requestSuffix : []
        let result = prefix.withUnsafeBytes { p in
            batch.bytes.withUnsafeBytes { b in
                suffix.withUnsafeBytes { x in client.post([p, b, x]) }
            }
        }
        let warnNow = state.withLockedValue { s -> Bool in
            switch result {
            case .success:
                s.exported &+= UInt64(batch.spans)
                return false
            case .failure:
                s.dropped &+= UInt64(batch.spans)
                s.failedRequests &+= 1
                defer { s.warned = true }
                return !s.warned
            }
        }
        if warnNow, case .failure(let why) = result {
            warn("traces: export to \(endpoint) failed (\(why)); spans are dropped and counted in failover_trace_spans_dropped_total")
        }
    }
}

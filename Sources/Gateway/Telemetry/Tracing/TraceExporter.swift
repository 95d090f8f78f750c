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
    /// Wakes the thread early: a batch is full, or shutdown.
    private let wake = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    /// Where the one warning goes (stderr; tests catch it).
    private let warn: @Sendable (String) -> Void

    public init(options: TracingOptions, endpoint: OTLPEndpoint, warn: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) {
        self.options = options
        self.endpoint = endpoint
        self.warn = warn
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
        let body = options.encoding == .json
            ? OTLPJSON.request(encodedSpans: batch.bytes, serviceName: options.serviceName)
            : OTLPProtobuf.request(encodedSpans: batch.bytes, serviceName: options.serviceName)
        let result = OTLPPost.send(body: body, contentType: options.encoding.contentType, headers: options.headers,
                                   to: endpoint, timeout: options.exportTimeout)
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

/// One blocking HTTP/1.1 POST, on the exporter's thread only.
enum OTLPPost {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func send(body: [UInt8], contentType: String, headers: [(String, String)], to endpoint: OTLPEndpoint, timeout: Duration) -> Result<Int, Failure> {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(endpoint.host, String(endpoint.port), &hints, &list)
        guard rc == 0, let first = list else {
            return .failure(Failure(description: "cannot resolve \(endpoint.host): \(String(cString: gai_strerror(rc)))"))
        }
        defer { freeaddrinfo(list) }
        var fd: Int32 = -1
        var lastError = "no address"
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        let micros = TraceClock.nanos(timeout) / 1000
        var tv = timeval(tv_sec: Int(clamping: micros / 1_000_000), tv_usec: Int(clamping: micros % 1_000_000))
        while let ai = cursor {
            let s = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
            if s >= 0 {
                // On Linux the send timeout bounds connect(2) too.
                setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                if connect(s, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 {
                    fd = s
                    break
                }
                lastError = String(cString: strerror(errno))
                close(s)
            }
            cursor = ai.pointee.ai_next
        }
        guard fd >= 0 else { return .failure(Failure(description: "connect: \(lastError)")) }
        defer { close(fd) }
        var head = "POST \(endpoint.path) HTTP/1.1\r\nhost: \(endpoint.host):\(endpoint.port)\r\ncontent-type: \(contentType)\r\ncontent-length: \(body.count)\r\nconnection: close\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        head += "\r\n"
        var request = Array(head.utf8)
        request += body
        var offset = 0
        while offset < request.count {
            let n = request.withUnsafeBytes { write(fd, $0.baseAddress! + offset, request.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(Failure(description: "send: \(String(cString: strerror(errno)))"))
            }
            offset += n
        }
        // The status line is all that is read; the rest (up to 64 KiB) is drained so the
        // collector sees a clean close.
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while response.count < 64 * 1024 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, 4096) }
            if n < 0 {
                if errno == EINTR { continue }
                if response.isEmpty { return .failure(Failure(description: "no answer: \(String(cString: strerror(errno)))")) }
                break
            }
            if n == 0 { break }
            response += buffer[0..<n]
            if response.firstRange(of: Array("\r\n\r\n".utf8)) != nil { break }
        }
        // `HTTP/1.1 200 OK`
        guard response.count >= 12, response.starts(with: Array("HTTP/1.".utf8)),
              let status = Int(String(decoding: response[9..<12], as: UTF8.self)) else {
            return .failure(Failure(description: "not an HTTP answer"))
        }
        guard (200..<300).contains(status) else { return .failure(Failure(description: "the collector answered \(status)")) }
        return .success(status)
    }
}

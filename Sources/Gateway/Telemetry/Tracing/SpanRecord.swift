import Foundation

/// One span as OTLP carries it: what the exporter encodes and the dashboard draws.
public struct SpanRecord: Sendable, Equatable {
    public enum Kind: Int, Sendable {
        case `internal` = 1, server = 2, client = 3
    }
    public enum Value: Sendable, Equatable {
        case string(String), int(Int64), double(Double), bool(Bool)
    }
    public struct Attribute: Sendable, Equatable {
        public var key: String
        public var value: Value
        public init(_ key: String, _ value: Value) {
            self.key = key
            self.value = value
        }
    }
    public struct Event: Sendable, Equatable {
        public var time: UInt64
        public var name: String
        public var attributes: [Attribute]
    }

    public var traceID: TraceID
    public var spanID: SpanID
    public var parentSpanID: SpanID?
    public var name: String
    public var kind: Kind
    /// Unix nanoseconds.
    public var start: UInt64
    public var end: UInt64
    public var attributes: [Attribute] = []
    public var events: [Event] = []
    /// OTLP status ERROR (4xx, 5xx, no response); UNSET otherwise.
    public var isError = false
    public var statusMessage: String?

    /// The value of an attribute, for the dashboard and tests.
    public subscript(_ key: String) -> Value? {
        attributes.first { $0.key == key }?.value
    }
}

extension RequestTrace {
    /// The spans of the request `log` describes: the server span (named like agentgateway's,
    /// `METHOD route-path`, with the access log's fields), then one client span per try
    /// (its evictions as `failover.eviction` events) and one `retry backoff` span per wait.
    public func spans(log: RequestLog) -> [SpanRecord] {
        var server = SpanRecord(traceID: traceID, spanID: spanID, parentSpanID: parentSpanID,
                                name: "\(log.method) \(log.routeMatchPath ?? log.path)", kind: .server, start: start, end: max(end, start))
        var a: [SpanRecord.Attribute] = []
        func add(_ key: String, _ v: String?) { if let v { a.append(.init(key, .string(v))) } }
        func add(_ key: String, _ v: Int?) { if let v { a.append(.init(key, .int(Int64(v)))) } }
        add("http.method", log.method)
        add("http.path", log.path)
        add("http.status", log.status)
        add("route", log.route)
        add("endpoint", log.endpoint)
        add("gen_ai.provider.name", log.providerKind)
        add("gen_ai.request.model", log.requestModel)
        add("gen_ai.response.model", log.responseModel)
        add("gen_ai.usage.input_tokens", log.inputTokens)
        add("gen_ai.usage.output_tokens", log.outputTokens)
        add("provider", log.provider)
        add("group", log.group.map { $0 + 1 })
        if !log.attempts.isEmpty { add("attempts", log.failoverHeader) }
        add("retry.attempt", log.attempts.count > 1 ? log.attempts.count - 1 : nil)
        add("reason", log.reason)
        add("error", log.error)
        server.attributes = a
        if log.status >= 400 {
            server.isError = true
            server.statusMessage = log.error ?? log.reason
        }
        var out = [server]
        for (i, t) in tries.enumerated() {
            var span = SpanRecord(traceID: traceID, spanID: t.spanID, parentSpanID: spanID,
                                  name: "\(log.method) \(t.provider)", kind: .client, start: t.start, end: max(t.end, t.start))
            span.attributes = [
                .init("provider", .string(t.provider)),
                .init("group", .int(Int64(t.group + 1))),
                .init("endpoint", .string(t.endpoint)),
                .init("retry.attempt", .int(Int64(i))),
            ]
            if let status = t.status { span.attributes.append(.init("http.status", .int(Int64(status)))) }
            if let failure = t.failure { span.attributes.append(.init("error.type", .string(failure))) }
            if t.status.map({ $0 >= 400 }) ?? true {
                span.isError = true
                span.statusMessage = t.status.map { "HTTP \($0)" } ?? (t.failure ?? "no response")
            }
            span.events = t.evictions.map { e in
                SpanRecord.Event(time: e.time, name: "failover.eviction", attributes: [
                    .init("provider", .string(e.provider)),
                    .init("reason", .string(e.reason)),
                    .init("duration_s", .double(e.duration.seconds)),
                    .init("times", .int(Int64(e.times))),
                ])
            }
            out.append(span)
        }
        for b in backoffs {
            var span = SpanRecord(traceID: traceID, spanID: b.spanID, parentSpanID: spanID,
                                  name: "retry backoff", kind: .internal, start: b.start, end: max(b.end, b.start))
            span.attributes = [.init("duration_s", .double(Double(max(b.end, b.start) - b.start) / 1e9))]
            out.append(span)
        }
        return out
    }
}

import Foundation
import Wire

/// A finished request's spans written straight into OTLP bytes, on the event loop that
/// finished it: the same spans as `RequestTrace.spans(log:)` makes (the dashboard's
/// records), without the records, their attribute arrays and the strings of their names
/// in between. `SpanBytesTests` holds the two to the same bytes.
extension OTLPProtobuf {
    /// Appends each span of the request as a `ScopeSpans.spans` field (2).
    mutating func requestSpans(_ trace: RequestTrace, log: RequestLog) {
        serverSpan(trace, log: log)
        for (i, t) in trace.tries.enumerated() { clientSpan(t, index: i, trace: trace, method: log.method) }
        for b in trace.backoffs { backoffSpan(b, trace: trace) }
    }

    private mutating func serverSpan(_ trace: RequestTrace, log: RequestLog) {
        message(2) { w in
            w.id(1, trace.traceID.high, trace.traceID.low)
            w.id(2, trace.spanID.value, nil)
            if let parent = trace.parentSpanID { w.id(4, parent.value, nil) }
            w.joined(5, log.method, log.routeMatchPath ?? log.path)
            w.tag(6, 0); w.varint(UInt64(SpanRecord.Kind.server.rawValue))
            w.fixed64(7, trace.start)
            w.fixed64(8, max(trace.end, trace.start))
            w.keyValue(9, "http.method", .string(log.method))
            w.keyValue(9, "http.path", .string(log.path))
            w.keyValue(9, "http.status", .int(Int64(log.status)))
            w.optional("route", log.route)
            w.optional("endpoint", log.endpoint)
            w.optional("gen_ai.provider.name", log.providerKind)
            w.optional("gen_ai.request.model", log.requestModel)
            w.optional("gen_ai.response.model", log.responseModel)
            w.optional("gen_ai.usage.input_tokens", log.inputTokens)
            w.optional("gen_ai.usage.output_tokens", log.outputTokens)
            w.optional("provider", log.provider)
            w.optional("group", log.group.map { $0 + 1 })
            if !log.attempts.isEmpty {
                w.message(9) { w in  // KeyValue
                    w.string(1, "attempts")
                    w.message(2) { w in  // AnyValue
                        w.message(1) { w in  // string_value
                            for (i, a) in log.attempts.enumerated() {
                                FailoverAttempts.write(provider: a.provider, outcome: a.outcome, first: i == 0, into: &w)
                            }
                        }
                    }
                }
            }
            w.optional("retry.attempt", log.attempts.count > 1 ? log.attempts.count - 1 : nil)
            w.optional("reason", log.reason)
            w.optional("error", log.error)
            if log.status >= 400 {
                w.message(15) { w in
                    if let m = log.error ?? log.reason { w.string(2, m) }
                    w.tag(3, 0); w.varint(2)  // STATUS_CODE_ERROR
                }
            }
        }
    }

    private mutating func clientSpan(_ t: RequestTrace.Try, index: Int, trace: RequestTrace, method: String) {
        message(2) { w in
            w.id(1, trace.traceID.high, trace.traceID.low)
            w.id(2, t.spanID.value, nil)
            w.id(4, trace.spanID.value, nil)
            w.joined(5, method, t.provider)
            w.tag(6, 0); w.varint(UInt64(SpanRecord.Kind.client.rawValue))
            w.fixed64(7, t.start)
            w.fixed64(8, max(t.end, t.start))
            w.keyValue(9, "provider", .string(t.provider))
            w.keyValue(9, "group", .int(Int64(t.group) &+ 1))
            w.keyValue(9, "endpoint", .string(t.endpoint))
            w.keyValue(9, "retry.attempt", .int(Int64(index)))
            w.optional("http.status", t.status)
            w.optional("error.type", t.failure)
            for e in t.evictions {
                w.message(11) { w in
                    w.fixed64(1, e.time)
                    w.string(2, "failover.eviction")
                    w.keyValue(3, "provider", .string(e.provider))
                    w.keyValue(3, "reason", .string(e.reason))
                    w.keyValue(3, "duration_s", .double(e.duration.seconds))
                    w.keyValue(3, "times", .int(Int64(e.times)))
                }
            }
            if t.status.map({ $0 >= 400 }) ?? true {
                w.message(15) { w in
                    if let status = t.status {
                        w.message(2) { w in
                            w.framing { p in
                                p[0] = 0x48; p[1] = 0x54; p[2] = 0x54; p[3] = 0x50; p[4] = 0x20  // "HTTP "
                                return 5
                            }
                            w.decimal(status)
                        }
                    } else {
                        w.string(2, t.failure ?? "no response")
                    }
                    w.tag(3, 0); w.varint(2)
                }
            }
        }
    }

    private mutating func backoffSpan(_ b: RequestTrace.Backoff, trace: RequestTrace) {
        message(2) { w in
            let end = max(b.end, b.start)
            w.id(1, trace.traceID.high, trace.traceID.low)
            w.id(2, b.spanID.value, nil)
            w.id(4, trace.spanID.value, nil)
            w.string(5, "retry backoff")
            w.tag(6, 0); w.varint(UInt64(SpanRecord.Kind.internal.rawValue))
            w.fixed64(7, b.start)
            w.fixed64(8, end)
            w.keyValue(9, "duration_s", .double(Double(end - b.start) / 1e9))
        }
    }

    /// A string field of `a`, a space and `b`, with no string made of them.
    func joined(_ field: UInt64, _ a: String, _ b: String) {
        tag(field, 2)
        varint(UInt64(a.utf8.count + 1 + b.utf8.count))
        appendUTF8(a)
        buffer.append(0x20)
        appendUTF8(b)
    }

    /// An attribute (field 9) when there is a value.
    mutating func optional(_ key: String, _ value: String?) {
        if let value { keyValue(9, key, .string(value)) }
    }

    mutating func optional(_ key: String, _ value: Int?) {
        if let value { keyValue(9, key, .int(Int64(value))) }
    }

    /// The decimal digits of `value`, as `"\(value)"` writes them.
    func decimal(_ value: Int) {
        framing { p in
            var n = 0
            if value < 0 { p[0] = 0x2D; n = 1 }
            var rest = value.magnitude
            let first = n
            repeat {
                p[n] = 0x30 + UInt8(rest % 10)
                rest /= 10
                n += 1
            } while rest > 0
            // Written least significant first: turned around.
            var a = first, b = n - 1
            while a < b {
                (p[a], p[b]) = (p[b], p[a])
                a += 1
                b -= 1
            }
            return n
        }
    }
}

extension OTLPJSON {
    /// The request's spans as JSON span objects, comma-separated (the dashboard's records,
    /// encoded; JSON is the slow, readable path and is not tuned).
    static func requestSpans(_ trace: RequestTrace, log: RequestLog, _ o: inout [UInt8]) {
        for (i, span) in trace.spans(log: log).enumerated() {
            if i > 0 { o.append(0x2C) }
            encode(span, &o)
        }
    }
}

import Foundation
import Wire

/// One upstream try of a request: which provider, and what it gave.
public struct AttemptRecord: Sendable, Hashable {
    public var provider: String
    public var group: Int
    /// The HTTP status, or nil when there was no response.
    public var status: Int?
    /// `connect`, `timeout`, `broken` when there was no (whole) response.
    public var failure: String?
    /// The balancer's decision counter when this try's provider was chosen.
    public var sequence: UInt64 = 0
    /// This try was the half-open probe.
    public var probe = false
    /// Every provider was out and this try failed open to group 1.
    public var failOpen = false

    /// `name=429`, `name=connect`: the form of `x-failover-attempts`.
    public var headerForm: String { FailoverAttempts.value([FailoverAttempts.Entry(provider: provider, outcome: outcome)]) }

    /// This try as `x-failover-attempts` states it: the status, else the failure word
    /// (`error` when there is neither).
    public var outcome: FailoverAttempts.Outcome {
        if let status { return .status(status) }
        return FailoverAttempts.Outcome(word: failure ?? "error")
    }
}

/// Everything the access log says about one request. Secrets are never stored here.
public struct RequestLog: Sendable {
    public var time: Date
    public var route: String?
    /// host:port actually used for the last try.
    public var endpoint: String?
    public var method: String
    public var path: String
    public var status: Int
    public var duration: Duration
    public var providerKind: String?
    public var requestModel: String?
    public var responseModel: String?
    public var inputTokens: Int?
    public var outputTokens: Int?
    /// The provider that gave the response (the last try's).
    public var provider: String?
    /// 0-based group of that provider.
    public var group: Int?
    public var attempts: [AttemptRecord]
    public var error: String?
    /// Why the request ended as it did: `rate_limited`, `upstream_failure`, `timeout`, ...
    public var reason: String?
    public var responseBody: String?
    /// Streamed responses: from sending the request upstream to the first chunk.
    public var timeToFirstToken: Duration?
    /// Streamed responses: the time between chunks, per output token after the first.
    public var timePerOutputToken: Duration?
    /// The matched route's path (its first match): the server span's name, as agentgateway's.
    public var routeMatchPath: String?
    /// The request's trace (ids, tries, times) when tracing is on.
    public var trace: RequestTrace?

    /// The value of `x-failover-attempts` (also the log's `attempts`), by Wire's one writer.
    public var failoverHeader: String {
        var out: [UInt8] = []
        for (i, attempt) in attempts.enumerated() {
            FailoverAttempts.write(provider: attempt.provider, outcome: attempt.outcome, first: i == 0, into: &out)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The access-log line: agentgateway's field names, then ours (`provider`, `group`, `attempts`).
    public func jsonLine() -> String {
        String(decoding: jsonLineBytes(), as: UTF8.self)
    }

    /// The access-log line as UTF-8.
    public func jsonLineBytes() -> [UInt8] {
        var line = JSONLine()
        line.addTimestamp("time", time)
        line.add("level", status >= 500 ? "warn" : "info")
        line.add("scope", "request")
        line.add("route", route)
        line.add("endpoint", endpoint)
        line.add("http.method", method)
        line.add("http.path", path)
        line.add("http.status", status)
        line.add("duration", duration.compactDescription)
        line.add("gen_ai.provider.name", providerKind)
        line.add("gen_ai.request.model", requestModel)
        line.add("gen_ai.response.model", responseModel)
        line.add("gen_ai.usage.input_tokens", inputTokens)
        line.add("gen_ai.usage.output_tokens", outputTokens)
        line.add("retry.attempt", attempts.count > 1 ? attempts.count - 1 : nil)
        line.add("error", error)
        line.add("reason", reason)
        line.add("provider", provider)
        line.add("group", group.map { $0 + 1 })
        line.add("attempts", attempts.isEmpty ? nil : failoverHeader)
        line.add("agw.ai.time_to_first_token", timeToFirstToken.map(Self.milliseconds))
        line.add("agw.ai.time_per_output_token", timePerOutputToken.map(Self.milliseconds))
        if let trace {
            line.addHex("trace.id", trace.traceID.high, trace.traceID.low)
            line.addHex("span.id", trace.spanID.value)
        }
        line.add("response.body", responseBody)
        return line.takeBytes()
    }

    /// Milliseconds with three decimals, as a number.
    static func milliseconds(_ d: Duration) -> Double {
        (d.seconds * 1_000_000).rounded() / 1000
    }

    static func timestamp(_ date: Date) -> String {
        var out: [UInt8] = []
        appendTimestamp(date, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `date` as RFC 3339 with milliseconds in UTC, as agentgateway logs
    /// (yyyy-MM-ddTHH:mm:ss.SSSZ), digit by digit: this runs for every request.
    static func appendTimestamp(_ date: Date, to out: inout [UInt8]) {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&t, &parts)
        let ms = Int((date.timeIntervalSince1970 - Double(t)) * 1000)  // checked: a fraction of a second of the wall clock
        func put(_ n: Int, _ width: Int) {
            var divisor = 1
            for _ in 1..<width { divisor *= 10 }
            var n = n
            while divisor > 0 {
                out.append(UInt8(ascii: "0") &+ UInt8(n / divisor % 10))
                n %= divisor
                divisor /= 10
            }
        }
        put(Int(parts.tm_year) + 1900, 4); out.append(UInt8(ascii: "-"))
        put(Int(parts.tm_mon) + 1, 2); out.append(UInt8(ascii: "-"))
        put(Int(parts.tm_mday), 2); out.append(UInt8(ascii: "T"))
        put(Int(parts.tm_hour), 2); out.append(UInt8(ascii: ":"))
        put(Int(parts.tm_min), 2); out.append(UInt8(ascii: ":"))
        put(Int(parts.tm_sec), 2); out.append(UInt8(ascii: "."))
        put(min(max(ms, 0), 999), 3); out.append(UInt8(ascii: "Z"))
    }
}

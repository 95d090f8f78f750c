import Histogram

/// Latency percentiles of one histogram, in nanoseconds.
public struct LatencySummary: Sendable, Equatable {
    public var count: UInt64
    public var p50: Nanos
    public var p90: Nanos
    public var p99: Nanos
    public var p999: Nanos
    public var max: Nanos
    public var mean: Nanos
}

/// One row of the per-provider table.
public struct ProviderSummary: Sendable, Equatable {
    public var provider: String
    /// Requests this provider answered (the last entry of the attempts, or the response's model).
    public var served: UInt64
    public var share: Double
    /// Answers by status.
    public var statusCounts: [Int: UInt64]
    /// Attempts sent to it according to `x-failover-attempts`, served or not.
    public var attempts: UInt64
    public var failedAttempts: UInt64
    public var latency: LatencySummary?
    public var tokens: UInt64
}

/// A moment the serving provider changed.
public struct FailoverChange: Sendable, Equatable {
    /// Offset from the run's start (when the request that showed the change was sent).
    public var at: Nanos
    public var wall: Int64
    public var from: String?
    public var to: String
    /// The status that came before the change: the failed attempt within the same request,
    /// else the status of the previous request.
    public var precededBy: Int?
    /// The failed attempt's word when it had no status (`timeout`, `connect`, `broken`).
    public var precededByFailure: String? = nil
    public var seq: UInt64
}

/// Transport errors grouped by kind, with one full message as an example.
public struct ErrorSummary: Sendable, Equatable {
    public var kind: String
    public var count: UInt64
    public var example: String
}

/// What a run did, aggregated; built from records in constant memory.
public struct Report: Sendable {
    public var requests: UInt64
    public var sent: UInt64
    public var responses: UInt64
    public var late: UInt64
    public var unsent: UInt64
    public var errors: UInt64
    /// From the first intended start to the last finish.
    public var span: Nanos
    /// Requests started per second (between the first and the last send).
    public var achievedRate: Double
    /// Requests finished per second over the span.
    public var throughput: Double
    public var statusCounts: [Int: UInt64]
    public var errorKinds: [ErrorSummary]
    public var corrected: LatencySummary?
    public var uncorrected: LatencySummary?
    public var ttfb: LatencySummary?
    /// Sent minus intended: how far the engine was behind its schedule.
    public var scheduleLag: LatencySummary?
    /// Streamed responses with at least one content event; the three below are nil when 0.
    public var streamed: UInt64
    /// Content-bearing events over all streamed responses.
    public var contentEvents: UInt64
    /// Time to first token (first content event), one value per streamed response.
    public var ttft: LatencySummary?
    /// Inter-token latency: each streamed response's mean gap between content events
    /// (responses with at least two), one value per response.
    public var interToken: LatencySummary?
    /// Each streamed response's largest gap between content events; its max is the largest gap of the run.
    public var interTokenMax: LatencySummary?
    public var providers: [ProviderSummary]
    public var timeline: [FailoverChange]
    public var timelineDropped: UInt64
    public var tokens: TokenUsage
    public var startWall: Int64?
    /// Lines of the input that were not records (report from a file).
    public var skippedLines: UInt64
}

/// Counts by status code without hashing: codes 0..<600 (0 is "no response") in an array,
/// any other code in a dictionary.
struct StatusTally: Sendable {
    private var dense: [UInt64] = []
    private var other: [Int: UInt64] = [:]

    init() {}

    @inline(__always) mutating func add(_ code: Int) {
        if code >= 0 && code < 600 {
            if dense.isEmpty { dense = Array(repeating: 0, count: 600) }
            dense[code] &+= 1
        } else {
            other[code, default: 0] += 1
        }
    }

    /// The counts by code, codes never seen left out.
    var counts: [Int: UInt64] {
        var d = other
        for (code, n) in dense.enumerated() where n > 0 { d[code] = n }
        return d
    }
}

/// Accumulates records into a `Report`: counters and HdrHistograms, never the records.
public struct ReportBuilder: Sendable {
    static let highest: UInt64 = 3_600_000_000 // one hour in microseconds
    static func histogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: highest, numberOfSignificantValueDigits: .three)
    }

    var requests: UInt64 = 0
    var sent: UInt64 = 0
    var responses: UInt64 = 0
    var late: UInt64 = 0
    var unsent: UInt64 = 0
    var errors: UInt64 = 0
    var firstIntended: Nanos = .max
    var lastFinish: Nanos = 0
    var firstSent: Nanos = .max
    var lastSent: Nanos = 0
    var startWall: Int64?
    var statusTally = StatusTally()
    var statusCounts: [Int: UInt64] { statusTally.counts }
    var errorKinds: [String: (UInt64, String)] = [:]
    // Histograms in microseconds.
    public private(set) var corrected = ReportBuilder.histogram()
    public private(set) var uncorrected = ReportBuilder.histogram()
    public private(set) var ttfb = ReportBuilder.histogram()
    public private(set) var lag = ReportBuilder.histogram()
    // Streams only; made on the first streamed record, so other runs pay nothing.
    public private(set) var ttft: Histogram<UInt64>?
    public private(set) var interToken: Histogram<UInt64>?
    public private(set) var interTokenMax: Histogram<UInt64>?
    var streamed: UInt64 = 0
    var contentEvents: UInt64 = 0
    struct ProviderAcc: Sendable {
        var served: UInt64 = 0
        var statusTally = StatusTally()
        var attempts: UInt64 = 0
        var failedAttempts: UInt64 = 0
        var latency: Histogram<UInt64>?
        var tokens: UInt64 = 0
    }
    var providerIndex: [String: Int] = [:]
    var providerAccs: [(String, ProviderAcc)] = []
    /// The accumulator of the last record's provider (runs of one provider are the rule), or -1.
    var lastProviderSlot = -1

    mutating func accumulator(_ name: String) -> Int {
        if let i = providerIndex[name] { return i }
        providerIndex[name] = providerAccs.count
        providerAccs.append((name, ProviderAcc()))
        return providerAccs.count - 1
    }
    var timeline: [FailoverChange] = []
    var timelineDropped: UInt64 = 0
    var currentProvider: String?
    var previousStatus: Int?
    var tokens = TokenUsage(prompt: 0, completion: 0, total: 0)
    public var skippedLines: UInt64 = 0
    /// The most changes kept in the timeline; later ones are counted.
    public var timelineLimit = 1000

    public init() {}

    @inline(__always) static func us(_ ns: Nanos) -> UInt64 { Swift.max(1, Swift.min(highest, ns / 1000 &+ (ns % 1000 >= 500 ? 1 : 0))) }

    /// `a + b`, at most Int.max (sums of counts read from files).
    static func sum(_ a: Int, _ b: Int) -> Int {
        let (s, overflow) = a.addingReportingOverflow(b)
        return overflow ? (b > 0 ? .max : .min) : s
    }

    public mutating func add(_ r: RequestRecord) {
        requests += 1
        if r.late { late += 1 }
        if startWall == nil, r.runStartWall != 0 { startWall = r.runStartWall }
        firstIntended = Swift.min(firstIntended, r.intended)
        if let s = r.sent {
            sent += 1
            firstSent = Swift.min(firstSent, s)
            lastSent = Swift.max(lastSent, s)
            _ = lag.record(Self.us(s >= r.intended ? s - r.intended : 0))
        } else {
            unsent += 1
        }
        if let f = r.finished { lastFinish = Swift.max(lastFinish, f) }
        if let e = r.error {
            errors += 1
            let kind = Self.errorKind(e)
            let old = errorKinds[kind]
            errorKinds[kind] = ((old?.0 ?? 0) + 1, old?.1 ?? e)
        }
        if let status = r.status {
            responses += 1
            statusTally.add(status)
        } else {
            statusTally.add(0)
        }
        if r.sent != nil, r.status != nil || r.error != nil {
            if let l = r.latency { _ = uncorrected.record(Self.us(l)) }
            if let c = r.correctedLatency { _ = corrected.record(Self.us(c)) }
            if let t = r.ttfb { _ = ttfb.record(Self.us(t)) }
        }
        if let t = r.ttft {
            streamed += 1
            if ttft == nil { ttft = Self.histogram() }
            _ = ttft!.record(Self.us(t))
        }
        if let itl = r.interToken {
            contentEvents += UInt64(Swift.max(0, itl.events))
            if let mean = itl.mean {
                if interToken == nil { interToken = Self.histogram() }
                _ = interToken!.record(Self.us(mean))
            }
            if let m = itl.max {
                if interTokenMax == nil { interTokenMax = Self.histogram() }
                _ = interTokenMax!.record(Self.us(m))
            }
        }
        if let t = r.tokens {
            // Saturating: counts come from files, and a report must not trap on their sum.
            tokens.prompt = Self.sum(tokens.prompt!, t.prompt ?? 0)
            tokens.completion = Self.sum(tokens.completion!, t.completion ?? 0)
            tokens.total = Self.sum(tokens.total!, t.total ?? Self.sum(t.prompt ?? 0, t.completion ?? 0))
        }
        if let attempts = r.attempts {
            for (k, a) in attempts.enumerated() {
                let i = accumulator(a.provider)
                providerAccs[i].1.attempts += 1
                // A try with a word (timeout, connect, broken) failed as surely as a 5xx.
                if k < attempts.count - 1 || !a.outcome.isSuccess { providerAccs[i].1.failedAttempts += 1 }
            }
        }
        if let p = r.provider {
            // At most one hash per record (none while the provider stays the same); the accumulator
            // is mutated in place (copying it would copy its histogram).
            let i: Int
            if lastProviderSlot >= 0, providerAccs[lastProviderSlot].0 == p {
                i = lastProviderSlot
            } else if let known = providerIndex[p] {
                i = known
            } else {
                i = providerAccs.count
                providerIndex[p] = i
                providerAccs.append((p, ProviderAcc()))
            }
            lastProviderSlot = i
            providerAccs[i].1.served += 1
            if let s = r.status { providerAccs[i].1.statusTally.add(s) }
            if let l = r.latency {
                if providerAccs[i].1.latency == nil { providerAccs[i].1.latency = Self.histogram() }
                _ = providerAccs[i].1.latency!.record(Self.us(l))
            }
            let more = UInt64(Swift.max(0, r.tokens?.total ?? Self.sum(r.tokens?.prompt ?? 0, r.tokens?.completion ?? 0)))
            let (t, overflow) = providerAccs[i].1.tokens.addingReportingOverflow(more)
            providerAccs[i].1.tokens = overflow ? .max : t
            if p != currentProvider {
                var preceding = previousStatus
                var precedingWord: String?
                if let attempts = r.attempts, attempts.count >= 2 {
                    preceding = attempts[attempts.count - 2].status
                    precedingWord = attempts[attempts.count - 2].failure
                }
                let at = r.sent ?? r.intended
                let change = FailoverChange(at: at, wall: r.runStartWall == 0 ? 0 : r.runStartWall &+ Int64(clamping: at),
                                            from: currentProvider, to: p,
                                            precededBy: currentProvider == nil ? nil : preceding,
                                            precededByFailure: currentProvider == nil ? nil : precedingWord, seq: r.seq)
                if timeline.count < timelineLimit { timeline.append(change) } else { timelineDropped += 1 }
                currentProvider = p
            }
        }
        previousStatus = r.status
    }

    /// Sorts an error message into a short kind a person scans: refused, reset, timeout, dns, ...
    public static func errorKind(_ message: String) -> String {
        let m = message.lowercased()
        if m.hasPrefix("not sent") { return "not sent (late)" }
        if m.hasPrefix("aborted") { return "aborted" }
        if m.contains("refused") { return "connection refused" }
        if m.contains("failed to connect") || m.contains("couldn't connect") { return "connect failed" }
        if m.contains("reset") { return "connection reset" }
        if m.contains("timed out") || m.contains("timeout") { return "timeout" }
        if m.contains("resolve") { return "dns" }
        if m.contains("empty reply") { return "empty reply" }
        if m.contains("recv failure") || m.contains("send failure") { return "connection broken" }
        if let r = m.firstRange(of: "curl error ") {
            let digits = m[r.upperBound...].prefix(while: { $0.isNumber })
            return "curl error " + digits
        }
        return "other"
    }

    static func summary(_ h: Histogram<UInt64>) -> LatencySummary? {
        guard h.totalCount > 0 else { return nil }
        func ns(_ us: UInt64) -> Nanos { us * 1000 }
        return LatencySummary(count: h.totalCount,
                              p50: ns(h.valueAtPercentile(50)), p90: ns(h.valueAtPercentile(90)),
                              p99: ns(h.valueAtPercentile(99)), p999: ns(h.valueAtPercentile(99.9)),
                              max: ns(h.max), mean: Nanos(h.mean * 1000))
    }

    /// A percentile of the corrected (`which == .corrected`) or other latency, in ns.
    /// `ttft` and `itl` (per-response mean gaps) exist only for streamed runs.
    public enum Series: String, Sendable { case corrected, sent, ttfb, lag, ttft, itl }
    public func percentile(_ p: Double, of series: Series) -> Nanos? {
        let h: Histogram<UInt64>
        switch series {
        case .corrected: h = corrected
        case .sent: h = uncorrected
        case .ttfb: h = ttfb
        case .lag: h = lag
        case .ttft: guard let t = ttft else { return nil }; h = t
        case .itl: guard let t = interToken else { return nil }; h = t
        }
        guard h.totalCount > 0 else { return nil }
        return (p >= 100 ? h.max : h.valueAtPercentile(p)) * 1000
    }

    /// The report. `latencies: false` leaves out the latency summaries (nil), the costly part
    /// (each walks its histograms): for a check made at every request, such as a lab step's
    /// `until`, whose expectation reads counts from the report and any percentile from the
    /// builder (`Expectation.measure`).
    public func build(latencies: Bool = true) -> Report {
        func summary(_ h: Histogram<UInt64>) -> LatencySummary? { latencies ? Self.summary(h) : nil }
        let span = lastFinish > firstIntended && firstIntended != .max ? lastFinish - firstIntended : 0
        let sendSpan = lastSent > firstSent && firstSent != .max ? lastSent - firstSent : 0
        let achieved = sendSpan > 0 && sent > 1 ? Double(sent - 1) / (Double(sendSpan) / 1e9) : 0
        let finished = requests - unsent
        let throughput = span > 0 ? Double(finished) / (Double(span) / 1e9) : 0
        let providerRows = providerAccs.map { name, acc in
            ProviderSummary(provider: name, served: acc.served,
                            share: requests > 0 ? Double(acc.served) / Double(requests) : 0,
                            statusCounts: acc.statusTally.counts, attempts: acc.attempts, failedAttempts: acc.failedAttempts,
                            latency: acc.latency.flatMap(summary), tokens: acc.tokens)
        }.sorted { ($0.served, $0.attempts, $1.provider) > ($1.served, $1.attempts, $0.provider) }
        let kinds = errorKinds.map { ErrorSummary(kind: $0.key, count: $0.value.0, example: $0.value.1) }
            .sorted { ($0.count, $1.kind) > ($1.count, $0.kind) }
        return Report(requests: requests, sent: sent, responses: responses, late: late, unsent: unsent, errors: errors,
                      span: span, achievedRate: achieved, throughput: throughput, statusCounts: statusCounts,
                      errorKinds: kinds, corrected: summary(corrected), uncorrected: summary(uncorrected),
                      ttfb: summary(ttfb), scheduleLag: summary(lag),
                      streamed: streamed, contentEvents: contentEvents, ttft: ttft.flatMap(summary),
                      interToken: interToken.flatMap(summary), interTokenMax: interTokenMax.flatMap(summary),
                      providers: providerRows,
                      timeline: timeline, timelineDropped: timelineDropped, tokens: tokens, startWall: startWall,
                      skippedLines: skippedLines)
    }
}

extension Report {
    /// How many failover changes the text report lists.
    public static let textTimelineLimit = 20
    var textTimelineLimit: Int { Report.textTimelineLimit }

    /// The report for people.
    public var text: String {
        var o = ""
        func line(_ s: String = "") { o += s + "\n" }
        let secs = Double(span) / 1e9
        line("requests   \(requests) in \(Units.formatDuration(span))" + (unsent > 0 ? ", \(unsent) never sent" : ""))
        line("rate       \(Units.fixed(achievedRate, 1))/s sent, \(Units.fixed(throughput, 1))/s finished"
             + (secs > 0 ? "" : ""))
        line("late       \(late)" + (requests > 0 ? " (\(pct(late, requests)))" : "")
             + "   errors \(errors)" + (requests > 0 ? " (\(pct(errors, requests)))" : ""))
        line()
        line("status")
        for (code, count) in statusCounts.sorted(by: { $0.key < $1.key }) {
            let name = code == 0 ? "error" : String(code)
            line("  " + pad(name, 6) + pad(String(count), 10, left: true) + "  " + pct(count, requests))
        }
        if !errorKinds.isEmpty {
            line()
            line("errors")
            for e in errorKinds.prefix(10) {
                line("  " + pad(e.kind, 20) + pad(String(e.count), 8, left: true) + "  e.g. " + e.example)
            }
        }
        line()
        line("latency        p50       p90       p99     p99.9       max")
        func row(_ name: String, _ s: LatencySummary?) {
            guard let s else { return }
            line(pad(name, 10) + [s.p50, s.p90, s.p99, s.p999, s.max].map { pad(Units.formatDuration($0), 10, left: true) }.joined())
        }
        row("corrected", corrected)
        row("from send", uncorrected)
        row("ttfb", ttfb)
        row("send lag", scheduleLag)
        if streamed > 0 {
            // Streams only: first content event, then the gaps between content events.
            row("ttft", ttft)
            row("itl", interToken)
            row("itl max", interTokenMax)
            line("streamed   \(streamed) responses, \(contentEvents) content events"
                 + "  (itl: mean gap per response; itl max: largest gap per response)")
        }
        if !providers.isEmpty {
            line()
            line("provider                    served   share  attempts  failed       p50       p99   tokens  status")
            for p in providers {
                let codes = p.statusCounts.sorted { $0.key < $1.key }.map { "\($0.key)x\($0.value)" }.joined(separator: " ")
                line(pad(p.provider, 26) + pad(String(p.served), 8, left: true) + pad(pct(p.served, requests), 8, left: true)
                     + pad(String(p.attempts), 10, left: true) + pad(String(p.failedAttempts), 8, left: true)
                     + pad(p.latency.map { Units.formatDuration($0.p50) } ?? "-", 10, left: true)
                     + pad(p.latency.map { Units.formatDuration($0.p99) } ?? "-", 10, left: true)
                     + pad(String(p.tokens), 9, left: true) + "  " + codes)
            }
        }
        if !timeline.isEmpty {
            line()
            line("failover timeline")
            // People get the first changes; --json has them all (up to the builder's limit).
            for c in timeline.prefix(textTimelineLimit) {
                let when = "+" + Units.fixed(Double(c.at) / 1e9, 3) + "s" + (c.wall != 0 ? "  " + WallTime.format(c.wall) : "")
                if let from = c.from {
                    line("  " + when + "  " + from + " -> " + c.to
                         + ((c.precededBy.map(String.init) ?? c.precededByFailure).map { "  after \($0)" } ?? "") + "  (request \(c.seq))")
                } else {
                    line("  " + when + "  first served by " + c.to + "  (request \(c.seq))")
                }
            }
            let more = UInt64(max(0, timeline.count - textTimelineLimit)) + timelineDropped
            if more > 0 { line("  ... \(more) more changes (--json lists them)") }
        }
        if let total = tokens.total, total > 0 {
            line()
            line("tokens     prompt \(tokens.prompt ?? 0), completion \(tokens.completion ?? 0), total \(total)")
        }
        if skippedLines > 0 {
            line()
            line("skipped    \(skippedLines) lines that were not records")
        }
        return o
    }

    /// The report for machines.
    public var json: JSONValue {
        func n(_ v: UInt64) -> JSONValue { .number(Double(v)) }
        func lat(_ s: LatencySummary?) -> JSONValue {
            guard let s else { return .null }
            func ms(_ v: Nanos) -> JSONValue { .number(Double(v) / 1e6) }
            let members: [(String, JSONValue)] = [
                ("count", n(s.count)), ("p50", ms(s.p50)), ("p90", ms(s.p90)), ("p99", ms(s.p99)),
                ("p99.9", ms(s.p999)), ("max", ms(s.max)), ("mean", ms(s.mean)),
            ]
            return .object(members)
        }
        let total = requests
        func share(_ v: UInt64) -> JSONValue {
            .number(total > 0 ? (Double(v) / Double(total) * 1e6).rounded() / 1e6 : 0)
        }
        var status: [(String, JSONValue)] = []
        for (code, count) in statusCounts.sorted(by: { $0.key < $1.key }) {
            let name = code == 0 ? "error" : String(code)
            status.append((name, .object([("count", n(count)), ("share", share(count))])))
        }
        var kinds: [JSONValue] = []
        for e in errorKinds {
            kinds.append(.object([("kind", .string(e.kind)), ("count", n(e.count)), ("example", .string(e.example))]))
        }
        var rows: [JSONValue] = []
        for p in providers {
            var codes: [(String, JSONValue)] = []
            for (code, count) in p.statusCounts.sorted(by: { $0.key < $1.key }) { codes.append((String(code), n(count))) }
            let members: [(String, JSONValue)] = [
                ("provider", .string(p.provider)), ("served", n(p.served)), ("share", share(p.served)),
                ("attempts", n(p.attempts)), ("failed_attempts", n(p.failedAttempts)), ("status", .object(codes)),
                ("latency_ms", lat(p.latency)), ("tokens", n(p.tokens)),
            ]
            rows.append(.object(members))
        }
        var changes: [JSONValue] = []
        for c in timeline {
            let from: JSONValue = c.from.map { .string($0) } ?? .null
            let preceded: JSONValue = c.precededBy.map { .number(Double($0)) } ?? c.precededByFailure.map { .string($0) } ?? .null
            let wall: JSONValue = c.wall != 0 ? .string(WallTime.format(c.wall)) : .null
            let members: [(String, JSONValue)] = [
                ("at_s", .number(Double(c.at) / 1e9)), ("at", wall), ("from", from), ("to", .string(c.to)),
                ("preceded_by", preceded), ("seq", n(c.seq)),
            ]
            changes.append(.object(members))
        }
        let tokenMembers: [(String, JSONValue)] = [
            ("prompt", .number(Double(tokens.prompt ?? 0))), ("completion", .number(Double(tokens.completion ?? 0))),
            ("total", .number(Double(tokens.total ?? 0))),
        ]
        var members: [(String, JSONValue)] = [
            ("requests", n(requests)), ("sent", n(sent)), ("responses", n(responses)), ("late", n(late)),
            ("unsent", n(unsent)), ("errors", n(errors)), ("span_s", .number(Double(span) / 1e9)),
            ("achieved_rate", .number((achievedRate * 1000).rounded() / 1000)),
            ("throughput", .number((throughput * 1000).rounded() / 1000)),
            ("status", .object(status)), ("error_kinds", .array(kinds)),
            ("latency_corrected_ms", lat(corrected)), ("latency_ms", lat(uncorrected)), ("ttfb_ms", lat(ttfb)),
            ("send_lag_ms", lat(scheduleLag)), ("providers", .array(rows)), ("timeline", .array(changes)),
            ("timeline_dropped", n(timelineDropped)), ("tokens", .object(tokenMembers)),
            ("skipped_lines", n(skippedLines)),
        ]
        if streamed > 0 {
            // Only when some responses were streamed, as in the text.
            let at = members.firstIndex { $0.0 == "send_lag_ms" }.map { $0 + 1 } ?? members.count
            members.insert(contentsOf: [
                ("streamed", n(streamed)), ("content_events", n(contentEvents)), ("ttft_ms", lat(ttft)),
                ("itl_ms", lat(interToken)), ("itl_max_ms", lat(interTokenMax)),
            ], at: at)
        }
        return .object(members)
    }
}

func pct(_ n: UInt64, _ of: UInt64) -> String {
    of == 0 ? "-" : Units.fixed(Double(n) / Double(of) * 100, 1) + "%"
}

func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
    let n = s.count
    guard n < width else { return s + (left ? "" : " ") }
    let fill = String(repeating: " ", count: width - n)
    return left ? fill + s : s + fill
}

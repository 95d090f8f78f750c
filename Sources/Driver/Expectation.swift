/// A check on a finished run, such as `status[429] <= 1`, `provider[openai-provider] >= 0.9`
/// or `p99 < 50ms`. A value written with a decimal point or `%` is a share of all requests;
/// a whole number is a count. Latencies take a unit (`ns`, `us`, `ms`, `s`).
public struct Expectation: Sendable, Equatable, CustomStringConvertible {
    public enum Metric: Sendable, Equatable {
        case requests, sent, late, unsent, errors, responses
        /// Achieved send rate per second.
        case rate
        /// A status code (`status[429]`), a class (`status[5xx]`) or transport errors (`status[error]`).
        case status(String)
        case provider(String)
        /// A kind of transport error (`error[refused]`, `error[timeout]`).
        case errorKind(String)
        /// A latency percentile (100 = max) of a series: corrected (default), sent, ttfb, lag.
        case latency(Double, ReportBuilder.Series)
    }

    public enum Comparison: String, Sendable, Equatable, CaseIterable {
        case le = "<=", ge = ">=", eq = "==", ne = "!=", lt = "<", gt = ">"
        func holds(_ a: Double, _ b: Double) -> Bool {
            switch self {
            case .le: return a <= b
            case .ge: return a >= b
            case .eq: return a == b
            case .ne: return a != b
            case .lt: return a < b
            case .gt: return a > b
            }
        }
    }

    public enum Value: Sendable, Equatable {
        case count(Double)
        case share(Double)
        case duration(Nanos)
        case rate(Double)
    }

    public var text: String
    public var metric: Metric
    public var comparison: Comparison
    public var value: Value
    public var description: String { text }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    static let help = "write METRIC OP VALUE, e.g. 'status[429] <= 1', 'provider[openai-provider] >= 0.9', 'p99 < 50ms'"
        + "; metrics: requests, sent, responses, late, unsent, errors, rate, status[CODE|2xx|error], provider[NAME], "
        + "error[KIND], p50, p90, p99, p99.9, max, and sent.p99, ttfb.p99, lag.p99 for the other latency series"

    public init(parsing text: String) throws(ParseError) {
        self.text = text
        func fail(_ why: String) -> ParseError { ParseError(description: "--expect '\(text)': \(why)") }
        // Find the operator (two-character ones first).
        var found: (Comparison, Range<String.Index>)?
        for op in [Comparison.le, .ge, .eq, .ne, .lt, .gt] {
            if let r = text.firstRange(of: op.rawValue) { found = (op, r); break }
        }
        if found == nil, let r = text.firstRange(of: "=") { found = (.eq, r) }
        guard let (op, range) = found else { throw fail("no comparison (<, <=, >, >=, ==, !=); " + Self.help) }
        let lhs = text[..<range.lowerBound].trimmed()
        let rhs = text[range.upperBound...].trimmed()
        guard !lhs.isEmpty else { throw fail("nothing before '\(op.rawValue)'; " + Self.help) }
        guard !rhs.isEmpty else { throw fail("no value after '\(op.rawValue)'; " + Self.help) }
        comparison = op
        guard let m = Self.metric(lhs) else { throw fail("unknown metric '\(lhs)'; " + Self.help) }
        metric = m
        switch m {
        case .latency:
            guard rhs.contains(where: { $0.isLetter }) else { throw fail("'\(rhs)' is not a duration with a unit (50ms, 1.5s, 800us)") }
            do { value = .duration(try Units.duration(rhs)) } catch { throw fail("\(error)") }
        case .rate:
            do { value = .rate(try Units.rate(rhs)) } catch { throw fail("\(error)") }
        default:
            if rhs.hasSuffix("%") {
                guard let v = Double(rhs.dropLast().trimmed()), v >= 0 else { throw fail("'\(rhs)' is not a percentage") }
                value = .share(v / 100)
            } else if rhs.contains(".") {
                guard let v = Double(rhs), v >= 0, v <= 1 else {
                    throw fail("'\(rhs)' is not a share between 0 and 1 (a value with a decimal point is a share; write a whole number for a count)")
                }
                value = .share(v)
            } else {
                guard let v = Double(rhs), v >= 0 else { throw fail("'\(rhs)' is not a count") }
                value = .count(v)
            }
        }
    }

    static func metric(_ s: String) -> Metric? {
        func bracket(_ prefix: String) -> String? {
            guard s.hasPrefix(prefix + "["), s.hasSuffix("]") else { return nil }
            let inner = String(s.dropFirst(prefix.count + 1).dropLast()).trimmed()
            return inner.isEmpty ? nil : inner
        }
        if let code = bracket("status") {
            let c = code.lowercased()
            let valid = Int(c).map { (100...599).contains($0) } ?? false
                || (c.count == 3 && c.hasSuffix("xx") && "12345".contains(c.first!)) || c == "error"
            return valid ? .status(c) : nil
        }
        if let name = bracket("provider") { return .provider(name) }
        if let kind = bracket("error") { return .errorKind(kind.lowercased()) }
        switch s {
        case "requests": return .requests
        case "sent": return .sent
        case "responses": return .responses
        case "late": return .late
        case "unsent": return .unsent
        case "errors": return .errors
        case "rate": return .rate
        default: break
        }
        var series = ReportBuilder.Series.corrected
        var name = Substring(s)
        if let dot = name.firstIndex(of: "."), let sr = ReportBuilder.Series(rawValue: String(name[..<dot])) {
            series = sr
            name = name[name.index(after: dot)...]
        }
        if name == "max" { return .latency(100, series) }
        if name == "median" { return .latency(50, series) }
        guard name.first == "p", let p = Double(name.dropFirst()), p > 0, p <= 100 else { return nil }
        return .latency(p, series)
    }

    /// The measured value, as the same kind the expectation states.
    public func measure(_ report: Report, _ builder: ReportBuilder) -> Value? {
        let total = Double(report.requests)
        func countOrShare(_ n: UInt64) -> Value {
            if case .share = value { return .share(total > 0 ? Double(n) / total : 0) }
            return .count(Double(n))
        }
        switch metric {
        case .requests: return countOrShare(report.requests)
        case .sent: return countOrShare(report.sent)
        case .responses: return countOrShare(report.responses)
        case .late: return countOrShare(report.late)
        case .unsent: return countOrShare(report.unsent)
        case .errors: return countOrShare(report.errors)
        case .rate: return .rate(report.achievedRate)
        case let .status(code):
            let n: UInt64
            if code == "error" {
                n = report.statusCounts[0] ?? 0
            } else if let c = Int(code) {
                n = report.statusCounts[c] ?? 0
            } else {
                let cls = Int(String(code.first!))!
                n = report.statusCounts.filter { $0.key / 100 == cls }.reduce(0) { $0 + $1.value }
            }
            return countOrShare(n)
        case let .provider(name):
            return countOrShare(report.providers.first { $0.provider == name }?.served ?? 0)
        case let .errorKind(kind):
            let n = report.errorKinds.filter { $0.kind.contains(kind) }.reduce(0) { $0 + $1.count }
            return countOrShare(n)
        case let .latency(p, series):
            return builder.percentile(p, of: series).map { .duration($0) }
        }
    }

    /// Checks the expectation; the string says what was measured.
    public func evaluate(_ report: Report, _ builder: ReportBuilder) -> (holds: Bool, measured: String) {
        guard let m = measure(report, builder) else { return (false, "no data") }
        switch (m, value) {
        case let (.count(a), .count(b)): return (comparison.holds(a, b), Units.fixed(a, 0))
        case let (.share(a), .share(b)): return (comparison.holds(a, b), Units.fixed(a, 4) + " (" + Units.fixed(a * 100, 2) + "%)")
        case let (.duration(a), .duration(b)): return (comparison.holds(Double(a), Double(b)), Units.formatDuration(a))
        case let (.rate(a), .rate(b)): return (comparison.holds(a, b), Units.fixed(a, 1) + "/s")
        default: return (false, "incomparable")
        }
    }
}

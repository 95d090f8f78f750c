import Driver
import Wire

/// What `watch --json` and `watch --headless` print. Pure.
public enum WatchLines {
    /// Seconds with millisecond precision, as JSON numbers.
    static func ms(_ x: Double) -> JSONValue {
        guard x.isFinite else { return .null }
        return .number((x * 1000).rounded() / 1000)
    }

    static func opt(_ s: String?) -> JSONValue { s.map(JSONValue.string) ?? .null }

    static func string(_ s: String?, into out: inout String) {
        if let s { JSONString.append(s, to: &out) } else { out += "null" }
    }

    /// Seconds to the millisecond, as `ms` writes them.
    static func number(_ x: Double, into out: inout String) {
        guard case .number(let n) = ms(x) else { out += "null"; return }
        out += JSONValue.number(n).serialized
    }

    /// One JSON line per output that has one (`provider`, `request`, `replica`, `note`).
    public static func json(_ o: WatchOutput) -> String? {
        switch o {
        case .provider(let c):
            return JSONValue.object([
                ("type", .string("provider")), ("at", ms(c.at)), ("replica", .string(c.replica)), ("backend", .string(c.backend)),
                ("group", .number(Double(c.group + 1))), ("provider", .string(c.provider)), ("state", .string(c.state.word)),
                ("remaining_s", c.remaining.map(ms) ?? .null), ("health", c.health.map { .number(($0 * 1000).rounded() / 1000) } ?? .null),
                ("source", .string(c.source.rawValue)),
            ]).serialized
        case .request(let replica, let at, let r):
            // Written directly: one a line at thousands of lines a second.
            var out = #"{"type":"request","at":"#
            number(at, into: &out)
            out += #","replica":"#
            JSONString.append(replica, to: &out)
            out += #","status":"#
            out += r.status.map { String($0) } ?? "null"
            out += #","endpoint":"#
            string(r.endpoint, into: &out)
            out += #","provider":"#
            string(r.provider, into: &out)
            out += #","route":"#
            string(r.route, into: &out)
            out += #","latency_s":"#
            if let l = r.latency { number(l, into: &out) } else { out += "null" }
            out += #","model":"#
            string(r.model, into: &out)
            out += #","tokens":"#
            out += r.tokens.map { String($0) } ?? "null"
            out += #","time":"#
            string(r.time, into: &out)
            out += "}"
            return out
        case .reachability(let replica, let r, let url, let at):
            var members: [(String, JSONValue)] = [("type", .string("replica")), ("at", ms(at)), ("replica", .string(replica))]
            switch r {
            case .reachable: members.append(("reachable", .bool(true)))
            case .unreachable(let why): members += [("reachable", .bool(false)), ("url", .string(url)), ("reason", .string(why))]
            case .unknown: return nil
            }
            return JSONValue.object(members).serialized
        case .note(let text, let at):
            return JSONValue.object([("type", .string("note")), ("at", ms(at)), ("text", .string(text))]).serialized
        case .metrics(let replica, let at, let rates, let total):
            var byBackend: [String: [(String, JSONValue)]] = [:]
            for (key, rate) in rates.sorted(by: { $0.key < $1.key }) { byBackend[key.backend, default: []].append((key.status, .number((rate * 100).rounded() / 100))) }
            let backends = byBackend.keys.sorted().map { ($0, JSONValue.object(byBackend[$0]!)) }
            return JSONValue.object([("type", .string("metrics")), ("at", ms(at)), ("replica", .string(replica)),
                                     ("requests_per_s", .object(backends)), ("requests", .number(total))]).serialized
        case .replica:
            return nil
        }
    }

    /// The last line of `--json`.
    public static func summary(_ s: WatchState, dropped: Int = 0) -> String {
        var by: [(String, JSONValue)] = []
        for name in s.replicas {
            let c = s.counts[name] ?? ReplicaCounts()
            var status: [(String, JSONValue)] = []
            for (code, n) in c.byStatus.sorted(by: { $0.key < $1.key }) { status.append((code == 0 ? "none" : String(code), .number(Double(n)))) }
            var members: [(String, JSONValue)] = [
                ("requests", .number(Double(c.requests))), ("skipped_lines", .number(Double(c.skippedLines))),
                ("status", .object(status)), ("polls", .number(Double(c.polls))), ("unreachable_polls", .number(Double(c.unreachablePolls))),
            ]
            if let base = c.metricsBase, let last = c.metricsLast { members.append(("metrics_requests", .number(last - base))) }
            by.append((name, .object(members)))
        }
        var members: [(String, JSONValue)] = [
            ("type", .string("summary")), ("requests", .number(Double(s.totalRequests))), ("skipped_lines", .number(Double(s.totalSkipped))),
            ("by_replica", .object(by)),
        ]
        if dropped > 0 { members.append(("dropped_events", .number(Double(dropped)))) }
        return JSONValue.object(members).serialized
    }

    /// `failover 200 12.5/s 429 0.5/s`: the non-zero rates, by backend then status.
    public static func rateText(_ rates: [RequestCounts.Key: Double]) -> String {
        var parts: [String] = []
        var backend: String?
        for (key, rate) in rates.sorted(by: { $0.key < $1.key }) where rate > 0 {
            if key.backend != backend { parts.append(key.backend); backend = key.backend }
            parts.append(key.status + " " + (rate >= 10 ? String(Checked.clampedInt(rate)) : String((rate * 10).rounded() / 10)) + "/s")
        }
        return parts.isEmpty ? "no requests" : parts.joined(separator: " ")
    }

    /// `mm:ss.t`.
    static func stamp(_ at: Double) -> String {
        let tenths = Checked.clampedInt(max(0, at) * 10, 0...Int.max)
        let s = tenths / 10
        let mm = s / 60, ss = s % 60
        return (mm < 10 ? "0" : "") + String(mm) + ":" + (ss < 10 ? "0" : "") + String(ss) + "." + String(tenths % 10)
    }

    /// One line per state change and per request (`--headless`); countdown-only changes are not lines.
    public static func headless(_ o: WatchOutput) -> String? {
        switch o {
        case .provider(let c):
            guard c.stateChanged else { return nil }
            var line = stamp(c.at) + "  " + c.replica + "  " + c.backend + " group \(c.group + 1)  " + c.provider + " " + c.state.word
            if let r = c.remaining { line += " \(Checked.clampedInt(r.rounded(.up), 0...Int.max))s left" }
            if c.source == .inferred { line += " (inferred from the access log)" }
            return line
        case .request(let replica, let at, let r):
            var line = stamp(at) + "  " + replica + "  " + (r.status.map(String.init) ?? "ERR") + "  " + (r.answeredBy ?? "-")
            if let g = r.group { line += " (group \(g + 1))" }
            if let l = r.latency { line += "  " + (l < 1 ? "\(Checked.clampedInt(l * 1000))ms" : "\((l * 100).rounded() / 100)s") }
            if let t = r.tokens { line += "  \(t) tokens" }
            if r.attempts.count > 1 { line += "  attempts " + FailoverAttempts.value(r.attempts) }
            if let e = r.error { line += "  error: " + e }
            return line
        case .reachability(let replica, let r, let url, let at):
            switch r {
            case .reachable: return stamp(at) + "  " + replica + "  admin reachable"
            case .unreachable(let why): return stamp(at) + "  " + replica + "  UNREACHABLE " + url + ": " + why + " (retrying)"
            case .unknown: return nil
            }
        case .note(let text, let at):
            return stamp(at) + "  " + text
        case .metrics(let replica, let at, let rates, _):
            return stamp(at) + "  " + replica + "  metrics " + rateText(rates)
        case .replica:
            return nil
        }
    }
}

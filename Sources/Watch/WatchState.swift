import Driver
import Wire

/// Where a provider's state came from.
public enum StateSource: String, Sendable, Hashable {
    /// The gateway said so (`/config_dump`, or the in-process balancer).
    case reported
    /// Guessed from access-log lines alone (a 429 → likely evicted for `--assume-retry-after`).
    case inferred
}

/// One provider of one replica, ready to show. Times are seconds since the watch started.
public struct ProviderView: Sendable, Hashable {
    public var report: ProviderReport
    /// When the eviction ends, counted down locally between polls; nil when not evicted or unknown.
    public var until: Double?
    /// The eviction's length as first seen (for a progress bar).
    public var evictedFor: Double?
    public var source: StateSource

    public init(report: ProviderReport, until: Double? = nil, evictedFor: Double? = nil, source: StateSource = .reported) {
        self.report = report
        self.until = until
        self.evictedFor = evictedFor
        self.source = source
    }

    public var name: String { report.name }
    public var state: ProviderState { report.state }

    /// Seconds left at `now`, when evicted with a known end.
    public func remaining(at now: Double) -> Double? {
        guard case .evicted = report.state, let until else { return nil }
        return max(0, until - now)
    }
}

public struct BackendView: Sendable, Hashable {
    public var name: String
    public var groups: [[ProviderView]]
    public init(name: String, groups: [[ProviderView]]) {
        self.name = name
        self.groups = groups
    }
    /// The first group with a provider in rotation (0-based), the balancer's meaning.
    public var activeGroup: Int? { groups.firstIndex { $0.contains { $0.state.inRotation } } }
}

public enum Reachability: Sendable, Hashable {
    /// No admin source, or none answered yet.
    case unknown
    case reachable
    /// The admin URL refused, timed out or answered with an error: why.
    case unreachable(String)
}

/// What one replica reports now: the event every source of provider state produces
/// (`watch`'s admin polls and access logs, the in-process lab's balancer).
public struct ReplicaSnapshot: Sendable, Hashable {
    public var replica: String
    public var at: Double
    public var reachability: Reachability
    public var backends: [BackendView]
    /// Requests per second by backend and status from the replica's request counter (`--metrics`).
    public var requestRates: [RequestCounts.Key: Double]

    public init(replica: String, at: Double, reachability: Reachability = .reachable, backends: [BackendView],
                requestRates: [RequestCounts.Key: Double] = [:]) {
        self.replica = replica
        self.at = at
        self.reachability = reachability
        self.backends = backends
        self.requestRates = requestRates
    }
}

/// A change of one provider on one replica: what `--json` prints as `"type":"provider"`.
public struct ProviderChange: Sendable, Hashable {
    public var at: Double
    public var replica: String
    public var backend: String
    /// 0-based (printed 1-based).
    public var group: Int
    public var provider: String
    public var state: ProviderState
    public var remaining: Double?
    public var health: Double?
    public var source: StateSource
    /// False when only the countdown moved (a whole second): headless skips those.
    public var stateChanged: Bool

    public init(at: Double, replica: String, backend: String, group: Int, provider: String, state: ProviderState, remaining: Double?,
                health: Double?, source: StateSource, stateChanged: Bool) {
        self.at = at
        self.replica = replica
        self.backend = backend
        self.group = group
        self.provider = provider
        self.state = state
        self.remaining = remaining
        self.health = health
        self.source = source
        self.stateChanged = stateChanged
    }
}

/// What happened, from any source. Times are seconds since the watch started.
public enum WatchEvent: Sendable {
    /// A `/config_dump` (or the in-process balancer) read at `at`.
    case dump(replica: String, at: Double, ConfigDump)
    /// The admin URL could not be read (refused, timed out, HTTP error).
    case unreachable(replica: String, url: String, reason: String, at: Double)
    /// The admin URL answered, but not with a usable config dump: said once per URL and message.
    case problem(replica: String, url: String, message: String, at: Double)
    /// One access-log line that is a request.
    case request(replica: String, at: Double, LoggedRequest)
    /// One access-log line that is not (not JSON, another scope).
    case skipped(replica: String, at: Double, AccessLogItem.SkipReason)
    /// A scrape of the request counter.
    case metrics(replica: String, url: String, at: Double, RequestCounts)
    /// Anything else worth a line: a log file appeared, was rotated, a source ended.
    case note(String, at: Double)
}

/// What the state turns an event into, for the outputs (dashboard, `--headless`, `--json`).
public enum WatchOutput: Sendable {
    case provider(ProviderChange)
    case request(replica: String, at: Double, LoggedRequest)
    case replica(ReplicaSnapshot)
    case reachability(replica: String, Reachability, url: String, at: Double)
    /// Request rates from a replica's counter, every few seconds.
    case metrics(replica: String, at: Double, rates: [RequestCounts.Key: Double], total: Double)
    case note(String, at: Double)
}

/// Per-replica counts for the summary.
public struct ReplicaCounts: Sendable {
    public var requests = 0
    public var skippedLines = 0
    public var byStatus: [Int: Int] = [:]
    public var unreachablePolls = 0
    public var polls = 0
    /// Requests by status from the access log since the first metrics scrape, for the comparison.
    public var loggedSinceScrape: Double = 0
    public var metricsBase: Double?
    public var metricsLast: Double?
    /// The scrape rates are measured from (at least `rateWindow` old).
    var rateFrom: (at: Double, counts: RequestCounts)?
    var mismatchStreak = 0
    public init() {}
}

/// The watch's state: every replica's providers, with one meaning of evicted, probing and
/// active, reported state winning over inference. Pure: time comes in with the events.
public struct WatchState: Sendable {
    public var assumeRetryAfter: Double
    public private(set) var replicas: [String] = []
    public private(set) var snapshots: [String: ReplicaSnapshot] = [:]
    public private(set) var counts: [String: ReplicaCounts] = [:]
    /// Replicas with a config dump read at least once: their reported state wins.
    private var reportedReplicas: Set<String> = []
    /// Inferred evictions by replica, then provider: until when.
    private var inferred: [String: [String: (until: Double, backend: String, group: Int)]] = [:]
    private var lastEmitted: [String: (word: String, remaining: Int?, source: StateSource, group: Int, times: Int?)] = [:]
    /// Replicas with an admin source: their state will be reported, so logs infer nothing for them.
    public var reportingReplicas: Set<String> = []
    /// The wall clock (Unix seconds) at `at == 0`; with it, access-log lines older than
    /// `assumeRetryAfter` (a log read from its start) infer nothing.
    public var wallStart: Double?
    private var reportedProblems: Set<String> = []
    private var reachability: [String: Reachability] = [:]
    static let maxReplicas = 256
    /// Rates are measured over at least this many seconds of scrapes.
    public static let rateWindow = 2.0

    public init(assumeRetryAfter: Double = 60) {
        self.assumeRetryAfter = assumeRetryAfter
    }

    /// Names the replicas up front, in the order the sources were given, so the summary and
    /// the dashboard keep that order whichever answers first. Gives their (empty) snapshots.
    public mutating func register(replicas names: [String]) -> [WatchOutput] {
        var out: [WatchOutput] = []
        for name in names where !replicas.contains(name) {
            guard noteReplica(name) else { break }
            let s = ReplicaSnapshot(replica: name, at: 0, reachability: .unknown, backends: [])
            snapshots[name] = s
            counts[name] = ReplicaCounts()
            out.append(.replica(s))
        }
        return out
    }

    public var totalRequests: Int { counts.values.reduce(0) { $0 + $1.requests } }
    public var totalSkipped: Int { counts.values.reduce(0) { $0 + $1.skippedLines } }

    public mutating func apply(_ event: WatchEvent) -> [WatchOutput] {
        switch event {
        case .dump(let replica, let at, let dump):
            guard noteReplica(replica) else { return [] }
            counts[replica, default: ReplicaCounts()].polls += 1
            var out: [WatchOutput] = []
            if reachability[replica] != .reachable {
                reachability[replica] = .reachable
                out.append(.reachability(replica: replica, .reachable, url: "", at: at))
            }
            reportedReplicas.insert(replica)
            inferred[replica] = nil
            let previous = snapshots[replica]
            let backends = dump.backends.map { b in
                BackendView(name: b.name, groups: b.groups.map { group in
                    group.map { p in view(p, at: at, previous: previous?.backends.first { $0.name == b.name }) }
                })
            }
            let snapshot = ReplicaSnapshot(replica: replica, at: at, reachability: .reachable, backends: backends)
            snapshots[replica] = snapshot
            out += changes(snapshot, at: at)
            out.append(.replica(snapshot))
            return out
        case .unreachable(let replica, let url, let reason, let at):
            guard noteReplica(replica) else { return [] }
            counts[replica, default: ReplicaCounts()].polls += 1
            counts[replica, default: ReplicaCounts()].unreachablePolls += 1
            let r = Reachability.unreachable(reason)
            guard reachability[replica] != r else { return [] }
            reachability[replica] = r
            var snapshot = snapshots[replica] ?? ReplicaSnapshot(replica: replica, at: at, backends: [])
            snapshot.reachability = r
            snapshot.at = at
            snapshots[replica] = snapshot
            return [.reachability(replica: replica, r, url: url, at: at), .replica(snapshot)]
        case .problem(let replica, let url, let message, let at):
            guard noteReplica(replica) else { return [] }
            counts[replica, default: ReplicaCounts()].polls += 1
            let key = url + "\u{0}" + message
            guard !reportedProblems.contains(key), reportedProblems.count < 1000 else { return [] }
            reportedProblems.insert(key)
            return [.note("\(replica): \(url)/config_dump: \(message)", at: at)]
        case .request(let replica, let at, let r):
            guard noteReplica(replica) else { return [] }
            counts[replica, default: ReplicaCounts()].requests += 1
            counts[replica, default: ReplicaCounts()].byStatus[r.status ?? 0, default: 0] += 1
            if counts[replica]?.metricsBase != nil { counts[replica]?.loggedSinceScrape += 1 }
            var out: [WatchOutput] = [.request(replica: replica, at: at, r)]
            out += infer(replica: replica, at: at, r)
            return out
        case .skipped(let replica, _, _):
            guard noteReplica(replica) else { return [] }
            counts[replica, default: ReplicaCounts()].skippedLines += 1
            return []
        case .metrics(let replica, let url, let at, let scraped):
            guard noteReplica(replica) else { return [] }
            var c = counts[replica] ?? ReplicaCounts()
            defer { counts[replica] = c }
            guard let base = c.metricsBase else {
                c.metricsBase = scraped.total
                c.metricsLast = scraped.total
                c.rateFrom = (at, scraped)
                return []
            }
            c.metricsLast = scraped.total
            var out: [WatchOutput] = []
            if let from = c.rateFrom, at - from.at >= Self.rateWindow {
                var rates: [RequestCounts.Key: Double] = [:]
                for (key, value) in scraped.counts {
                    // A counter that went down was reset (a restart): its rate starts again.
                    let delta = value - (from.counts.counts[key] ?? 0)
                    rates[key] = delta >= 0 ? delta / (at - from.at) : 0
                }
                c.rateFrom = (at, scraped)
                var snapshot = snapshots[replica] ?? ReplicaSnapshot(replica: replica, at: at, reachability: reachability[replica] ?? .unknown, backends: [])
                snapshot.requestRates = rates
                snapshots[replica] = snapshot
                out += [.metrics(replica: replica, at: at, rates: rates, total: scraped.total - base), .replica(snapshot)]
            }
            // Access logs of this replica are followed: say when the two views disagree, twice in a row.
            let byMetrics = scraped.total - base
            guard c.requests > 0 || c.loggedSinceScrape > 0, abs(byMetrics - c.loggedSinceScrape) > max(5, 0.1 * byMetrics) else {
                c.mismatchStreak = 0
                return out
            }
            c.mismatchStreak += 1
            let key = "metrics-mismatch" + replica
            guard c.mismatchStreak >= 2, !reportedProblems.contains(key) else { return out }
            reportedProblems.insert(key)
            return out + [.note("\(replica): \(url) counts \(Checked.clampedInt(byMetrics)) requests since the first scrape, the access log \(Checked.clampedInt(c.loggedSinceScrape)): they disagree", at: at)]
        case .note(let text, let at):
            return [.note(text, at: at)]
        }
    }

    /// Time passes: inferred evictions run out.
    public mutating func tick(now: Double) -> [WatchOutput] {
        var out: [WatchOutput] = []
        for (replica, providers) in inferred {
            for (name, entry) in providers where entry.until <= now {
                inferred[replica]?[name] = nil
                out += setInferred(replica: replica, provider: name, backend: entry.backend, group: entry.group, state: .healthy, until: nil, at: now)
            }
        }
        return out
    }

    private mutating func noteReplica(_ name: String) -> Bool {
        if replicas.contains(name) { return true }
        guard replicas.count < Self.maxReplicas else { return false }
        replicas.append(name)
        return true
    }

    private func view(_ p: ProviderReport, at: Double, previous: BackendView?) -> ProviderView {
        let before = previous?.groups.joined().first { $0.name == p.name }
        var v = ProviderView(report: p)
        if case .evicted(let remaining) = p.state, let remaining {
            let until = at + remaining
            v.until = until
            if let before, case .evicted = before.state, let f = before.evictedFor, let u = before.until, abs(u - until) < 2 {
                v.evictedFor = f  // the same eviction: keep its length as first seen
            } else {
                v.evictedFor = remaining
            }
        }
        return v
    }

    /// The change lines for a replica's new snapshot.
    private mutating func changes(_ s: ReplicaSnapshot, at: Double) -> [WatchOutput] {
        var out: [WatchOutput] = []
        for b in s.backends {
            for (g, group) in b.groups.enumerated() {
                for p in group {
                    if let c = change(replica: s.replica, backend: b.name, group: g, p, at: at) { out.append(.provider(c)) }
                }
            }
        }
        return out
    }

    private mutating func change(replica: String, backend: String, group: Int, _ p: ProviderView, at: Double) -> ProviderChange? {
        let key = replica + "\u{0}" + backend + "\u{0}" + p.name
        let remaining = p.remaining(at: at)
        let whole = remaining.map { Checked.clampedInt($0.rounded(.up), 0...Int.max) }
        let last = lastEmitted[key]
        var stateChanged = last == nil || last!.word != p.state.word || last!.source != p.source || last!.group != group
        if let last, case .evicted = p.state, last.word == p.state.word {
            // Evicted again between two polls (a failed probe, a new 429): the countdown jumped
            // up, or the gateway counts one more ejection.
            if let w = whole, let before = last.remaining, w > before + 1 { stateChanged = true }
            if let t = p.report.timesEjected, let before = last.times, t > before { stateChanged = true }
        }
        guard stateChanged || last!.remaining != whole else { return nil }
        lastEmitted[key] = (p.state.word, whole, p.source, group, p.report.timesEjected)
        return ProviderChange(at: at, replica: replica, backend: backend, group: group, provider: p.name, state: p.state,
                              remaining: remaining, health: p.report.health, source: p.source, stateChanged: stateChanged)
    }

    /// Access logs alone: a 429 marks the provider likely evicted; an answer other than 429
    /// from it (after the assumed time, or sooner) marks it back. A replica whose config dump
    /// was read is never inferred.
    private mutating func infer(replica: String, at: Double, _ r: LoggedRequest) -> [WatchOutput] {
        guard !reportedReplicas.contains(replica), !reportingReplicas.contains(replica) else { return [] }
        if let wallStart, let time = r.time, let ns = WallTime.parse(time), wallStart + at - Double(ns) / 1e9 > assumeRetryAfter { return [] }
        var out: [WatchOutput] = []
        let backend = r.route ?? "access log"
        // Each try of our `attempts` field is an answer; agentgateway's line is one.
        let tries: [(String, Int?, Int)] = r.attempts.isEmpty
            ? [(r.answeredBy ?? "", r.status, r.group ?? 0)]
            : r.attempts.map { ($0.provider, $0.status, r.provider == $0.provider ? (r.group ?? 0) : 0) }
        for (name, status, group) in tries where !name.isEmpty {
            let known = inferred[replica]?[name]
            let g = known?.group ?? group
            if status == 429 {
                guard known == nil, (inferred[replica]?.count ?? 0) < 1000 else { continue }
                let until = at + assumeRetryAfter
                inferred[replica, default: [:]][name] = (until, backend, g)
                out += setInferred(replica: replica, provider: name, backend: backend, group: g, state: .evicted(remaining: assumeRetryAfter), until: until, at: at)
            } else if let status, status < 500 || known == nil {
                if known != nil { inferred[replica]?[name] = nil }
                out += setInferred(replica: replica, provider: name, backend: known?.backend ?? backend, group: g, state: .healthy, until: nil, at: at)
            }
        }
        return out
    }

    private mutating func setInferred(replica: String, provider: String, backend: String, group: Int, state: ProviderState, until: Double?, at: Double) -> [WatchOutput] {
        var snapshot = snapshots[replica] ?? ReplicaSnapshot(replica: replica, at: at, reachability: reachability[replica] ?? .unknown, backends: [])
        let bi: Int
        if let i = snapshot.backends.firstIndex(where: { $0.name == backend }) { bi = i } else {
            guard snapshot.backends.count < 64 else { return [] }
            snapshot.backends.append(BackendView(name: backend, groups: []))
            bi = snapshot.backends.count - 1
        }
        let view = ProviderView(report: ProviderReport(name: provider, state: state), until: until,
                                evictedFor: until.map { $0 - at }, source: .inferred)
        var groups = snapshot.backends[bi].groups
        var placed = false
        for gi in groups.indices {
            if let pi = groups[gi].firstIndex(where: { $0.name == provider }) { groups[gi][pi] = view; placed = true }
        }
        if !placed {
            guard group < 64 else { return [] }
            while groups.count <= group { groups.append([]) }
            guard groups[group].count < 1000 else { return [] }
            groups[group].append(view)
        }
        snapshot.backends[bi].groups = groups
        snapshot.at = at
        snapshots[replica] = snapshot
        var out: [WatchOutput] = []
        let g = groups.firstIndex { $0.contains { $0.name == provider } } ?? group
        if let c = change(replica: replica, backend: backend, group: g, view, at: at) { out.append(.provider(c)) }
        out.append(.replica(snapshot))
        return out
    }
}

import Watch
import Wire
/// One try of a request, as the dashboard shows it in the attempt chain.
public struct AttemptEntry: Sendable, Hashable {
    public var provider: String
    public var status: Int?
    /// `connect`, `timeout`, `broken` when there was no response.
    public var failure: String?

    public init(provider: String, status: Int?, failure: String? = nil) {
        self.provider = provider
        self.status = status
        self.failure = failure
    }
}

/// A finished request. Times are seconds since the lab started.
public struct RequestEntry: Sendable, Hashable {
    public var at: Double
    /// nil when no response arrived.
    public var status: Int?
    public var provider: String?
    /// 0-based group of the provider that answered, when known.
    public var group: Int?
    /// Seconds from send to the last byte.
    public var latency: Double
    public var tokens: Int?
    public var attempts: [AttemptEntry]
    public var error: String?
    /// The replica whose access log told of it (`watch`), when known.
    public var replica: String?
    /// The gateway's trace of this request, for the waterfall (our gateway, traced).
    public var trace: TraceRef?

    public init(at: Double, status: Int?, provider: String?, group: Int?, latency: Double, tokens: Int? = nil, attempts: [AttemptEntry] = [], error: String? = nil) {
        self.at = at
        self.status = status
        self.provider = provider
        self.group = group
        self.latency = latency
        self.tokens = tokens
        self.attempts = attempts
        self.error = error
    }

    /// The status class key used in counts: 200, 300, 400, 429, 500, or 0 for no response.
    public var statusClass: Int {
        guard let status, status > 0 else { return 0 }
        if status == 429 { return 429 }
        return (status / 100) * 100
    }
}

/// A change in a provider's health.
public struct HealthEvent: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case evicted(duration: Double, reason: String, times: Int)
        case returned
        case probeSent
        case probeFailed
    }
    public var at: Double
    public var provider: String
    public var group: Int
    public var kind: Kind

    public init(at: Double, provider: String, group: Int, kind: Kind) {
        self.at = at
        self.provider = provider
        self.group = group
        self.kind = kind
    }
}

/// A provider as the balancer sees it right now.
public struct ProviderStatus: Sendable, Hashable {
    public enum State: Sendable, Hashable {
        case healthy
        /// Until when (seconds since start) and why.
        case evicted(until: Double, reason: String)
        /// The eviction is over; one probe request is due or in flight.
        case probing(reason: String)
    }
    public var name: String
    public var group: Int
    public var state: State
    public var health: Double?
    /// Latency EWMA in seconds.
    public var latency: Double?
    public var inFlight: Int
    public var timesEvicted: Int
    /// How long the current or last eviction was set for, in seconds.
    public var evictedFor: Double?
    /// The stand-in answering for this provider, if any, and what it is doing.
    public var standIn: String?
    public var fault: String?
    /// While probing: true once the probe request is in flight (ordinary requests skip it then).
    public var probeSent = false
    /// Guessed from access logs, not reported by the gateway.
    public var inferred = false
    /// The provider on each replica, when more than one reports (`watch` with several sources).
    public var replicas: [ReplicaState] = []

    public init(name: String, group: Int, state: State = .healthy, health: Double? = nil, latency: Double? = nil, inFlight: Int = 0,
                timesEvicted: Int = 0, evictedFor: Double? = nil, standIn: String? = nil, fault: String? = nil) {
        self.name = name
        self.group = group
        self.state = state
        self.health = health
        self.latency = latency
        self.inFlight = inFlight
        self.timesEvicted = timesEvicted
        self.evictedFor = evictedFor
        self.standIn = standIn
        self.fault = fault
    }

    /// True while ordinary requests skip this provider: evicted, or probing with the probe in
    /// flight. The balancer's meaning (`ProviderState.inRotation`), so the active group on
    /// screen is the one the balancer uses.
    public var isOut: Bool {
        switch state {
        case .evicted: return true
        case .probing: return probeSent
        case .healthy: return false
        }
    }

    public var stateWord: String {
        switch state {
        case .healthy: return "healthy"
        case .evicted: return "evicted"
        case .probing: return "probing"
        }
    }
}

/// One provider's state on one replica, for the replicas-side-by-side view.
public struct ReplicaState: Sendable, Hashable {
    public var replica: String
    public var state: ProviderStatus.State
    public var probeSent: Bool
    public var inferred: Bool
    /// The replica's admin URL does not answer: the state shown is the last known.
    public var unreachable: Bool

    public init(replica: String, state: ProviderStatus.State, probeSent: Bool = false, inferred: Bool = false, unreachable: Bool = false) {
        self.replica = replica
        self.state = state
        self.probeSent = probeSent
        self.inferred = inferred
        self.unreachable = unreachable
    }

    public var isOut: Bool {
        switch state {
        case .evicted: return true
        case .probing: return probeSent
        case .healthy: return false
        }
    }
}

/// Something the events panel lists.
public struct EventEntry: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case evicted(duration: Double, reason: String, times: Int)
        case returned
        case probeSent
        case probeFailed
        /// A stand-in's behaviour was changed.
        case fault(behavior: String)
        /// Anything else worth a line: traffic paused, counters cleared, a failed key action.
        case note(String)
        /// The lab's steps: one began (nil), held (true) or failed (false).
        case step(String, passed: Bool?)
    }
    public var at: Double
    /// The provider or stand-in the event is about.
    public var subject: String?
    public var kind: Kind
}

/// Requests that finished in one second of the run.
public struct SecondBucket: Sendable, Hashable {
    public var second: Int
    public var count = 0
    /// By status class (see `RequestEntry.statusClass`).
    public var classes: [Int: Int] = [:]
    public var codes: [Int: Int] = [:]
    public var latencySum = 0.0
    public var latencyMax = 0.0
    /// Requests by the provider that answered (the served-by chart).
    public var providers: [String: Int] = [:]
    /// The second's latencies in a fixed-size sketch (the p50/p99 chart).
    public var latencies = LatencySketch()
}

/// Latencies in fixed log-scaled buckets: 8 a doubling from 1 µs to about 268 s, so a
/// quantile read back is within about 6% and memory does not grow with the rate.
public struct LatencySketch: Sendable, Hashable {
    public static let perOctave = 8
    public static let octaves = 28
    public static let bucketCount = perOctave * octaves

    /// Empty until the first value, so an empty second costs nothing.
    public private(set) var counts: [UInt32] = []
    public private(set) var total = 0

    public init() {}

    /// The bucket of a latency in seconds; anything not finite or below 1 µs goes to an end bucket.
    public static func bucket(_ seconds: Double) -> Int {
        let micros = seconds * 1_000_000
        guard micros.isFinite else { return micros > 0 ? bucketCount - 1 : 0 }
        guard micros >= 1 else { return 0 }
        // The exponent and the top of the significand: log2 without a logarithm.
        let sub = min(perOctave - 1, Int((micros.significand - 1) * Double(perOctave)))  // checked: significand is in [1, 2)
        let octave = micros.exponent
        return octave >= octaves ? bucketCount - 1 : octave * perOctave + sub
    }

    /// A bucket's middle, in seconds.
    public static func value(ofBucket i: Int) -> Double {
        let b = min(max(0, i), bucketCount - 1)
        let significand = 1 + (Double(b % perOctave) + 0.5) / Double(perOctave)
        return Double(sign: .plus, exponent: b / perOctave, significand: significand) / 1_000_000
    }

    public mutating func add(_ seconds: Double) {
        if counts.isEmpty { counts = Array(repeating: 0, count: Self.bucketCount) }
        let i = Self.bucket(seconds)
        if counts[i] < UInt32.max { counts[i] += 1; total += 1 }
    }

    public mutating func merge(_ other: LatencySketch) {
        guard other.total > 0 else { return }
        if counts.isEmpty { self = other; return }
        for i in 0..<Self.bucketCount {
            let (sum, overflow) = counts[i].addingReportingOverflow(other.counts[i])
            counts[i] = overflow ? UInt32.max : sum
        }
        total += other.total
    }

    /// The latency below which a share `q` (0...1) of the values lie; nil when empty.
    public func quantile(_ q: Double) -> Double? {
        guard total > 0 else { return nil }
        let share = q.isFinite ? min(1, max(0, q)) : 1
        let rank = max(1, min(total, Checked.clampedInt((share * Double(total)).rounded(.up))))
        var seen = 0
        for (i, n) in counts.enumerated() where n > 0 {
            seen += Int(n)
            if seen >= rank { return Self.value(ofBucket: i) }
        }
        return Self.value(ofBucket: Self.bucketCount - 1)
    }
}

/// A stretch of time a provider was out of rotation, from its eviction to its return.
public struct EvictionWindow: Sendable, Hashable {
    public var provider: String
    public var group: Int
    public var from: Double
    /// nil while it is still out (evicted or probing).
    public var to: Double?
    public var reason: String
}

/// Counts of a provider's tries by status class.
public struct ClassCounts: Sendable, Hashable {
    public var ok = 0
    public var rateLimited = 0
    public var clientError = 0
    public var serverError = 0
    public var noResponse = 0

    mutating func add(status: Int?) {
        guard let status, status > 0 else { noResponse += 1; return }
        switch status {
        case 429: rateLimited += 1
        case 200..<400: ok += 1
        case 400..<500: clientError += 1
        default: serverError += 1
        }
    }
}

/// What the dashboard is fed: everything carries its time (seconds since start).
public enum LabEvent: Sendable {
    /// Time passes.
    case tick(now: Double)
    case request(RequestEntry)
    case health(HealthEvent)
    /// The balancer's current view of the providers, group by group (the layout: names, stand-ins).
    case providers([[ProviderStatus]])
    /// What one replica reports about its providers: the provider-state event of every source
    /// (the in-process lab's balancer, `watch`'s admin polls and access logs).
    case replica(ReplicaSnapshot)
    /// A stand-in's behaviour changed.
    case fault(standIn: String, behavior: String, at: Double)
    /// Traffic paused or resumed, or its rate changed.
    case traffic(paused: Bool, rate: Double, at: Double)
    /// `+`/`-`: the traffic runs at this multiple of its plan.
    case scale(Double, at: Double)
    /// The lab's steps as they stand (nil: the lab has none).
    case steps(StepPanel?)
    /// A step began, ended or waits: a line in the events panel.
    case step(String, passed: Bool?, at: Double)
    /// Counters and rate history start again from zero.
    case clear(at: Double)
    case note(String, at: Double)
}

/// Everything the dashboard shows, as a value. `reduce` is pure: time comes in with the events.
public struct LabModel: Sendable {
    public static let requestHistory = 500
    public static let eventHistory = 200
    /// Seconds of per-second history: the charts' longest window (10 min), the current second and one spare.
    public static let secondsHistory = 602
    /// Eviction windows kept for the charts' bands.
    public static let evictionHistory = 256

    public var scenario: String
    public var gatewayURL: String
    /// The traffic plan in words, e.g. `open loop`.
    public var plan: String
    public var now: Double = 0
    public var paused = false
    /// The plan's constant rate, when it is one (0 otherwise); the header shows it times `scale`.
    public var rate: Double
    /// `+`/`-`: the multiple of its plan the traffic runs at.
    public var scale: Double = 1
    /// The lab's steps, for the lab panel; nil when the lab has none.
    public var steps: StepPanel?
    /// True when the gateway is not ours (`run --target`): no balancer view, providers come from responses.
    public var external = false

    public var groups: [[ProviderStatus]] = []
    public var requests = Ring<RequestEntry>(capacity: LabModel.requestHistory)
    public var events = Ring<EventEntry>(capacity: LabModel.eventHistory)
    public var seconds = Ring<SecondBucket>(capacity: LabModel.secondsHistory)
    /// Oldest first, at most `evictionHistory`; from the health events.
    public var evictions: [EvictionWindow] = []
    /// Counts since start (or the last clear) by status code; 0 is no response.
    public var statusTotals: [Int: Int] = [:]
    public var total = 0
    /// Tries by provider and status class, since start or the last clear.
    public var providerCounts: [String: ClassCounts] = [:]
    /// Providers named in responses, in the order first seen (for `--target`).
    public var seenProviders: [String] = []
    public var countingSince: Double = 0
    /// The last report of each replica, and the replicas in the order first heard of.
    public var replicaSnapshots: [String: ReplicaSnapshot] = [:]
    public var replicaNames: [String] = []
    /// The backend whose groups are shown when replicas report several; nil: the first.
    public var backendShown: String?

    public init(scenario: String, gatewayURL: String, plan: String, rate: Double, groups: [[ProviderStatus]] = [], external: Bool = false) {
        self.scenario = scenario
        self.gatewayURL = gatewayURL
        self.plan = plan
        self.rate = rate
        self.groups = groups
        self.external = external
    }

    /// The pure reducer: the model after one event.
    public static func reduce(_ state: LabModel, _ event: LabEvent) -> LabModel {
        var next = state
        next.apply(event)
        return next
    }

    public mutating func apply(_ event: LabEvent) {
        switch event {
        case .tick(let t):
            now = max(now, t)
        case .request(let r):
            now = max(now, r.at)
            record(r)
        case .health(let h):
            now = max(now, h.at)
            let kind: EventEntry.Kind
            switch h.kind {
            case .evicted(let d, let reason, let times):
                kind = .evicted(duration: d, reason: reason, times: times)
                openEviction(h.provider, group: h.group, at: h.at, reason: reason)
                update(h.provider) { p in
                    p.state = .evicted(until: h.at + d, reason: reason)
                    p.timesEvicted = max(p.timesEvicted, times)
                    p.evictedFor = d
                }
            case .returned:
                kind = .returned
                closeEviction(h.provider, at: h.at)
                update(h.provider) { $0.state = .healthy }
            case .probeSent:
                kind = .probeSent
                update(h.provider) { p in
                    if case .evicted(_, let reason) = p.state { p.state = .probing(reason: reason) }
                }
            case .probeFailed:
                kind = .probeFailed
            }
            events.append(EventEntry(at: h.at, subject: h.provider, kind: kind))
        case .providers(let snapshot):
            // The stand-in's fault is ours, not the balancer's: keep it across snapshots.
            var faults: [String: String] = [:]
            for p in groups.joined() { if let f = p.fault { faults[p.name] = f } }
            groups = snapshot.map { group in
                group.map { p in
                    var p = p
                    if p.fault == nil { p.fault = faults[p.name] }
                    return p
                }
            }
            // A return the events missed (the dashboard's own `r`, a lost event) still ends the band.
            for p in groups.joined() where p.state == .healthy { closeEviction(p.name, at: now) }
        case .replica(let snapshot):
            now = max(now, snapshot.at)
            if replicaSnapshots[snapshot.replica] == nil {
                guard replicaNames.count < 64 else { return }
                replicaNames.append(snapshot.replica)
            }
            replicaSnapshots[snapshot.replica] = snapshot
            rebuildGroups()
            // The same for the states the sources report (the lab's balancer each frame, watch's
            // replicas): a source with no health events (a real agentgateway's /config_dump)
            // opens its bands here, from when the eviction began if the report says.
            for p in groups.joined() {
                switch p.state {
                case .healthy:
                    closeEviction(p.name, at: now)
                case .evicted(let until, let reason):
                    let began = p.evictedFor.map { until - $0 }.map { min(now, $0) } ?? now
                    openEviction(p.name, group: p.group, at: began.isFinite ? began : now, reason: reason)
                case .probing:
                    break
                }
            }
        case .fault(let standIn, let behavior, let at):
            now = max(now, at)
            // Told twice (the key's answer and the lab's own view): one line.
            let current = groups.joined().filter { $0.standIn == standIn }
            if !current.isEmpty && current.allSatisfy({ $0.fault == behavior }) { return }
            for g in groups.indices {
                for i in groups[g].indices where groups[g][i].standIn == standIn { groups[g][i].fault = behavior }
            }
            events.append(EventEntry(at: at, subject: standIn, kind: .fault(behavior: behavior)))
        case .traffic(let isPaused, let newRate, let at):
            now = max(now, at)
            if isPaused != paused {
                events.append(EventEntry(at: at, subject: nil, kind: .note(isPaused ? "traffic paused" : "traffic resumed")))
            } else if newRate != rate {
                events.append(EventEntry(at: at, subject: nil, kind: .note("rate set to \(Format.rate(newRate))")))
            }
            paused = isPaused
            rate = newRate
        case .scale(let factor, let at):
            now = max(now, at)
            if factor != scale {
                let text = rate > 0 ? "rate set to \(Format.rate(rate * factor)) (\(Format.scale(factor)) the plan)" : "traffic at \(Format.scale(factor)) its plan"
                events.append(EventEntry(at: at, subject: nil, kind: .note(text)))
            }
            scale = factor
        case .steps(let panel):
            steps = panel
        case .step(let text, let passed, let at):
            now = max(now, at)
            events.append(EventEntry(at: at, subject: nil, kind: .step(text, passed: passed)))
        case .clear(let at):
            now = max(now, at)
            statusTotals = [:]
            total = 0
            providerCounts = [:]
            seconds.removeAll()
            countingSince = at
            events.append(EventEntry(at: at, subject: nil, kind: .note("counters cleared")))
        case .note(let text, let at):
            now = max(now, at)
            events.append(EventEntry(at: at, subject: nil, kind: .note(text)))
        }
    }

    /// The backend the groups panel shows: the chosen one, else the first any replica reports with providers.
    public var shownBackend: String? {
        if let backendShown { return backendShown }
        for name in replicaNames {
            if let b = replicaSnapshots[name]?.backends.first(where: { !$0.groups.joined().isEmpty }) { return b.name }
        }
        return nil
    }

    /// The active group (0-based) on each replica for the shown backend; nil when all are out
    /// or the replica has not reported it.
    public func activeGroup(on replica: String) -> Int? {
        replicaSnapshots[replica]?.backends.first { $0.name == shownBackend }?.activeGroup
    }

    /// Why a replica shows no live state, when it does not answer.
    public func unreachableReason(_ replica: String) -> String? {
        if case .unreachable(let why)? = replicaSnapshots[replica]?.reachability { return why }
        return nil
    }

    /// The groups, from every replica's report: the union of their providers, group by group;
    /// each provider's own fields from the first replica that has it, its state on each.
    private mutating func rebuildGroups() {
        guard let backend = shownBackend else { return }
        var kept: [String: ProviderStatus] = [:]
        for p in groups.joined() { kept[p.name] = p }
        var layout: [[String]] = []
        var firstView: [String: (view: ProviderView, at: Double)] = [:]
        for name in replicaNames {
            guard let s = replicaSnapshots[name], let b = s.backends.first(where: { $0.name == backend }) else { continue }
            for (g, group) in b.groups.enumerated() {
                while layout.count <= g { layout.append([]) }
                for p in group where !layout[g].contains(p.name) && layout[g].count < 1000 {
                    layout[g].append(p.name)
                    if firstView[p.name] == nil { firstView[p.name] = (p, s.at) }
                }
            }
        }
        func status(_ v: ProviderView, at: Double) -> ProviderStatus.State {
            switch v.state {
            case .healthy: return .healthy
            case .evicted: return .evicted(until: v.until ?? at, reason: v.source == .inferred ? "inferred" : (v.report.reason ?? "reported"))
            case .probing: return .probing(reason: v.report.reason ?? "eviction")
            }
        }
        groups = layout.enumerated().map { g, names in
            names.map { name in
                guard let (v, at) = firstView[name] else { return ProviderStatus(name: name, group: g) }
                var p = kept[name] ?? ProviderStatus(name: name, group: g)
                p.group = g
                p.state = status(v, at: at)
                if case .probing(let sent) = v.state { p.probeSent = sent } else { p.probeSent = false }
                p.inferred = v.source == .inferred
                p.health = v.report.health ?? p.health
                p.latency = v.report.latency
                p.inFlight = v.report.inFlight ?? 0
                p.timesEvicted = v.report.timesEjected ?? p.timesEvicted
                p.evictedFor = v.evictedFor ?? p.evictedFor
                p.replicas = replicaNames.compactMap { r in
                    guard let s = replicaSnapshots[r], let pv = s.backends.first(where: { $0.name == backend })?.groups.joined().first(where: { $0.name == name }) else {
                        return nil
                    }
                    var sent = false
                    if case .probing(let x) = pv.state { sent = x }
                    return ReplicaState(replica: r, state: status(pv, at: s.at), probeSent: sent, inferred: pv.source == .inferred,
                                        unreachable: { if case .unreachable = s.reachability { return true }; return false }())
                }
                return p
            }
        }
    }

    private mutating func update(_ provider: String, _ change: (inout ProviderStatus) -> Void) {
        for g in groups.indices {
            for i in groups[g].indices where groups[g][i].name == provider { change(&groups[g][i]) }
        }
    }

    /// A failed probe evicts again: the window that is open stays open.
    private mutating func openEviction(_ provider: String, group: Int, at: Double, reason: String) {
        if evictions.contains(where: { $0.provider == provider && $0.to == nil }) { return }
        evictions.append(EvictionWindow(provider: provider, group: group, from: at, to: nil, reason: reason))
        if evictions.count > Self.evictionHistory { evictions.removeFirst(evictions.count - Self.evictionHistory) }
    }

    private mutating func closeEviction(_ provider: String, at: Double) {
        guard let i = evictions.lastIndex(where: { $0.provider == provider && $0.to == nil }) else { return }
        evictions[i].to = max(evictions[i].from, at)
    }

    private mutating func record(_ r: RequestEntry) {
        requests.append(r)
        total += 1
        statusTotals[r.status ?? 0, default: 0] += 1
        if r.attempts.isEmpty {
            if let p = r.provider {
                providerCounts[p, default: ClassCounts()].add(status: r.status)
                noteSeen(p)
            }
        } else {
            for a in r.attempts {
                providerCounts[a.provider, default: ClassCounts()].add(status: a.status)
                noteSeen(a.provider)
            }
        }
        let second = Checked.clampedInt(r.at.rounded(.down))
        if (seconds.last?.second ?? Int.min) < second {
            // Seconds with no requests stay implicit; the charts read missing seconds as zero.
            seconds.append(SecondBucket(second: second))
        }
        seconds.updateLast { bucket in
            guard bucket.second == second else { return }  // a late arrival for an older second is dropped
            bucket.count += 1
            bucket.classes[r.statusClass, default: 0] += 1
            bucket.codes[r.status ?? 0, default: 0] += 1
            bucket.latencySum += r.latency
            bucket.latencyMax = max(bucket.latencyMax, r.latency)
            if let p = r.provider { bucket.providers[p, default: 0] += 1 }
            bucket.latencies.add(r.latency)
        }
    }

    private mutating func noteSeen(_ provider: String) {
        if !seenProviders.contains(provider) && seenProviders.count < 64 { seenProviders.append(provider) }
    }

    // MARK: derived values

    /// The first group with a provider in rotation; nil when every provider is out.
    public var activeGroup: Int? {
        groups.firstIndex { group in group.contains { !$0.isOut } }
    }

    /// Requests per second, one value per second of the last `n` whole seconds (oldest first).
    public func perSecond(last n: Int, _ value: (SecondBucket) -> Double) -> [Double] {
        let current = Checked.clampedInt(now.rounded(.down))
        var byStart: [Int: SecondBucket] = [:]
        for b in seconds.elements where b.second > current - n - 1 { byStart[b.second] = b }
        return ((current - n)..<current).map { s in byStart[s].map(value) ?? 0 }
    }

    /// Counts by status code in the last `window` seconds (the current second included).
    public func recentCodes(window: Int = 10) -> [Int: Int] {
        let current = Checked.clampedInt(now.rounded(.down))
        var out: [Int: Int] = [:]
        for b in seconds.elements where b.second > current - window {
            for (code, n) in b.codes { out[code, default: 0] += n }
        }
        return out
    }

    /// Requests per second over the last five whole seconds (or the time since the start or clear).
    public var achievedRate: Double {
        let span = min(5.0, max(0, Double(Checked.clampedInt(now.rounded(.down))) - countingSince.rounded(.down)))
        guard span >= 1 else { return 0 }
        let counts = perSecond(last: Int(span)) { Double($0.count) }
        return counts.reduce(0, +) / span
    }

    /// All providers in order, for selection.
    public var allProviders: [ProviderStatus] { Array(groups.joined()) }
}

/// Number and time formatting shared by panels and headless output.
public enum Format {
    public static func rate(_ r: Double) -> String {
        r >= 100 || r == r.rounded() ? "\(Checked.clampedInt(r))/s" : fixed(r, 1) + "/s"
    }

    public static func fixed(_ v: Double, _ decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let n = Int((abs(v) * scale).rounded())
        let sign = v < 0 && n != 0 ? "-" : ""
        let whole = n / Int(scale)
        guard decimals > 0 else { return sign + String(whole) }
        var frac = String(n % Int(scale))
        while frac.count < decimals { frac = "0" + frac }
        return sign + String(whole) + "." + frac
    }

    /// `12ms`, `1.4s`, `850µs`.
    public static func latency(_ seconds: Double) -> String {
        if seconds < 0.001 { return "\(Int((seconds * 1_000_000).rounded()))µs" }
        if seconds < 1 { return "\(Checked.clampedInt(seconds * 1000))ms" }
        return fixed(seconds, seconds < 10 ? 2 : 1) + "s"
    }

    /// `mm:ss` (or `h:mm:ss`) since start.
    public static func clock(_ seconds: Double) -> String {
        let s = max(0, Checked.clampedInt(seconds.rounded(.down)))
        let h = s / 3600, m = (s / 60) % 60, sec = s % 60
        let mm = m < 10 ? "0\(m)" : "\(m)", ss = sec < 10 ? "0\(sec)" : "\(sec)"
        return h > 0 ? "\(h):\(mm):\(ss)" : "\(mm):\(ss)"
    }

    /// `mm:ss.t` since start, for log rows.
    public static func stamp(_ seconds: Double) -> String {
        let tenths = Int((max(0, seconds) * 10).rounded(.down)) % 10
        return clock(seconds) + "." + String(tenths)
    }

    /// A whole number of seconds, rounded up: a countdown never shows 0 before it is over.
    /// A traffic multiple: `x2`, `x0.5`.
    public static func scale(_ factor: Double) -> String {
        "x" + (factor >= 10 || factor == factor.rounded() ? fixed(factor, 0) : fixed(factor, factor < 1 ? 2 : 1))
    }

    public static func countdown(_ seconds: Double) -> String {
        "\(Int(max(0, seconds).rounded(.up)))s"
    }

    public static func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
        let n = s.unicodeScalars.count
        if n >= width { return s }
        let fill = String(repeating: " ", count: width - n)
        return right ? fill + s : s + fill
    }

    public static func percent(_ part: Int, _ whole: Int) -> String {
        guard whole > 0 else { return "-" }
        return "\(Checked.clampedInt(Double(part) * 100 / Double(whole)))%"
    }
}

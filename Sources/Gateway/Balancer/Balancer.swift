/// Why a provider was evicted, in the words the dashboard and the log use.
public enum EvictionReason: Sendable, Hashable, CustomStringConvertible {
    /// A 429 with a short reset hint: a per-minute style rate limit.
    case rate
    /// A 429 whose hint is over 10 minutes or whose body says `insufficient_quota`.
    case quota
    /// A 5xx (or another status the health policy calls unhealthy).
    case status(Int)
    /// The connection to the upstream failed.
    case connect
    /// The upstream did not answer within the request timeout.
    case timeout
    /// The upstream response broke off halfway.
    case broken

    public var description: String {
        switch self {
        case .rate: return "429 rate"
        case .quota: return "429 quota"
        case .status(let code): return code >= 500 ? "5xx" : "\(code)"
        case .connect: return "connect"
        case .timeout: return "timeout"
        case .broken: return "broken"
        }
    }
}

/// What one upstream try came to.
public enum AttemptOutcome: Sendable, Hashable {
    /// A response head was read. `resetHint` comes from the rate-limit headers;
    /// `quotaExhausted` is true when the body said `insufficient_quota`.
    case response(status: Int, resetHint: Duration?, quotaExhausted: Bool)
    case connectFailed
    case timedOut
    case broken

    var status: Int? {
        if case .response(let status, _, _) = self { return status }
        return nil
    }
}

/// When a response counts as unhealthy and what eviction follows (SEMANTICS section 4).
public enum HealthRule: Sendable {
    /// No health policy: a 429 with a reset hint evicts for exactly that long; other
    /// failures lower health only.
    case lab
    /// A health policy applies.
    case policy(HealthPolicyRule)
}

/// A health policy, ready to evaluate.
public struct HealthPolicyRule: Sendable {
    /// When a response is unhealthy; a missing response (connect error, reset, timeout) always is.
    public var condition: UnhealthyCondition
    public var eviction: EvictionSettings
    /// The route's retry backoff, the third fallback for the base duration.
    public var retryBackoff: Duration?

    public init(condition: UnhealthyCondition = .defaultCondition, eviction: EvictionSettings, retryBackoff: Duration? = nil) {
        self.condition = condition
        self.eviction = eviction
        self.retryBackoff = retryBackoff
    }

    /// True when a response with this status (nil: no response) is unhealthy.
    public func isUnhealthy(_ status: Int?) -> Bool {
        status.map(condition.evaluate) ?? true
    }
}

/// The switches for where we do better than agentgateway; all on by default.
public struct BalancerOptions: Sendable, Hashable {
    /// A later, shorter hint never shortens a live eviction.
    public var deadlinesOnlyMoveForward = true
    /// When an eviction ends, one probe request goes first; the rest wait for its answer.
    public var halfOpen = true
    /// 429s with a long hint or `insufficient_quota` are told apart as `quota`.
    public var classifyQuota = true
    /// The longest any eviction lasts (`--max-eviction`): a reset hint, a policy's duration
    /// and its backoff multiplier are all cut to it. A hint longer than this still counts
    /// for the `quota` classification, which looks at the hint as the upstream sent it.
    public var maxEviction = BalancerOptions.defaultMaxEviction

    /// One hour: longer than any per-minute or per-day-window rate limit needs, short
    /// enough that a provider whose hint was wrong comes back the same session.
    public static let defaultMaxEviction = Duration.seconds(3600)

    public init(deadlinesOnlyMoveForward: Bool = true, halfOpen: Bool = true, classifyQuota: Bool = true,
                maxEviction: Duration = BalancerOptions.defaultMaxEviction) {
        self.deadlinesOnlyMoveForward = deadlinesOnlyMoveForward
        self.halfOpen = halfOpen
        self.classifyQuota = classifyQuota
        self.maxEviction = maxEviction
    }
}

/// Identifies a provider in a backend: group (0-based) and index in the group.
public struct ProviderIndex: Sendable, Hashable {
    public var group: Int
    public var index: Int

    public init(group: Int, index: Int) {
        self.group = group
        self.index = index
    }
}

/// The health state of one provider.
public struct ProviderHealth: Sendable {
    public enum State: Sendable, Hashable {
        case healthy
        case evicted(until: ContinuousClock.Instant, reason: EvictionReason)
        /// The eviction is over; the next request is the probe.
        case probeReady(reason: EvictionReason)
        /// The probe request is in flight.
        case probing(reason: EvictionReason)
    }

    public let name: String
    public let group: Int
    public var rule: HealthRule
    public var state: State = .healthy
    /// Health EWMA in 0...1; nil until the first outcome.
    public var health: Double?
    /// Latency EWMA in seconds, from successes; nil until the first.
    public var latency: Double?
    public var inFlight = 0
    /// Evictions since start, for display.
    public var timesEvicted = 0
    /// Evictions since the last success: the backoff multiplier's step.
    public var evictionStreak = 0
    public var consecutiveFailures = 0
    /// How long the current or last eviction was set for.
    public var evictedFor: Duration?

    public init(name: String, group: Int, rule: HealthRule) {
        self.name = name
        self.group = group
        self.rule = rule
    }

    /// `health / (1 + latency * (1 + 0.1 * inFlight))`.
    public var score: Double {
        (health ?? 1) / (1 + (latency ?? 0) * (1 + 0.1 * Double(inFlight)))
    }

    /// True while no ordinary request may be sent to this provider.
    public var isOut: Bool {
        if case .healthy = state { return false }
        return true
    }

    public var stateName: String {
        switch state {
        case .healthy: return "healthy"
        case .evicted: return "evicted"
        case .probeReady, .probing: return "probing"
        }
    }

    public var reason: EvictionReason? {
        switch state {
        case .healthy: return nil
        case .evicted(_, let reason), .probeReady(let reason), .probing(let reason): return reason
        }
    }
}

/// A change in a provider's health that telemetry and the dashboard show.
public struct BalancerEvent: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case evicted(duration: Duration, reason: EvictionReason, times: Int)
        /// The eviction ended and the provider is back in rotation (half-open off, or probe succeeded).
        case returned
        /// The eviction ended and one probe request was sent.
        case probeSent
        /// The probe failed; the provider is evicted again (an `evicted` event follows).
        case probeFailed
    }
    public var provider: String
    public var group: Int
    public var kind: Kind
    public var at: ContinuousClock.Instant
    /// The balancer's decision counter when this happened: choices with a higher
    /// `ProviderChoice.sequence` were made after it.
    public var sequence: UInt64 = 0
}

/// The choice made for a request.
public struct ProviderChoice: Sendable, Hashable {
    public var provider: ProviderIndex
    /// True when every provider was out and we failed open to group 1.
    public var failOpen: Bool
    /// True when this request is the half-open probe.
    public var isProbe: Bool
    /// The balancer's decision counter for this choice (see `BalancerEvent.sequence`).
    public var sequence: UInt64 = 0
}

/// Priority groups, power of two choices, eviction. Pure: time and randomness come in.
public struct BackendBalancer: Sendable {
    public private(set) var groups: [[ProviderHealth]]
    public var options: BalancerOptions
    /// Counts choices and health changes, in the order the balancer saw them.
    public private(set) var sequence: UInt64 = 0
    static let alpha = 0.3
    static let quotaHintThreshold = Duration.seconds(600)

    public init(groups: [[ProviderHealth]], options: BalancerOptions = BalancerOptions()) {
        self.groups = groups
        self.options = options
    }

    public subscript(_ index: ProviderIndex) -> ProviderHealth {
        groups[index.group][index.index]
    }

    /// The first group with a provider in rotation: the active group. nil when all are out.
    public func activeGroup() -> Int? {
        groups.firstIndex { group in group.contains { !$0.isOut || isProbeReady($0) } }
    }

    private func isProbeReady(_ provider: ProviderHealth) -> Bool {
        if case .probeReady = provider.state { return true }
        return false
    }

    /// Ends evictions whose time is up. Returns the events it caused.
    public mutating func expireEvictions(now: ContinuousClock.Instant) -> [BalancerEvent] {
        var events: [BalancerEvent] = []
        for g in groups.indices {
            for i in groups[g].indices {
                guard case .evicted(let until, let reason) = groups[g][i].state, until <= now else { continue }
                if options.halfOpen {
                    groups[g][i].state = .probeReady(reason: reason)
                } else {
                    restore(ProviderIndex(group: g, index: i))
                    events.append(stamp(BalancerEvent(provider: groups[g][i].name, group: g, kind: .returned, at: now)))
                }
            }
        }
        return events
    }

    private mutating func restore(_ index: ProviderIndex) {
        groups[index.group][index.index].state = .healthy
        if case .policy(let rule) = groups[index.group][index.index].rule, let restore = rule.eviction.restoreHealth {
            groups[index.group][index.index].health = restore
        }
    }

    /// Picks the provider for a request and counts it in flight.
    /// Returns nil only when the backend has no providers at all.
    public mutating func choose(now: ContinuousClock.Instant, using rng: inout some RandomNumberGenerator) -> (ProviderChoice, [BalancerEvent])? {
        var events = expireEvictions(now: now)
        var choice: ProviderChoice?
        for g in groups.indices {
            if let probe = groups[g].firstIndex(where: isProbeReady) {
                let reason = groups[g][probe].reason ?? .rate
                groups[g][probe].state = .probing(reason: reason)
                events.append(stamp(BalancerEvent(provider: groups[g][probe].name, group: g, kind: .probeSent, at: now)))
                choice = ProviderChoice(provider: ProviderIndex(group: g, index: probe), failOpen: false, isProbe: true)
                break
            }
            if let pick = powerOfTwo(group: g, inRotationOnly: true, using: &rng) {
                choice = ProviderChoice(provider: ProviderIndex(group: g, index: pick), failOpen: false, isProbe: false)
                break
            }
        }
        if choice == nil, let first = groups.firstIndex(where: { !$0.isEmpty }),
           let pick = powerOfTwo(group: first, inRotationOnly: false, using: &rng) {
            choice = ProviderChoice(provider: ProviderIndex(group: first, index: pick), failOpen: true, isProbe: false)
        }
        guard var choice else { return nil }
        groups[choice.provider.group][choice.provider.index].inFlight += 1
        sequence += 1
        choice.sequence = sequence
        return (choice, events)
    }

    /// Two random draws among the group's candidates (those in rotation, or all); the higher
    /// score wins. Candidates are counted and found in place: this runs for every request.
    private func powerOfTwo(group g: Int, inRotationOnly: Bool, using rng: inout some RandomNumberGenerator) -> Int? {
        let providers = groups[g]
        func isCandidate(_ p: ProviderHealth) -> Bool { !inRotationOnly || !p.isOut }
        /// The index of the `n`th candidate.
        func candidate(_ n: Int) -> Int {
            var seen = 0
            for i in providers.indices where isCandidate(providers[i]) {
                if seen == n { return i }
                seen += 1
            }
            preconditionFailure("fewer candidates than counted")
        }
        var count = 0
        for p in providers where isCandidate(p) { count += 1 }
        guard count > 1 else { return count == 1 ? candidate(0) : nil }
        let a = candidate(Int.random(in: 0..<count, using: &rng))
        let b = candidate(Int.random(in: 0..<count, using: &rng))
        return providers[b].score > providers[a].score ? b : a
    }

    /// Takes back a choice that never reached the upstream (e.g. a request rejected before sending).
    public mutating func cancel(_ choice: ProviderChoice) {
        groups[choice.provider.group][choice.provider.index].inFlight -= 1
        if choice.isProbe, case .probing(let reason) = self[choice.provider].state {
            groups[choice.provider.group][choice.provider.index].state = .probeReady(reason: reason)
        }
    }

    /// Records what a try came to and applies any eviction at once, before the next choice.
    public mutating func record(_ outcome: AttemptOutcome, for choice: ProviderChoice, latency: Duration, now: ContinuousClock.Instant) -> [BalancerEvent] {
        let idx = choice.provider
        var p = groups[idx.group][idx.index]
        var events: [BalancerEvent] = []
        p.inFlight = max(0, p.inFlight - 1)
        let failed = isFailure(outcome, rule: p.rule)
        p.health = Self.ewma(p.health, failed ? 0 : 1)
        if !failed {
            p.latency = Self.ewma(p.latency, latency.seconds)
            p.consecutiveFailures = 0
            p.evictionStreak = 0
            if case .probing = p.state {
                p.state = .healthy
                events.append(stamp(BalancerEvent(provider: p.name, group: idx.group, kind: .returned, at: now)))
            }
            groups[idx.group][idx.index] = p
            return events
        }
        p.consecutiveFailures += 1
        let wasProbing: Bool
        if case .probing = p.state { wasProbing = true } else { wasProbing = false }
        if let (duration, reason) = evictionDecision(outcome, provider: p, probeFailed: wasProbing) {
            let until = now + duration
            switch p.state {
            case .evicted(let current, let currentReason):
                // Failures while evicted never extend the window; with the switch off, a
                // shorter hint may shorten it, as agentgateway's overwrite does.
                if !options.deadlinesOnlyMoveForward && until < current {
                    p.state = .evicted(until: until, reason: currentReason)
                }
            case .probeReady:
                break
            case .healthy, .probing:
                if wasProbing {
                    events.append(stamp(BalancerEvent(provider: p.name, group: idx.group, kind: .probeFailed, at: now)))
                }
                p.state = .evicted(until: until, reason: reason)
                p.timesEvicted += 1
                p.evictionStreak += 1
                p.evictedFor = duration
                events.append(stamp(BalancerEvent(provider: p.name, group: idx.group, kind: .evicted(duration: duration, reason: reason, times: p.timesEvicted), at: now)))
            }
        } else if wasProbing {
            // A failed probe that by itself would not evict still closes the half-open
            // window the same way: evict again for the last duration.
            let duration = min(p.evictedFor ?? .seconds(3), options.maxEviction)
            let reason = Self.reason(for: outcome, hint: nil, classifyQuota: options.classifyQuota)
            events.append(stamp(BalancerEvent(provider: p.name, group: idx.group, kind: .probeFailed, at: now)))
            p.state = .evicted(until: now + duration, reason: reason)
            p.timesEvicted += 1
            p.evictionStreak += 1
            events.append(stamp(BalancerEvent(provider: p.name, group: idx.group, kind: .evicted(duration: duration, reason: reason, times: p.timesEvicted), at: now)))
        }
        groups[idx.group][idx.index] = p
        return events
    }

    /// Ends an eviction now (the dashboard's `r` key).
    public mutating func returnNow(_ index: ProviderIndex, now: ContinuousClock.Instant) -> [BalancerEvent] {
        guard self[index].isOut else { return [] }
        restore(index)
        groups[index.group][index.index].evictionStreak = 0
        return [stamp(BalancerEvent(provider: self[index].name, group: index.group, kind: .returned, at: now))]
    }

    private mutating func stamp(_ event: BalancerEvent) -> BalancerEvent {
        sequence += 1
        var event = event
        event.sequence = sequence
        return event
    }

    func isFailure(_ outcome: AttemptOutcome, rule: HealthRule) -> Bool {
        switch rule {
        case .lab:
            guard let status = outcome.status else { return true }
            return status == 429 || status >= 500
        case .policy(let policy):
            return policy.isUnhealthy(outcome.status)
        }
    }

    /// Whether this failure evicts, for how long and why.
    func evictionDecision(_ outcome: AttemptOutcome, provider p: ProviderHealth, probeFailed: Bool) -> (Duration, EvictionReason)? {
        let hint: Duration?
        if case .response(_, let h, _) = outcome { hint = h } else { hint = nil }
        let reason = Self.reason(for: outcome, hint: hint, classifyQuota: options.classifyQuota)
        switch p.rule {
        case .lab:
            guard outcome.status == 429, let hint else { return nil }
            return (min(hint, options.maxEviction), reason)
        case .policy(let rule):
            let e = rule.eviction
            var evict = e.consecutiveFailures == nil && e.healthThreshold == nil
            if let n = e.consecutiveFailures, p.consecutiveFailures >= n { evict = true }
            if let threshold = e.healthThreshold, (p.health ?? 1) < threshold { evict = true }
            guard evict || probeFailed else { return nil }
            let base = e.duration ?? hint ?? rule.retryBackoff ?? .seconds(3)
            return (Self.scaled(base, by: p.evictionStreak + 1, atMost: options.maxEviction), reason)
        }
    }

    /// `base * times`, at most `limit`; decided by a division, so a long streak or a long
    /// base can never overflow the multiplication.
    static func scaled(_ base: Duration, by times: Int, atMost limit: Duration) -> Duration {
        guard base > .zero, times > 0 else { return min(max(base, .zero), limit) }
        return base > limit / times ? limit : base * times
    }

    static func reason(for outcome: AttemptOutcome, hint: Duration?, classifyQuota: Bool) -> EvictionReason {
        switch outcome {
        case .response(let status, _, let quota):
            if status == 429 {
                if classifyQuota && (quota || (hint.map { $0 > quotaHintThreshold } ?? false)) { return .quota }
                return .rate
            }
            return .status(status)
        case .connectFailed: return .connect
        case .timedOut: return .timeout
        case .broken: return .broken
        }
    }

    static func ewma(_ current: Double?, _ sample: Double) -> Double {
        guard let current else { return sample }
        return alpha * sample + (1 - alpha) * current
    }
}

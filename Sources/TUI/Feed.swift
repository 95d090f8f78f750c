import Driver
import Foundation
import Gateway
import Watch
import Wire

/// Turns the gateway's events and the driver's records into `LabEvent`s, with times as
/// seconds since the lab started. This is the edge; the model never sees a clock.
public struct Feed: Sendable {
    public let start: ContinuousClock.Instant

    public init(start: ContinuousClock.Instant = .now) {
        self.start = start
    }

    public func seconds(_ instant: ContinuousClock.Instant) -> Double {
        Feed.seconds(instant - start)
    }

    public var now: Double { seconds(.now) }

    static func seconds(_ d: Duration) -> Double {
        let c = d.components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }

    /// A gateway event, stamped with when it arrived.
    public func event(_ e: GatewayEvent) -> LabEvent {
        switch e {
        case .request(let log):
            return .request(Feed.entry(log, at: now))
        case .health(_, let b):
            let kind: HealthEvent.Kind
            switch b.kind {
            case .evicted(let duration, let reason, let times):
                kind = .evicted(duration: Feed.seconds(duration), reason: reason.description, times: times)
            case .returned: kind = .returned
            case .probeSent: kind = .probeSent
            case .probeFailed: kind = .probeFailed
            }
            return .health(HealthEvent(at: seconds(b.at), provider: b.provider, group: b.group, kind: kind))
        }
    }

    public static func entry(_ log: RequestLog, at: Double) -> RequestEntry {
        let tokens: Int? = (log.inputTokens == nil && log.outputTokens == nil) ? nil : (log.inputTokens ?? 0) + (log.outputTokens ?? 0)
        var entry = RequestEntry(
            at: at, status: log.status, provider: log.provider, group: log.group,
            latency: seconds(log.duration), tokens: tokens,
            attempts: log.attempts.map { AttemptEntry(provider: $0.provider, status: $0.status, failure: $0.failure) },
            error: log.error)
        entry.trace = TraceRef(log)
        return entry
    }

    /// A driver record (for `run --target`, where the gateway is not ours).
    public static func entry(_ r: RequestRecord, at: Double) -> RequestEntry {
        RequestEntry(
            at: at, status: r.status, provider: r.provider, group: nil,
            latency: Double(r.latency ?? 0) / 1e9, tokens: r.tokens?.total,
            attempts: (r.attempts ?? []).map { AttemptEntry(provider: $0.provider, status: $0.status, failure: $0.failure) },
            error: r.error)
    }

    /// The in-process lab as a source of provider state: the balancer's view as the same
    /// `ReplicaSnapshot` event `watch` makes of a `/config_dump`, with the same meaning of
    /// evicted, probing (probe due or in flight) and active.
    public func replica(_ balancer: BackendBalancer, backend: PlannedBackend, name: String = "lab", at: Double? = nil) -> ReplicaSnapshot {
        let now = at ?? self.now
        let groups = balancer.groups.map { group in
            group.map { p -> ProviderView in
                let state: ProviderState
                var until: Double?
                switch p.state {
                case .healthy: state = .healthy
                case .evicted(let end, _):
                    until = seconds(end)
                    state = .evicted(remaining: max(0, until! - now))
                case .probeReady: state = .probing(probeSent: false)
                case .probing: state = .probing(probeSent: true)
                }
                let report = ProviderReport(name: p.name, state: state, health: p.health, latency: p.latency, inFlight: p.inFlight,
                                            consecutiveFailures: p.consecutiveFailures, timesEjected: p.timesEvicted, reason: p.reason?.description)
                return ProviderView(report: report, until: until, evictedFor: p.evictedFor.map(Feed.seconds), source: .reported)
            }
        }
        return ReplicaSnapshot(replica: name, at: now, reachability: .reachable, backends: [BackendView(name: backend.name, groups: groups)])
    }

    /// What `watch`'s state gives, as the dashboard's events.
    public static func events(_ o: WatchOutput) -> [LabEvent] {
        switch o {
        case .replica(let s):
            return [.replica(s)]
        case .request(let replica, let at, let r):
            var e = RequestEntry(at: at, status: r.status, provider: r.answeredBy, group: r.group, latency: r.latency ?? 0, tokens: r.tokens,
                                 attempts: r.attempts.map { AttemptEntry(provider: $0.provider, status: $0.status, failure: $0.failure) }, error: r.error)
            e.replica = replica
            return [.request(e)]
        case .provider(let c):
            guard c.stateChanged else { return [] }
            var text = "\(c.replica): \(c.provider) (group \(c.group + 1)) \(c.state.word)"
            if let r = c.remaining { text += ", \(Format.countdown(r)) left" }
            if c.source == .inferred { text += " (inferred from the access log)" }
            return [.note(text, at: c.at)]
        case .reachability(let replica, let r, let url, let at):
            switch r {
            case .reachable: return [.note("\(replica): admin reachable", at: at)]
            case .unreachable(let why): return [.note("\(replica): \(url) unreachable: \(why) (retrying)", at: at)]
            case .unknown: return []
            }
        case .note(let text, let at):
            return [.note(text, at: at)]
        case .metrics:
            return []  // the rates arrive with the replica's snapshot
        }
    }

    /// The balancer's view of one backend, with each provider's stand-in and its fault.
    public func providers(_ balancer: BackendBalancer, backend: PlannedBackend, faults: [String: String]) -> [[ProviderStatus]] {
        balancer.groups.enumerated().map { g, group in
            group.enumerated().map { i, p in
                let state: ProviderStatus.State
                switch p.state {
                case .healthy: state = .healthy
                case .evicted(let until, let reason): state = .evicted(until: seconds(until), reason: reason.description)
                case .probeReady(let reason), .probing(let reason): state = .probing(reason: reason.description)
                }
                let planned = backend.groups.indices.contains(g) && backend.groups[g].indices.contains(i) ? backend.groups[g][i] : nil
                let standIn = planned?.standIn
                return ProviderStatus(
                    name: p.name, group: g, state: state, health: p.health, latency: p.latency, inFlight: p.inFlight,
                    timesEvicted: p.timesEvicted, evictedFor: p.evictedFor.map(Feed.seconds),
                    standIn: standIn, fault: standIn.flatMap { faults[$0] })
            }
        }
    }
}

/// Events waiting for the dashboard's thread. Producers (event loops, the driver) only
/// append under a lock; the dashboard takes them all once per turn. Bounded: when the
/// dashboard falls behind, the oldest requests are dropped and counted.
public final class Inbox: @unchecked Sendable {
    private let lock = NSLock()
    private var pending: [LabEvent] = []
    private var droppedCount = 0
    public let limit: Int

    public init(limit: Int = 200_000) {
        self.limit = limit
    }

    public func push(_ event: LabEvent) {
        lock.lock()
        if pending.count >= limit {
            pending.removeFirst(pending.count / 2)
            droppedCount += limit / 2
        }
        pending.append(event)
        lock.unlock()
    }

    /// Everything pushed since the last call, oldest first.
    public func take() -> [LabEvent] {
        lock.lock()
        defer { lock.unlock() }
        let out = pending
        pending.removeAll(keepingCapacity: true)
        return out
    }

    public var dropped: Int {
        lock.lock()
        defer { lock.unlock() }
        return droppedCount
    }
}

import Driver
import Foundation
import Gateway

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

import Foundation

/// The health state of every provider, as `GET /health/providers` serves it.
public enum HealthReport {
    /// A JSON-ready description of each backend's providers at `now`.
    public static func json(runtime: GatewayRuntime, now: ContinuousClock.Instant = .now, wallNow: Date = Date()) -> [String: Any] {
        var backends: [[String: Any]] = []
        for (index, planned) in runtime.plan.backends.enumerated() {
            let balancer = runtime.snapshot(backend: index)
            var providers: [[String: Any]] = []
            for (g, group) in balancer.groups.enumerated() {
                for (p, health) in group.enumerated() {
                    var entry: [String: Any] = [
                        "name": health.name,
                        "group": g + 1,
                        "state": health.stateName,
                        "timesEvicted": health.timesEvicted,
                        "health": health.health ?? 1,
                        "inFlight": health.inFlight,
                        "consecutiveFailures": health.consecutiveFailures,
                        "endpoint": planned.groups[g][p].connect.description,
                    ]
                    if let standIn = planned.groups[g][p].standIn { entry["standIn"] = standIn }
                    if let latency = health.latency { entry["latencyEWMASeconds"] = latency }
                    if let reason = health.reason { entry["reason"] = reason.description }
                    if case .evicted(let until, _) = health.state {
                        let remaining = max(0, (until - now).seconds)
                        entry["evictedUntil"] = RequestLog.timestamp(wallNow.addingTimeInterval(remaining))
                        entry["remainingSeconds"] = (remaining * 1000).rounded() / 1000
                    }
                    if let evictedFor = health.evictedFor { entry["lastEvictionSeconds"] = evictedFor.seconds }
                    providers.append(entry)
                }
            }
            var backend: [String: Any] = ["name": planned.name, "providers": providers]
            backend["activeGroup"] = balancer.activeGroup().map { $0 + 1 } ?? NSNull()
            backends.append(backend)
        }
        return ["backends": backends]
    }
}

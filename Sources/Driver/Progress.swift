/// The one-line status of a running driver: rate, in flight, codes so far, elapsed / total.
public struct ProgressLine: Sendable {
    public var totalDuration: Nanos?
    public var totalRequests: UInt64?
    private var lastCompleted: UInt64 = 0
    private var lastElapsed: Nanos = 0

    public init(totalDuration: Nanos?, totalRequests: UInt64?) {
        self.totalDuration = totalDuration
        self.totalRequests = totalRequests
    }

    /// The line for `stats`; the rate is over the time since the previous call.
    public mutating func render(_ stats: DriverStats) -> String {
        let dt = stats.elapsed > lastElapsed ? stats.elapsed - lastElapsed : 0
        let dn = stats.completed >= lastCompleted ? stats.completed - lastCompleted : 0
        let rate = dt > 0 ? Double(dn) / (Double(dt) / 1e9) : 0
        lastElapsed = stats.elapsed
        lastCompleted = stats.completed
        var s = Units.fixed(Double(stats.elapsed) / 1e9, 1) + "s"
        if let d = totalDuration { s += "/" + Units.formatDuration(d) }
        s += "  " + Units.fixed(rate, 0) + "/s  in flight " + String(stats.inFlight)
        s += "  done " + String(stats.completed)
        if let n = totalRequests { s += "/" + String(n) }
        if stats.late > 0 { s += "  late " + String(stats.late) }
        let codes = stats.statusCounts.sorted { $0.key < $1.key }.prefix(6)
            .map { ($0.key == 0 ? "err" : String($0.key)) + ":" + String($0.value) }
        if !codes.isEmpty { s += "  " + codes.joined(separator: " ") }
        if stats.paused { s += "  [paused]" }
        return s
    }
}

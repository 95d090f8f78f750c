import Foundation

/// The dashboard's frame times, opt-in: with `FAILOVER_LAB_FRAME_TIMES=1` in the
/// environment, `run` and `watch` print one line to stderr when the dashboard closes:
/// frames drawn, then the p50 / p99 / max of the whole frame (taking in the events since the
/// last frame, drawing, writing to the terminal) and of each of the three parts, in wall
/// time, and the CPU time the dashboard's thread spent on the frame (wall time includes
/// waiting for a core when the lab's own threads keep both busy). Only the variable's
/// value `1` is read.
public struct FrameTimes: Sendable {
    public static let variable = "FAILOVER_LAB_FRAME_TIMES"
    /// At most this many frames are kept (about 2.3 hours at 10 frames a second); later ones are not.
    static let capacity = 1 << 17

    /// Seconds each: the whole frame, the events taken in, the render, the terminal write.
    public private(set) var total: [Double] = []
    public private(set) var refresh: [Double] = []
    public private(set) var render: [Double] = []
    public private(set) var present: [Double] = []
    /// The dashboard thread's CPU seconds during the frame.
    public private(set) var cpu: [Double] = []

    public init() {}

    /// The calling thread's CPU time in seconds.
    public static func threadCPU() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    public static func enabled(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        environment[variable] == "1"
    }

    public mutating func add(refresh: Double, render: Double, present: Double, cpu: Double) {
        guard total.count < Self.capacity else { return }
        self.cpu.append(cpu)
        self.refresh.append(refresh)
        self.render.append(render)
        self.present.append(present)
        total.append(refresh + render + present)
    }

    /// The `q` quantile (0...1) of `values`, nearest rank; nil when empty.
    static func quantile(_ sorted: [Double], _ q: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = (q * Double(sorted.count)).rounded(.up)
        let i = min(sorted.count - 1, max(0, Int(rank) - 1))  // checked: rank is within 0...count
        return sorted[i]
    }

    static func summary(_ values: [Double]) -> String {
        let sorted = values.sorted()
        func ms(_ v: Double?) -> String { v.map { String(format: "%.2f", $0 * 1000) } ?? "-" }
        return "p50 \(ms(quantile(sorted, 0.5))) p99 \(ms(quantile(sorted, 0.99))) max \(ms(sorted.last)) ms"
    }

    /// The line printed at exit.
    public var line: String {
        "frame time: \(total.count) frames; whole frame \(Self.summary(total)); CPU \(Self.summary(cpu)), \(String(format: "%.2f", cpu.reduce(0, +))) s in all; "
            + "events \(Self.summary(refresh)); render \(Self.summary(render)); terminal \(Self.summary(present))"
    }
}

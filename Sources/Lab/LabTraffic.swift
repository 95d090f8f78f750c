import Driver
import Foundation

/// The traffic a dashboard on a lab runs, chosen in one place: a replay, else the traffic
/// flags (`drive`'s), else the Scenario's `traffic:`, else 2/s, which waits paused when the
/// lab's steps send their own requests (so their counts stay exact until space starts it).
public struct LabTraffic: Sendable {
    public var config: DriverConfiguration
    /// The header's words for it: `open loop`, `closed loop 32`, `lab traffic`, `replay x.log 4x`.
    public var plan: String
    /// Its constant rate when it is one, else 0 (`+`/`-` then scale it).
    public var rate: Double
    /// Counts what a replay sent and skipped, for the end of the run.
    public var replay: (path: String, diagnostics: ReplayDiagnostics)?

    /// `flags` holds what the command line said (nothing for a plain `run`); `routeURL` is
    /// where the lab's request goes and `base` the gateway a path goes to.
    public static func choose(flags: TrafficSettings, replay: ReplaySettings?, script: LabScript,
                              routeURL: String, base: String, environment: [String: String] = [:]) throws(TrafficError) -> LabTraffic {
        var settings = flags
        /// The lab's route allows 120 s: without a timeout from the flags or the plan, a
        /// request is not given up before that.
        func labTimeout(_ s: inout TrafficSettings) {
            if s.timeout == nil && s.plan?.timeout == nil { s.timeout = "130s" }
        }
        if var replay {
            labTimeout(&settings)
            if replay.target == nil { replay.target = base }
            var (config, diagnostics) = try replay.configuration(duration: try settings.durationValue(), requests: settings.requests,
                                                                 report: { _ in })
            // A dashboard loops until q, not for replay's default 10 s.
            if flags.duration == nil { config.duration = nil }
            try settings.applyEngine(to: &config)
            return LabTraffic(config: config, plan: "replay \((replay.path as NSString).lastPathComponent) \(replay.speed)", rate: 0,
                              replay: (replay.path, diagnostics))
        }
        var plan = "open loop"
        var startPaused = false
        if settings.hasShape || settings.plan != nil {
            if let file = settings.plan?.path, !settings.hasShape { plan = "plan " + (file as NSString).lastPathComponent }
        } else if let traffic = script.traffic {
            settings.plan = traffic
            plan = "lab traffic"
        } else {
            settings.rate = "2/s"
            startPaused = !script.steps.isEmpty
        }
        labTimeout(&settings)
        var config = try settings.configuration(defaultTarget: routeURL, base: base, defaultDuration: nil, environment: environment)
        config.startPaused = startPaused
        var rate = 0.0
        switch config.workload {
        case .closedLoop(let n):
            plan = "closed loop \(n)" + (settings.stream || settings.plan?.stream == true ? " streamed" : "")
        case .openLoop(let phases):
            if phases.count == 1, case .constant(let r) = phases[0].pacing { rate = r }
        case .replay:
            break
        }
        return LabTraffic(config: config, plan: plan, rate: rate)
    }

    /// What the replay did, for the end of the run; nil for other traffic.
    public var summary: String? {
        replay.map { ReplaySettings.summary($0.diagnostics, path: $0.path) }
    }
}

import Foundation
import Testing
@testable import Driver
import Wire

private let second: Nanos = 1_000_000_000

/// The one place that turns traffic flags (drive, run) and a lab's `traffic:` into a run.
@Suite struct TrafficSettingsTests {
    func settings(_ body: (inout TrafficSettings) -> Void) -> TrafficSettings {
        var s = TrafficSettings()
        body(&s)
        return s
    }

    @Test func closedLoopWithTargetsWeightsAndEngineFlags() throws {
        let s = settings {
            $0.targets = [("http://127.0.0.1:1/a", 1), ("http://127.0.0.1:1/b", 1)]
            $0.weights = "3, 1"
            $0.concurrency = 8
            $0.requests = 100
            $0.stream = true
            $0.model = "gpt-x"
            $0.headers = ["x-lab: 1"]
            $0.maxInFlight = 9
            $0.timeout = "2s"
            $0.seed = 42
        }
        let c = try s.configuration()
        guard case .closedLoop(8) = c.workload else { Issue.record("workload \(c.workload)"); return }
        #expect(c.mix.weights == [3, 1])
        #expect(c.mix.requests.map(\.url) == ["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"])
        #expect(c.requestLimit == 100)
        #expect(c.duration == nil, "a request limit ends it; no default duration")
        #expect(c.maxInFlight == 9 && c.timeout == 2 * second && c.seed == 42)
        let body = String(decoding: c.mix.requests[0].body ?? [], as: UTF8.self)
        #expect(body.contains("\"stream\": true") && body.contains("gpt-x"), "\(body)")
        #expect(c.mix.requests[0].headers.contains("x-lab: 1"))
    }

    @Test func openLoopShapes() throws {
        let ramp = try settings { $0.targets = [("http://h:1/", 1)]; $0.rate = "10/s"; $0.rampTo = "50/s"; $0.duration = "4s" }.configuration()
        guard case .openLoop(let phases) = ramp.workload else { Issue.record("not open loop"); return }
        #expect(phases.count == 2)
        #expect(ramp.duration == 4 * second)
        let steps = try settings { $0.targets = [("http://h:1/", 1)]; $0.steps = "1/s,2/s" }.configuration()
        #expect(steps.duration == nil, "steps end by themselves")
        // An endless open loop gets drive's default 10 s, or none when the caller says so (the dashboard).
        let endless = settings { $0.targets = [("http://h:1/", 1)]; $0.rate = "5/s" }
        #expect(try endless.configuration().duration == 10 * second)
        #expect(try endless.configuration(defaultDuration: nil).duration == nil)
    }

    @Test func pathsGoToTheBaseAndNoTargetUsesTheDefault() throws {
        var plan = PlanFile(path: "lab.yaml")
        plan.targets = [.init(url: "/http-429", weight: 1)]
        plan.phases = [Phase(.constant(rate: 5))]
        let lab = try settings { $0.plan = plan }.configuration(base: "http://127.0.0.1:9", defaultDuration: nil)
        #expect(lab.mix.requests.map(\.url) == ["http://127.0.0.1:9/http-429"])
        let none = try settings { $0.rate = "1/s" }.configuration(defaultTarget: "http://127.0.0.1:9/route")
        #expect(none.mix.requests.map(\.url) == ["http://127.0.0.1:9/route"])
        // The default shape drives only when nothing else says how.
        let shaped = try settings { $0.targets = [("http://h:1/", 1)] }.configuration(defaultShape: .closedLoop(concurrency: 3))
        guard case .closedLoop(3) = shaped.workload else { Issue.record("default shape not used"); return }
    }

    @Test func flagsWinOverThePlan() throws {
        var plan = PlanFile(path: "p.yaml")
        plan.targets = [.init(url: "http://h:1/", weight: 1)]
        plan.concurrency = 4
        plan.timeout = 5 * second
        let c = try settings { $0.plan = plan; $0.rate = "7/s"; $0.timeout = "1s" }.configuration()
        guard case .openLoop(let phases) = c.workload, case .constant(7) = phases[0].pacing else { Issue.record("flags lost: \(c.workload)"); return }
        #expect(c.timeout == second)
    }

    @Test func mistakesNameTheFlag() {
        func error(_ body: (inout TrafficSettings) -> Void, base: String? = nil) -> String {
            do {
                _ = try settings(body).configuration(base: base)
                return ""
            } catch {
                return error.description
            }
        }
        #expect(error { $0.rate = "1/s" }.contains("no target"))
        #expect(error { $0.targets = [("ftp://h/", 1)]; $0.rate = "1/s" }.contains("not an http:// or https:// URL"))
        #expect(error { $0.targets = [("/x", 1)]; $0.rate = "1/s" }.contains("a path needs a gateway"))
        #expect(error { $0.targets = [("http://h:1/", 1)]; $0.rate = "1/s"; $0.concurrency = 2 }.contains("cannot be combined"))
        #expect(error { $0.targets = [("http://h:1/", 1)]; $0.rate = "fast" }.hasPrefix("--rate fast"))
        #expect(error { $0.targets = [("http://h:1/", 1)]; $0.concurrency = 0 }.hasPrefix("--concurrency 0"))
        #expect(error { $0.targets = [("http://h:1/", 1)]; $0.concurrency = Int.max }.hasPrefix("--concurrency"))
        #expect(error { $0.targets = [("http://h:1/", 1)] }.contains("say how to drive"))
        #expect(error { $0.targets = [("http://h:1/", 1)]; $0.rate = "1/s"; $0.weights = "1,2" }.hasPrefix("--weights"))
        #expect(error { $0.targets = [("http://h:1/", 1)]; $0.rate = "1/s"; $0.weights = "nan" }.hasPrefix("--weights"))
        #expect(error { $0.targets = [("http://h:1/", 1)]; $0.rate = "1/s"; $0.timeout = "0s" }.hasPrefix("--timeout 0s"))
        #expect(error { $0.targets = [("http://h:1/", 1)]; $0.rate = "1/s"; $0.headers = ["nocolon"] }.hasPrefix("-H 'nocolon'"))
        #expect(error { $0.targets = [("http://h:1/", 1)]; $0.rate = "1/s"; $0.shard = "3/2" }.hasPrefix("--shard 3/2"))
        #expect(error { $0.targets = [("http://h:1/", 1)]; $0.rate = "1/s"; $0.bodyFile = "/nonexistent/body" }.contains("cannot open"))
        #expect(error { $0.targets = [("http://h:1/", 1)]; $0.rate = "1/s"; $0.bodyFile = "/tmp" }.contains("not a regular file"))
        #expect(error { $0.targets = [("http://h:1/", 1)]; $0.rate = "1/s"; $0.rampUp = "1s" }.hasPrefix("--ramp-up opens a closed loop"))
        #expect(error { $0.targets = [("http://h:1/", 1)]; $0.concurrency = 2; $0.rampUp = "0s" }.hasPrefix("--ramp-up 0s"))
        #expect(error { $0.targets = [("http://h:1/", 1)]; $0.concurrency = 2; $0.rampUp = "2h" }.hasPrefix("--ramp-up 2h: at most 1h"))
        #expect(error { $0.targets = [("http://h:1/", 1)]; $0.concurrency = 2; $0.rampUp = "soon" }.hasPrefix("--ramp-up soon"))
    }

    @Test func rampUpOpensAClosedLoopsSlots() throws {
        let c = try settings { $0.targets = [("http://h:1/", 1)]; $0.concurrency = 1000; $0.rampUp = "1500ms" }.configuration()
        #expect(c.rampUp == 1_500_000_000)
        #expect(try settings { $0.targets = [("http://h:1/", 1)]; $0.concurrency = 10 }.configuration().rampUp == nil)
    }

    @Test func replaySettingsCheckTheirFlags() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("replay-\(UUID()).jsonl").path
        try "{}\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        var r = ReplaySettings(path: file)
        r.speed = "0x"
        #expect(throws: TrafficError.self) { _ = try r.configuration(duration: nil, requests: nil, report: { _ in }) }
        r.speed = "2x"
        r.maxGap = "soon"
        #expect(throws: TrafficError.self) { _ = try r.configuration(duration: nil, requests: nil, report: { _ in }) }
        r.maxGap = "1s"
        r.loop = true
        let (config, _) = try r.configuration(duration: nil, requests: nil, report: { _ in })
        #expect(config.duration == 10 * second, "a loop with no limit gets replay's 10 s")
        r.path = "/nonexistent/file.jsonl"
        #expect(throws: TrafficError.self) { _ = try r.configuration(duration: nil, requests: nil, report: { _ in }) }
    }
}

/// Schedule time to run time: pauses shift it, a scale speeds it up from the moment it changes.
@Suite struct ScheduleWarpTests {
    @Test func identityUntilChanged() {
        let w = ScheduleWarp()
        #expect(w.runTime(5 * second) == 5 * second)
        #expect(w.scheduleTime(5 * second) == 5 * second)
    }

    @Test func aPauseShiftsWhatFollows() {
        var w = ScheduleWarp()
        w.paused(for: 2 * second)
        #expect(w.runTime(1 * second) == 3 * second)
        #expect(w.scheduleTime(3 * second) == 1 * second)
    }

    @Test func aScaleChangesOnlyWhatComesAfterIt() {
        var w = ScheduleWarp()
        // At run time 10 s (schedule 10 s) the plan goes twice as fast.
        w.setScale(2, at: 10 * second)
        #expect(w.runTime(10 * second) == 10 * second)
        #expect(w.runTime(12 * second) == 11 * second, "2 schedule seconds in 1 run second")
        #expect(w.scheduleTime(11 * second) == 12 * second)
        // Then half speed from run time 11 s (schedule 12 s).
        w.setScale(0.5, at: 11 * second)
        #expect(w.runTime(13 * second) == 13 * second)
        #expect(w.scheduleTime(13 * second) == 13 * second)
        // Offsets before the anchor map onto it, never back in time.
        #expect(w.runTime(1 * second) == 11 * second)
    }

    @Test func hostileScalesAreClamped() {
        var w = ScheduleWarp()
        w.setScale(.infinity, at: 0)
        #expect(w.scale == 1)
        w.setScale(-3, at: 0)
        #expect(w.scale == ScheduleWarp.scaleRange.lowerBound)
        w.setScale(1e300, at: 0)
        #expect(w.scale == ScheduleWarp.scaleRange.upperBound)
        // Far offsets saturate instead of trapping.
        w.setScale(0.001, at: 0)
        #expect(w.runTime(.max) >= 9_000_000_000_000_000_000)
        #expect(w.scheduleTime(.max) > 0)
    }
}

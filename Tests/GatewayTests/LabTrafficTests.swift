@testable import Driver
import Foundation
@testable import Lab
import Testing

/// Which traffic a dashboard on a lab runs: chosen in one place.
@Suite("Lab traffic")
struct LabTrafficTests {
    static let route = "http://127.0.0.1:9/lab"
    static let base = "http://127.0.0.1:9"
    static let steps = [LabScript.Step(name: "one", send: 1, end: .duration(1_000_000_000))]

    @Test func aPlainRunSends2PerSecondPausedWhenTheStepsSendTheirOwn() throws {
        let withSteps = try LabTraffic.choose(flags: TrafficSettings(), replay: nil, script: LabScript(steps: Self.steps),
                                              routeURL: Self.route, base: Self.base)
        #expect(withSteps.rate == 2 && withSteps.plan == "open loop")
        #expect(withSteps.config.startPaused)
        #expect(withSteps.config.duration == nil, "a dashboard runs until q")
        #expect(withSteps.config.timeout == 130_000_000_000)
        #expect(withSteps.config.mix.requests.map(\.url) == [Self.route])
        let without = try LabTraffic.choose(flags: TrafficSettings(), replay: nil, script: LabScript(steps: []),
                                            routeURL: Self.route, base: Self.base)
        #expect(!without.config.startPaused)
    }

    @Test func theScenariosTrafficUnlessFlagsSayOtherwise() throws {
        var plan = PlanFile(path: "lab.yaml")
        plan.phases = [Phase(.constant(rate: 20))]
        plan.targets = [.init(url: "/lab", weight: 1)]
        plan.timeout = 5_000_000_000
        let script = LabScript(steps: Self.steps, traffic: plan)
        let lab = try LabTraffic.choose(flags: TrafficSettings(), replay: nil, script: script, routeURL: Self.route, base: Self.base)
        #expect(lab.plan == "lab traffic" && lab.rate == 20 && !lab.config.startPaused)
        #expect(lab.config.timeout == 5_000_000_000, "the plan's own timeout, not the lab default")
        #expect(lab.config.mix.requests.map(\.url) == ["http://127.0.0.1:9/lab"])
        var flags = TrafficSettings()
        flags.concurrency = 32
        flags.stream = true
        let closed = try LabTraffic.choose(flags: flags, replay: nil, script: script, routeURL: Self.route, base: Self.base)
        #expect(closed.plan == "closed loop 32 streamed" && closed.rate == 0)
        guard case .closedLoop(32) = closed.config.workload else { Issue.record("\(closed.config.workload)"); return }
        let body = String(decoding: closed.config.mix.requests[0].body ?? [], as: UTF8.self)
        #expect(body.contains("\"stream\": true"), "\(body)")
    }

    @Test func aReplayGoesToTheLabsGateway() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("lab-traffic-\(UUID()).log").path
        try "{}\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        var replay = ReplaySettings(path: file)
        replay.speed = "4x"
        replay.loop = true
        let traffic = try LabTraffic.choose(flags: TrafficSettings(), replay: replay, script: LabScript(steps: Self.steps),
                                            routeURL: Self.route, base: Self.base)
        guard case .replay = traffic.config.workload else { Issue.record("\(traffic.config.workload)"); return }
        #expect(traffic.plan.hasPrefix("replay lab-traffic-") && traffic.plan.hasSuffix(" 4x"))
        #expect(traffic.config.duration == nil, "a looping replay in the dashboard runs until q")
        #expect(traffic.summary?.hasPrefix("replayed 0 requests from") == true)
    }

    @Test func badFlagsAreTheDrivesErrors() {
        var flags = TrafficSettings()
        flags.rate = "lots"
        #expect(throws: TrafficError.self) {
            _ = try LabTraffic.choose(flags: flags, replay: nil, script: LabScript(steps: []), routeURL: Self.route, base: Self.base)
        }
    }
}

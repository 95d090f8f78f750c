import Driver
@testable import Lab
import Testing
@testable import TUI

/// The lab panel, the step keys and the steps' narration: pure, from values.
@Suite struct LabPanelTests {
    static func verdict(_ text: String, holds: Bool, measured: String, until: Bool = false) throws -> ExpectationVerdict {
        ExpectationVerdict(expectation: try Expectation(parsing: text), holds: holds, measured: measured, isUntil: until)
    }

    static func view(index: Int?, live: [ExpectationVerdict] = [], waitingAfter: Int? = nil, finished: Bool = false,
                     verdicts: [StepVerdict?] = [nil, nil, nil]) -> StepRunner.View {
        StepRunner.View(index: index, count: 3, name: "Group 2 serves while group 1 is evicted",
                        say: "The next requests skip the evicted provider and fail over to openai-provider in group 2.",
                        elapsed: 0.4, length: 1, live: live, waitingAfter: waitingAfter, finished: finished, verdicts: verdicts)
    }

    static func stepVerdict(_ i: Int, _ checks: [ExpectationVerdict]) -> StepVerdict {
        StepVerdict(step: i, name: "step \(i)", start: 0, end: 1, ending: .duration, requests: 3, verdicts: checks)
    }

    @Test func whileAStepRunsAHoldingExpectationIsTickedAndTheOthersWait() throws {
        let live = [try Self.verdict("status[200] == 3", holds: false, measured: "2"),
                    try Self.verdict("status[429] == 0", holds: true, measured: "0")]
        let panel = StepPanel(Self.view(index: 1, live: live), stepByKey: false)
        #expect(panel.checks.map(\.mark) == [.undecided, .holds])
        #expect(panel.index == 1 && panel.count == 3)

        var model = SeedLab.start()
        model.apply(.steps(panel))
        let screen = Dashboard.render(model, width: 120, height: 40)
        let text = screen.text
        #expect(text.contains("Lab · step 2 of 3 · 0.4s of 1.0s"), "\(text)")
        #expect(text.contains("Group 2 serves while group 1 is evicted"))
        #expect(text.contains("The next requests skip the evicted provider"))
        #expect(text.contains("… status[200] == 3 (2)"), "\(text)")
        #expect(text.contains("✓ status[429] == 0 (0)"), "\(text)")
        // ASCII marks with --ascii.
        let plain = Dashboard.render(model, width: 120, height: 40, options: RenderOptions(glyphs: .plain)).text
        #expect(plain.contains(".. status[200] == 3 (2)") && plain.contains("ok status[429] == 0 (0)"), "\(plain)")
    }

    @Test func anEndedStepShowsItsVerdictsAndWaitsForN() throws {
        let ended = Self.stepVerdict(1, [try Self.verdict("status[200] == 3", holds: false, measured: "2"),
                                         try Self.verdict("status[429] == 0", holds: true, measured: "0")])
        let panel = StepPanel(Self.view(index: 1, waitingAfter: 1, verdicts: [nil, ended, nil]), stepByKey: true)
        #expect(panel.waiting)
        #expect(panel.checks.map(\.mark) == [.fails, .holds])
        #expect(panel.ended == 1 && panel.held == 0)
        var model = SeedLab.start()
        model.apply(.steps(panel))
        let text = Dashboard.render(model, width: 120, height: 40).text
        #expect(text.contains("step 2 of 3 · press n for step 3"), "\(text)")
        #expect(text.contains("✗ status[200] == 3 (2)"), "\(text)")
    }

    @Test func theFinishedLabSaysHowManyStepsHeld() throws {
        let ok = Self.stepVerdict(0, [try Self.verdict("requests == 1", holds: true, measured: "1")])
        let bad = Self.stepVerdict(1, [try Self.verdict("requests == 1", holds: false, measured: "2")])
        let panel = StepPanel(Self.view(index: nil, finished: true, verdicts: [ok, bad, ok]), stepByKey: false)
        var model = SeedLab.start()
        model.apply(.steps(panel))
        let text = Dashboard.render(model, width: 120, height: 40).text
        #expect(text.contains("Lab · done: 2 of 3 steps held"), "\(text)")
        #expect(text.contains("1 step(s) did not hold"), "\(text)")
    }

    @Test func thePanelFitsSmallTerminalsAndLongText() throws {
        var panel = StepPanel(Self.view(index: 0, live: (0..<12).map { _ in try! Self.verdict("provider[openai-provider] >= 10", holds: false, measured: "1") }), stepByKey: false)
        panel.say = String(repeating: "word ", count: 400)
        var model = SeedLab.start()
        model.apply(.steps(panel))
        let screen = Dashboard.render(model, width: 80, height: 24)
        let lines = screen.text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 24)
        #expect(lines.allSatisfy { $0.count <= 80 })
        // The middle row (requests) and the events keep their room.
        #expect(screen.text.contains("Requests") && screen.text.contains("Events"), "\(screen.text)")
        #expect(screen.text.contains("Lab · step 1 of 3"), "\(screen.text)")
        // Taller: the text shows, cut with an ellipsis after three lines.
        let tall = Dashboard.render(model, width: 120, height: 40).text
        #expect(tall.contains("word word") && tall.contains("word…"), "\(tall)")
    }

    @Test func stepKeysNeedSteps() {
        var s = DashboardState(model: SeedLab.start())
        #expect(s.handle(.char("n")) == [])
        #expect(s.model.events.last.map { Panels.eventText($0).0 }?.contains("no steps") == true)
        s.model.apply(.steps(StepPanel(index: nil, count: 2)))
        #expect(s.handle(.char("n")) == [.nextStep])
        #expect(s.handle(.char("N")) == [.previousStep])
        #expect(Keymap.table.contains { $0.action == .nextStep && $0.keys == [.char("n")] })
    }

    @Test func plusAndMinusScaleWhateverRuns() {
        // A constant rate: the next rate step, as a multiple of the plan.
        #expect(DashboardState.nextScale(rate: 2, scale: 1, up: true) == 2.5)
        #expect(DashboardState.nextScale(rate: 2, scale: 2.5, up: true) == 5)
        #expect(DashboardState.nextScale(rate: 2, scale: 1, up: false) == 0.5)
        // Any other plan (closed loop, phases, replay): doubling and halving.
        #expect(DashboardState.nextScale(rate: 0, scale: 1, up: true) == 2)
        #expect(DashboardState.nextScale(rate: 0, scale: 1, up: false) == 0.5)
        #expect(DashboardState.nextScale(rate: 0, scale: 64, up: true) == nil)
        var m = SeedLab.start()
        m.plan = "closed loop 32"
        m.rate = 0
        m.apply(.scale(2, at: 1))
        #expect(Dashboard.render(m, width: 160, height: 48).text.contains("closed loop 32 x2"))
        #expect(m.events.last.map { Panels.eventText($0).0 } == "traffic at x2 its plan")
    }

    @Test func narrationSaysWhatEachActionDid() throws {
        let steps = [LabScript.Step(name: "First", end: .duration(1_000_000_000)), LabScript.Step(name: "Second", end: .duration(1_000_000_000))]
        let failed = StepVerdict(step: 0, name: "First", start: 0, end: 1, ending: .duration, requests: 2,
                                 verdicts: [try Self.verdict("status[429] == 1", holds: false, measured: "0")])
        let lines = Narration.lines(for: [.begin(step: 0), .send(2), .end(failed), .waitForNext(after: 0), .finished], steps: steps)
        #expect(lines.map(\.text) == [
            "step 1/2 begins: First",
            "step sends 2 requests",
            "step 1/2 failed (2 requests): status[429] == 1, measured 0",
            "press n for step 2/2",
            "lab finished: the lab panel and the report at q have every step's verdict",
        ])
        #expect(lines[2].passed == false)
    }
}

import Testing
@testable import TUI

@Suite struct ReducerTests {
    @Test func firstRequestIsCountedAndEvictsGroupOne() {
        let before = SeedLab.start()
        #expect(before.activeGroup == 0)
        let after = SeedLab.first429(before)
        #expect(after.total == 1)
        #expect(after.statusTotals == [429: 1])
        #expect(after.providerCounts["http-429-provider"]?.rateLimited == 1)
        #expect(after.groups[0][0].state == .evicted(until: 60.1, reason: "429 rate"))
        #expect(after.groups[0][0].timesEvicted == 1)
        #expect(after.activeGroup == 1)
        #expect(after.events.count == 1)
        // The reducer is pure: the model it started from is unchanged.
        #expect(before.total == 0)
    }

    @Test func reduceEqualsApply() {
        var applied = SeedLab.start()
        applied.apply(SeedLab.ok(at: 1.2))
        let reduced = LabModel.reduce(SeedLab.start(), SeedLab.ok(at: 1.2))
        #expect(reduced.total == applied.total)
        #expect(reduced.requests.elements == applied.requests.elements)
        #expect(reduced.now == 1.2)
    }

    @Test func probeAndReturnChangeState() {
        var m = SeedLab.first429(SeedLab.start())
        m.apply(.health(HealthEvent(at: 60.2, provider: "http-429-provider", group: 0, kind: .probeSent)))
        #expect(m.groups[0][0].state == .probing(reason: "429 rate"))
        #expect(m.activeGroup == 0)
        m.apply(.health(HealthEvent(at: 60.3, provider: "http-429-provider", group: 0, kind: .returned)))
        #expect(m.groups[0][0].state == .healthy)
        #expect(m.events.count == 3)
    }

    @Test func recentCodesCoverTheLastTenSeconds() {
        var m = SeedLab.afterFailover(SeedLab.start())
        #expect(m.recentCodes()[200] == 12)
        #expect(m.recentCodes()[429] == 1)
        m.apply(.tick(now: 30))
        #expect(m.recentCodes().isEmpty)
        #expect(m.statusTotals[200] == 12)  // totals stay
    }

    @Test func perSecondCountsAndAchievedRate() {
        var m = SeedLab.start()
        for i in 0..<20 { m.apply(SeedLab.ok(at: Double(i) * 0.5)) }  // 2/s for 10 s
        m.apply(.tick(now: 10.05))
        let counts = m.perSecond(last: 5) { Double($0.count) }
        #expect(counts == [2, 2, 2, 2, 2])
        #expect(m.achievedRate == 2)
    }

    @Test func clearResetsCountersButKeepsHistoryOfEvents() {
        var m = SeedLab.afterFailover(SeedLab.start())
        m.apply(.clear(at: 7))
        #expect(m.total == 0)
        #expect(m.statusTotals.isEmpty)
        #expect(m.providerCounts.isEmpty)
        #expect(m.recentCodes().isEmpty)
        #expect(m.events.count == 2)
    }

    @Test func historyIsBounded() {
        var m = SeedLab.start()
        for i in 0..<(LabModel.requestHistory * 3) { m.apply(SeedLab.ok(at: Double(i) * 0.01)) }
        #expect(m.requests.count == LabModel.requestHistory)
        #expect(m.requests.last?.at == Double(LabModel.requestHistory * 3 - 1) * 0.01)
        #expect(m.seconds.count <= LabModel.secondsHistory)
        #expect(m.total == LabModel.requestHistory * 3)
    }

    @Test func faultAndTrafficEvents() {
        var m = SeedLab.start()
        m.apply(.fault(standIn: "openai", behavior: "slow", at: 1))
        #expect(m.groups[1][0].fault == "slow")
        m.apply(.traffic(paused: true, rate: 2, at: 2))
        #expect(m.paused)
        m.apply(.traffic(paused: true, rate: 5, at: 3))
        #expect(m.rate == 5)
        #expect(m.events.count == 3)
        // A later balancer snapshot without faults keeps the stand-in's fault.
        m.apply(.providers([[ProviderStatus(name: "http-429-provider", group: 0, standIn: "http-429")],
                            [ProviderStatus(name: "openai-provider", group: 1, standIn: "openai")]]))
        #expect(m.groups[1][0].fault == "slow")
    }

    @Test func ringKeepsTheNewest() {
        var r = Ring<Int>(capacity: 3)
        for i in 1...7 { r.append(i) }
        #expect(r.elements == [5, 6, 7])
        #expect(r.last == 7)
        r.updateLast { $0 = 70 }
        #expect(r.suffix(2) == [6, 70])
    }
}

@Suite struct KeyHandlingTests {
    @Test func keysBecomeCommands() {
        var s = DashboardState(model: SeedLab.first429(SeedLab.start()), themeCount: 4)
        #expect(s.handle(.char(" ")) == [.setPaused(true)])
        // A constant-rate plan (2/s): + and - step through the rates, as multiples of the plan.
        #expect(s.handle(.char("+")) == [.setScale(2.5)])
        #expect(s.handle(.char("-")) == [.setScale(0.5)])
        #expect(s.handle(.char("s")) == [.sendOne])
        #expect(s.handle(.char("f")) == [.setFault(standIn: "http-429", step: .serverErrors)])
        #expect(s.handle(.char("r")) == [.returnNow(group: 0, index: 0)])
        #expect(s.handle(.down) == [])
        #expect(s.selectedProvider?.name == "openai-provider")
        #expect(s.handle(.char("f")) == [.setFault(standIn: "openai", step: .rateLimited)])
        #expect(s.handle(.char("r")) == [])  // not evicted: a note instead
        #expect(s.handle(.up) == [])
        #expect(s.selectedProvider?.name == "http-429-provider")
        #expect(s.handle(.char("t")) == [])
        #expect(s.themeIndex == 1)
        #expect(s.handle(.char("?")) == [])
        #expect(s.showHelp)
        #expect(s.handle(.escape) == [])
        #expect(!s.showHelp)
        #expect(s.handle(.char("c")) == [.clearCounters])
        #expect(s.handle(.char("q")) == [.quit])
        #expect(s.handle(.char("Z")) == [])
    }

    @Test func faultCycleOrder() {
        var step: String? = "healthy"
        var seen: [FaultStep] = []
        for _ in 0..<6 {
            let next = FaultStep.after(step)
            seen.append(next)
            step = next.rawValue
        }
        #expect(seen == [.rateLimited, .serverErrors, .slow, .slowModel, .down, .healthy])
    }
}

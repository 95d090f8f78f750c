import Testing
@testable import Driver
import Wire

private func schedule(_ phases: [Phase], seed: UInt64 = 7, limit: Int = 1_000_000, until: Nanos = .max) -> [Nanos] {
    var p = Pacer(phases: phases, rng: SeededRandom(seed: seed))
    var out: [Nanos] = []
    while out.count < limit, let t = p.next(), t < until { out.append(t) }
    return out
}

private let second: Nanos = 1_000_000_000

@Suite struct UnitsTests {
    @Test func durations() {
        #expect(Units.parseDuration("30s") == 30 * second)
        #expect(Units.parseDuration("500ms") == 500_000_000)
        #expect(Units.parseDuration("1m30s") == 90 * second)
        #expect(Units.parseDuration("250us") == 250_000)
        #expect(Units.parseDuration("2") == 2 * second)
        #expect(Units.parseDuration("1.5h") == 5400 * second)
        #expect(Units.parseDuration("ten seconds") == nil)
        #expect(Units.parseDuration("5parsecs") == nil)
        #expect(Units.parseDuration("") == nil)
    }

    @Test func rates() {
        #expect(Units.parseRate("200/s") == 200)
        #expect(Units.parseRate("200") == 200)
        #expect(Units.parseRate("600/m") == 10)
        #expect(Units.parseRate("3/ms") == 3000)
        #expect(Units.parseRate("fast") == nil)
        #expect(Units.parseRate("10/fortnight") == nil)
        #expect(Units.parseSpeed("2x") == 2)
        #expect(Units.parseSpeed("0.5") == 0.5)
        #expect(Units.parseSpeed("0x") == nil)
    }

    @Test func formatting() {
        #expect(Units.formatDuration(850_000) == "850.0us")
        #expect(Units.formatDuration(12_345_678) == "12.3ms")
        #expect(Units.formatDuration(4_200_000_000) == "4.20s")
        #expect(Units.fixed(-1.25, 1) == "-1.3" || Units.fixed(-1.25, 1) == "-1.2")
        #expect(Units.fixed(0.5, 3) == "0.500")
    }
}

@Suite struct PacerTests {
    @Test func constantRateIsEvenlySpaced() {
        let ts = schedule([Phase(.constant(rate: 100), duration: second)])
        #expect(ts.count == 100)
        #expect(ts.first == 0)
        for (i, t) in ts.enumerated() { #expect(t == Nanos(i) * 10_000_000) }
    }

    @Test func constantRateWithoutDurationGoesOn() {
        let ts = schedule([Phase(.constant(rate: 2000))], limit: 20_001)
        #expect(ts.count == 20_001)
        #expect(ts.last == 10 * second)
    }

    @Test func poissonMatchesItsStatistics() {
        let rate = 1000.0
        let ts = schedule([Phase(.poisson(rate: rate), duration: 20 * second)], seed: 42)
        // Count over 20 s: mean 20000, sd ~141.
        #expect(abs(Double(ts.count) - 20_000) < 4 * 141.5)
        let gaps = zip(ts.dropFirst(), ts).map { Double($0 - $1) / 1e9 }
        let mean = gaps.reduce(0, +) / Double(gaps.count)
        let variance = gaps.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(gaps.count)
        #expect(abs(mean - 1 / rate) / (1 / rate) < 0.03)
        // Exponential gaps: the coefficient of variation is 1 (an even schedule would give 0).
        #expect(abs(variance.squareRoot() / mean - 1) < 0.05)
        // Memorylessness check: about e^-1 of gaps exceed the mean.
        let above = Double(gaps.filter { $0 > 1 / rate }.count) / Double(gaps.count)
        #expect(abs(above - 0.3679) < 0.02)
    }

    @Test func poissonRepeatsForASeedAndDiffersAcrossSeeds() {
        let a = schedule([Phase(.poisson(rate: 500), duration: second)], seed: 1)
        let b = schedule([Phase(.poisson(rate: 500), duration: second)], seed: 1)
        let c = schedule([Phase(.poisson(rate: 500), duration: second)], seed: 2)
        #expect(a == b)
        #expect(a != c)
        #expect(a == a.sorted())
    }

    @Test func linearRampFollowsTheIntegralOfTheRate() {
        // 0 -> 100/s over 10 s: the integral is 500 requests, 125 in the first half.
        let ts = schedule([Phase(.ramp(from: 0, to: 100, over: 10 * second))])
        #expect(abs(ts.count - 501) <= 1)
        #expect(abs(ts.filter { $0 < 5 * second }.count - 125) <= 1)
        let gaps = zip(ts.dropFirst(), ts).map { $0 - $1 }
        #expect(gaps.dropFirst().first! > gaps.last!)
        // The last gap is about 1/100 s.
        #expect(abs(Double(gaps.last!) / 1e9 - 0.01) < 0.001)
    }

    @Test func rampDownAndFlatRamp() {
        let down = schedule([Phase(.ramp(from: 100, to: 0, over: 10 * second))])
        #expect(abs(down.count - 500) <= 1)
        #expect(down.filter { $0 < 5 * second }.count > 370)
        let flat = schedule([Phase(.ramp(from: 50, to: 50, over: 2 * second))])
        #expect(flat.count == 100 || flat.count == 101)
        #expect(flat[1] == 20_000_000)
    }

    @Test func stepsHoldEachRate() {
        let ts = schedule([Phase(.steps(rates: [10, 20, 5], every: second))])
        #expect(ts.filter { $0 < second }.count == 10)
        #expect(ts.filter { $0 >= second && $0 < 2 * second }.count == 20)
        #expect(ts.filter { $0 >= 2 * second }.count == 5)
        #expect(ts.count == 35)
    }

    @Test func burstsArriveTogetherOnTopOfTheBase() {
        let ts = schedule([Phase(.bursts(size: 5, every: second, baseRate: 0), duration: 3 * second)])
        #expect(ts == [0, 0, 0, 0, 0, second, second, second, second, second, 2 * second, 2 * second, 2 * second, 2 * second, 2 * second])
        let mixed = schedule([Phase(.bursts(size: 3, every: second, baseRate: 4), duration: 2 * second)])
        #expect(mixed.count == 2 * 3 + 2 * 4)
        #expect(mixed == mixed.sorted())
        #expect(mixed.filter { $0 == second }.count == 4) // 3 burst + 1 base
    }

    @Test func phasesFollowEachOther() {
        let ts = schedule([
            Phase(.constant(rate: 10), duration: second),
            Phase(.constant(rate: 20), duration: second),
        ])
        #expect(ts.count == 30)
        #expect(ts[10] == second)
        #expect(ts[11] == second + 50_000_000)
    }

    @Test func retargetChangesTheRateFromAnOffset() {
        var p = Pacer(phases: [Phase(.constant(rate: 10))], rng: SeededRandom(seed: 1))
        #expect(p.next() == 0)
        #expect(p.next() == 100_000_000)
        p.retarget(.constant(rate: 1000), at: 150_000_000)
        #expect(p.next() == 150_000_000)
        #expect(p.next() == 151_000_000)
        p.retarget(.constant(rate: 0), at: 200_000_000)
        #expect(p.next() == nil)
    }

    @Test func weightedPickerFollowsWeights() {
        let picker = WeightedPicker(weights: [3, 1, 0])
        var rng = SeededRandom(seed: 9)
        var counts = [0, 0, 0]
        for _ in 0..<40_000 { counts[picker.pick(using: &rng)] += 1 }
        #expect(abs(Double(counts[0]) / 40_000 - 0.75) < 0.01)
        #expect(counts[2] == 0)
    }
}

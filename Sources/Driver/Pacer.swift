import Wire
/// How arrivals are spaced in an open-loop phase. Rates are requests per second.
public enum Pacing: Sendable, Equatable {
    /// Evenly spaced arrivals.
    case constant(rate: Double)
    /// Exponentially distributed gaps (a Poisson process) with the given mean rate.
    case poisson(rate: Double)
    /// A rate that changes linearly from `from` to `to` over `over`.
    case ramp(from: Double, to: Double, over: Nanos)
    /// Constant rates, each held for `every`.
    case steps(rates: [Double], every: Nanos)
    /// `size` arrivals at once every `every`, on top of an even `baseRate`.
    case bursts(size: Int, every: Nanos, baseRate: Double)

    /// `every` times `count`, at most `Nanos.max` (a long list of long steps must not trap).
    static func saturatingProduct(_ every: Nanos, _ count: Int) -> Nanos {
        let (p, overflow) = every.multipliedReportingOverflow(by: Nanos(max(0, count)))
        return overflow ? .max : p
    }

    /// How long the pacing lasts by itself (ramps and steps have a length), if it has one.
    public var naturalLength: Nanos? {
        switch self {
        case let .ramp(_, _, over): return over
        case let .steps(rates, every): return Pacing.saturatingProduct(every, rates.count)
        default: return nil
        }
    }
}

/// One stretch of an open-loop plan: a pacing held for `duration` (nil: until the run ends).
public struct Phase: Sendable, Equatable {
    public var pacing: Pacing
    public var duration: Nanos?
    public init(_ pacing: Pacing, duration: Nanos? = nil) {
        self.pacing = pacing
        self.duration = duration ?? pacing.naturalLength
    }
}

/// The pure open-loop scheduler: each call to `next()` gives the intended start of the next
/// request as an offset from the run's start. It never reads a clock, so tests drive it
/// directly and a late engine cannot bend the schedule.
public struct Pacer<G: RandomNumberGenerator> {
    private var phases: [Phase]
    private var phaseIndex = 0
    private var phaseStart: Nanos = 0
    private var rng: G
    // State of the current phase.
    private var count: UInt64 = 0          // arrivals emitted in this phase (even streams)
    private var poissonTime: Double = 0    // seconds since phase start
    private var burstIndex: UInt64 = 0     // bursts started
    private var burstLeft = 0              // arrivals left in the current burst
    private var pendingBurstTime: Nanos = 0

    public init(phases: [Phase], rng: G) {
        // Steps are sugar for constant phases.
        var flat: [Phase] = []
        for phase in phases {
            if case let .steps(rates, every) = phase.pacing {
                var remaining = phase.duration ?? Pacing.saturatingProduct(every, rates.count)
                for rate in rates where remaining > 0 {
                    let len = min(every, remaining)
                    flat.append(Phase(.constant(rate: rate), duration: len))
                    remaining -= len
                }
            } else {
                flat.append(phase)
            }
        }
        self.phases = flat
        self.rng = rng
    }

    /// Whether the plan ends in a phase without an end (a rate of 0 there means idle, not done).
    public var isOpenEnded: Bool { phases.last.map { $0.duration == nil } ?? false }

    /// The schedule offset where the current phase started.
    public var currentPhaseStart: Nanos { phaseStart }

    /// Replaces the rest of the plan with `pacing` starting at `offset` (a dashboard changing the rate).
    public mutating func retarget(_ pacing: Pacing, at offset: Nanos) {
        phases = [Phase(pacing, duration: nil)]
        phaseIndex = 0
        startPhase(at: offset)
    }

    private mutating func startPhase(at start: Nanos) {
        phaseStart = start
        count = 0
        poissonTime = 0
        burstIndex = 0
        burstLeft = 0
        pendingBurstTime = 0
    }

    /// The intended offset of the next arrival, or nil when the plan has no more.
    public mutating func next() -> Nanos? {
        while phaseIndex < phases.count {
            let phase = phases[phaseIndex]
            let end: Nanos? = phase.duration.map { phaseStart &+ $0 }
            if let t = nextInPhase(phase.pacing, end: end) {
                if let end, t >= end {
                    // Past this phase: move on; the next phase starts at the boundary.
                } else {
                    return t
                }
            }
            guard let end else { return nil }
            phaseIndex += 1
            startPhase(at: end)
        }
        return nil
    }

    private static func ns(_ seconds: Double) -> Nanos {
        guard seconds.isFinite, seconds >= 0 else { return .max }
        let v = seconds * 1e9
        return v >= 1.8e19 ? .max : Nanos(v.rounded())
    }

    private mutating func nextInPhase(_ pacing: Pacing, end: Nanos?) -> Nanos? {
        switch pacing {
        case let .constant(rate):
            guard rate > 0 else { return nil }
            let t = phaseStart &+ Self.ns(Double(count) / rate)
            count += 1
            return t
        case let .poisson(rate):
            guard rate > 0 else { return nil }
            if count > 0 {
                // Inverse transform: gap = -ln(1 - U) / rate, U uniform in [0, 1).
                let u = Double(rng.next() >> 11) * 0x1.0p-53
                poissonTime += -log1p(-u) / rate
            }
            count += 1
            return phaseStart &+ Self.ns(poissonTime)
        case let .ramp(from, to, over):
            // Arrival k is at the t where the integral of the rate reaches k:
            // from*t + (to-from)*t^2/(2T) = k, solved in the form that is stable for a -> 0.
            let seconds = Double(over) / 1e9
            let a = seconds > 0 ? (to - from) / (2 * seconds) : 0
            let b = from
            let k = Double(count)
            let disc = b * b + 4 * a * k
            guard disc >= 0 else { return nil }
            let denom = b + disc.squareRoot()
            let t: Double
            if k == 0 { t = 0 } else if denom > 0 { t = 2 * k / denom } else { return nil }
            if seconds > 0, t > seconds { return nil }
            count += 1
            return phaseStart &+ Self.ns(t)
        case .steps:
            return nil // expanded in init
        case let .bursts(size, every, baseRate):
            if burstLeft > 0 {
                burstLeft -= 1
                return pendingBurstTime
            }
            let nextBurst: Nanos? = (size > 0 && every > 0) ? phaseStart &+ burstIndex &* every : nil
            let nextEven: Nanos? = baseRate > 0 ? phaseStart &+ Self.ns(Double(count) / baseRate) : nil
            switch (nextBurst, nextEven) {
            case (nil, nil):
                return nil
            case let (b?, e?) where e < b:
                count += 1
                return e
            case let (nil, e?):
                count += 1
                return e
            case let (b?, _):
                if let end, b >= end { // bursts are done; the even stream may still have arrivals
                    if let e = nextEven, e < end { count += 1; return e }
                    return b
                }
                burstIndex += 1
                pendingBurstTime = b
                burstLeft = size - 1
                return b
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Picks a target by weight with an injected generator.
public struct WeightedPicker: Sendable {
    private let cumulative: [Double]
    public init(weights: [Double]) {
        var sum = 0.0
        cumulative = weights.map { sum += max(0, $0); return sum }
    }
    public var total: Double { cumulative.last ?? 0 }
    public func pick<G: RandomNumberGenerator>(using rng: inout G) -> Int {
        guard cumulative.count > 1, total > 0 else { return 0 }
        let u = Double(rng.next() >> 11) * 0x1.0p-53 * total
        var lo = 0, hi = cumulative.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if u < cumulative[mid] { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }
}

/// The map from a schedule's time (a pacer's or a replay's offsets) to the run's time: a
/// pause shifts it, a scale (the dashboard's `+`/`-`) runs the schedule faster or slower from
/// the moment it changes, so the arrivals already past stay where they were. Pure.
public struct ScheduleWarp: Sendable, Equatable {
    /// Schedule seconds per run second: 2 sends twice as fast.
    public private(set) var scale: Double = 1
    private var anchorSchedule: Nanos = 0
    private var anchorRun: Nanos = 0

    public static let scaleRange: ClosedRange<Double> = 0.001...1000

    public init() {}

    /// The run time of schedule offset `offset`; offsets before the anchor map onto it.
    public func runTime(_ offset: Nanos) -> Nanos {
        let delta = offset > anchorSchedule ? offset - anchorSchedule : 0
        if scale == 1 { return anchorRun.addingClamped(delta) }
        return anchorRun.addingClamped(Self.nanos(Double(delta) / scale))
    }

    /// The schedule offset reached at run time `t`.
    public func scheduleTime(_ t: Nanos) -> Nanos {
        let delta = t > anchorRun ? t - anchorRun : 0
        if scale == 1 { return anchorSchedule.addingClamped(delta) }
        return anchorSchedule.addingClamped(Self.nanos(Double(delta) * scale))
    }

    /// A pause of `gap` at run time: the schedule stood still.
    public mutating func paused(for gap: Nanos) {
        anchorRun = anchorRun.addingClamped(gap)
    }

    /// From run time `t` on, the schedule runs at `scale` (clamped to `scaleRange`).
    public mutating func setScale(_ newScale: Double, at t: Nanos) {
        let s = newScale.isFinite ? min(max(newScale, Self.scaleRange.lowerBound), Self.scaleRange.upperBound) : 1
        anchorSchedule = scheduleTime(t)
        anchorRun = max(t, anchorRun)
        scale = s
    }

    /// A non-negative, finite double as nanoseconds, at most about 292 years.
    static func nanos(_ value: Double) -> Nanos {
        guard value.isFinite, value > 0 else { return 0 }
        return value >= 9.2e18 ? 9_200_000_000_000_000_000 : Nanos(value)  // checked: bounded above
    }
}

extension Nanos {
    /// `self + other`, at most `Nanos.max`.
    public func addingClamped(_ other: Nanos) -> Nanos {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}

import Driver
import Upstreams

/// What the step engine asks its runner to do, in the order given.
public enum StepAction: Sendable, Equatable {
    /// Step `index` starts now (its `set`, `return` and `send` follow).
    case begin(step: Int)
    case setBehavior(standIn: String, behavior: StandInBehavior)
    /// End this provider's eviction now.
    case returnProvider(String)
    /// Send this many requests now, besides the traffic.
    case send(Int)
    /// A step ended; its verdicts are decided.
    case end(StepVerdict)
    /// `--step-by-key`: the step after `after` starts at the next `next`.
    case waitForNext(after: Int)
    /// Every step has ended.
    case finished
}

/// One expectation of a step, checked over the requests that finished in the step.
public struct ExpectationVerdict: Sendable, Equatable {
    public var expectation: Expectation
    public var holds: Bool
    /// The measured figure, as `Expectation.evaluate` states it (`3`, `0.5000 (50.00%)`, `12.1ms`).
    public var measured: String
    /// It was the step's `until:`.
    public var isUntil: Bool
}

/// How a step ended and what held.
public struct StepVerdict: Sendable, Equatable {
    public enum Ending: String, Sendable, Equatable {
        /// Its `for:` passed.
        case duration
        /// Its `until:` held.
        case until
        /// Its `until:` did not hold within `timeout:`.
        case timeout
        /// A `next` (or `previous`) cut it short.
        case next
    }

    public var step: Int
    public var name: String
    /// The step's window on the engine's clock: requests that finished from `start` up to, not
    /// including, `end` count (and, for an `until`, the one that made it hold).
    public var start: Nanos
    public var end: Nanos
    public var ending: Ending
    /// Requests that finished in the window.
    public var requests: Int
    public var verdicts: [ExpectationVerdict]
    /// The window's answers by status (0 for no response) and by the provider that served them.
    public var statusCounts: [Int: UInt64] = [:]
    public var providers: [String: UInt64] = [:]

    /// Every expectation held (a step with none passes unless its `until` timed out).
    public var passed: Bool { verdicts.allSatisfy(\.holds) }
}

/// Runs a lab's steps on a clock it is given: pure, so tests drive it with fake time and the
/// dashboard and `failover-lab test` with the monotonic clock. Inputs are the time, the
/// requests that finished (each with the time it finished) and `next`; outputs are the
/// actions at each step's start and each step's verdicts.
///
/// A step's window starts when it begins and ends at its `for:` duration, when its
/// `until:` first holds (checked as it begins and at each request), at its `timeout:`, or
/// at `next`. Its expectations are checked over exactly the requests that finished inside
/// the window; a request that finishes while `--step-by-key` waits for `next` belongs to
/// no step. The actions of a step's start are to be applied at once by the caller.
public struct StepEngine: Sendable {
    public enum State: Sendable, Equatable {
        case notStarted
        case running(step: Int, since: Nanos)
        /// `--step-by-key`: step `after` has ended; the next one waits for `next`.
        case waiting(after: Int)
        case finished
    }

    public let steps: [LabScript.Step]
    public let stepByKey: Bool
    public private(set) var state: State = .notStarted
    /// The latest verdict of each step, by index (nil until it has ended).
    public private(set) var verdicts: [StepVerdict?]
    /// The requests of the running step, as a report aggregate.
    private var window = ReportBuilder()
    private var windowCount = 0

    public init(steps: [LabScript.Step], stepByKey: Bool = false) {
        self.steps = steps
        self.stepByKey = stepByKey
        verdicts = Array(repeating: nil, count: steps.count)
    }

    /// The running step's index, if one runs.
    public var currentStep: Int? {
        if case .running(let step, _) = state { return step }
        return nil
    }

    /// When `advance(to:)` must next be called for a step to end on time; nil when no
    /// timer runs (not started, waiting for `next`, finished).
    public var deadline: Nanos? {
        guard case .running(let i, let since) = state else { return nil }
        switch steps[i].end {
        case .duration(let d): return since.addingClamped(d)
        case .until(_, let timeout): return since.addingClamped(timeout)
        }
    }

    /// The running step's expectations over its requests so far (the dashboard's ✓/✗ while it runs).
    public func liveVerdicts() -> [ExpectationVerdict] {
        guard let i = currentStep else { return [] }
        return evaluate(steps[i], window.build(), ending: nil)
    }

    /// Starts the first step at `now`.
    public mutating func start(at now: Nanos) -> [StepAction] {
        guard case .notStarted = state else { return [] }
        return begin(0, at: now) + settle(upTo: now)
    }

    /// Time has reached `now`: ends the steps whose time is up (each at its deadline, not at
    /// `now`, and the next one starting there), so a late call does not stretch a window.
    public mutating func advance(to now: Nanos) -> [StepAction] {
        settle(upTo: now)
    }

    /// A request finished at `time` (on the engine's clock). Steps whose time was up before
    /// it end first; it then counts in the running step, whose `until:` may now hold.
    public mutating func finished(_ record: RequestRecord, at time: Nanos) -> [StepAction] {
        var actions = settle(upTo: time)
        guard case .running(_, let since) = state, time >= since else { return actions }
        window.add(record)
        windowCount += 1
        untilCheckAt = time
        actions += settle(upTo: time)
        return actions
    }

    /// `next`: ends the running step now (its verdicts over what it got) and starts the one
    /// after; when waiting (`--step-by-key`), starts it.
    public mutating func next(at now: Nanos) -> [StepAction] {
        var actions = settle(upTo: now)
        switch state {
        case .notStarted:
            return actions + start(at: now)
        case .running(let i, _):
            actions.append(close(i, at: now, ending: .next))
            actions += i + 1 < steps.count ? begin(i + 1, at: now) : finish()
        case .waiting(let after):
            actions += begin(after + 1, at: now)
        case .finished:
            return actions
        }
        return actions + settle(upTo: now)
    }

    /// `previous`: leaves the running (or, when waiting, the last ended) step and runs the
    /// one before it again from its start, its `set` re-applied. On the first step, runs it again.
    public mutating func previous(at now: Nanos) -> [StepAction] {
        var actions = settle(upTo: now)
        let current: Int
        switch state {
        case .running(let i, _):
            current = i
            actions.append(close(i, at: now, ending: .next))
        case .waiting(let after): current = after + 1
        case .finished: current = steps.count
        case .notStarted: return actions + start(at: now)
        }
        return actions + begin(max(0, current - 1), at: now) + settle(upTo: now)
    }

    // MARK: inside

    /// When the running step's `until` must be checked (it began, or a request came), if it must.
    private var untilCheckAt: Nanos?

    private mutating func begin(_ i: Int, at now: Nanos) -> [StepAction] {
        guard i < steps.count else { return finish() }
        let step = steps[i]
        state = .running(step: i, since: now)
        window = ReportBuilder()
        windowCount = 0
        // An `until` may hold with no requests at all.
        untilCheckAt = now
        var actions: [StepAction] = [.begin(step: i)]
        for (standIn, behavior) in step.set { actions.append(.setBehavior(standIn: standIn, behavior: behavior)) }
        for provider in step.returns { actions.append(.returnProvider(provider)) }
        if step.send > 0 { actions.append(.send(step.send)) }
        return actions
    }

    private mutating func finish() -> [StepAction] {
        state = .finished
        return [.finished]
    }

    /// Ends steps while one is due: its `until` holds, or its time is up. A loop, not
    /// recursion: a file of many instant steps must not deepen the stack.
    private mutating func settle(upTo now: Nanos) -> [StepAction] {
        var actions: [StepAction] = []
        while case .running(let i, _) = state {
            if let at = untilCheckAt {
                untilCheckAt = nil
                // Checked at every request: the report without its latency summaries (an
                // expectation reads percentiles from the builder), or a busy step's checks
                // take the thread that also sends the traffic.
                if case .until(let expectation, _) = steps[i].end, expectation.evaluate(window.build(latencies: false), window).holds {
                    actions.append(close(i, at: at, ending: .until))
                    actions += proceed(after: i, at: at)
                    continue
                }
            }
            guard let d = deadline, d <= now else { break }
            if case .until = steps[i].end {
                actions.append(close(i, at: d, ending: .timeout))
            } else {
                actions.append(close(i, at: d, ending: .duration))
            }
            actions += proceed(after: i, at: d)
        }
        return actions
    }

    /// After a step ended by itself: the next one, or a wait for `next`, or the end.
    private mutating func proceed(after i: Int, at time: Nanos) -> [StepAction] {
        if i + 1 >= steps.count { return finish() }
        if stepByKey {
            state = .waiting(after: i)
            return [.waitForNext(after: i)]
        }
        return begin(i + 1, at: time)
    }

    /// Decides step `i`'s verdicts over its window, which ends at `time`.
    private mutating func close(_ i: Int, at time: Nanos, ending: StepVerdict.Ending) -> StepAction {
        var since = time
        if case .running(_, let s) = state { since = s }
        let report = window.build()
        var providers: [String: UInt64] = [:]
        for p in report.providers { providers[p.provider, default: 0] += p.served }
        let verdict = StepVerdict(step: i, name: steps[i].name, start: since, end: time, ending: ending,
                                  requests: windowCount, verdicts: evaluate(steps[i], report, ending: ending),
                                  statusCounts: report.statusCounts, providers: providers)
        verdicts[i] = verdict
        untilCheckAt = nil
        return .end(verdict)
    }

    /// The step's `until` (first) and `expect` over the window; `ending` nil while it runs.
    private func evaluate(_ step: LabScript.Step, _ report: Report, ending: StepVerdict.Ending?) -> [ExpectationVerdict] {
        var out: [ExpectationVerdict] = []
        if case .until(let expectation, _) = step.end {
            let (holds, measured) = expectation.evaluate(report, window)
            // Reached is held; a timeout is not, whatever a late look would say.
            let held = ending == .until || (ending != .timeout && holds)
            out.append(ExpectationVerdict(expectation: expectation, holds: held, measured: measured, isUntil: true))
        }
        for expectation in step.expect {
            let (holds, measured) = expectation.evaluate(report, window)
            out.append(ExpectationVerdict(expectation: expectation, holds: holds, measured: measured, isUntil: false))
        }
        return out
    }
}

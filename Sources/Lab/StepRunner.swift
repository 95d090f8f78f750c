import Dispatch
import Driver
import NIOConcurrencyHelpers
import Upstreams

/// A lab's steps run against a running lab: the pure `StepEngine` on the monotonic clock,
/// fed with the requests that finished, and its actions applied to the lab (stand-in
/// behaviours, returns, the step's own requests). `failover-lab test` and the dashboard
/// both run steps through this, so a step means the same in both.
///
/// Thread-safe: drivers' threads call `record`, the caller's loop calls `poll`, a key calls
/// `next`/`previous`. Actions are applied in order, one at a time, off the caller's thread.
public final class StepRunner: Sendable {
    /// A look at the steps for a screen: the running step and its live verdicts.
    public struct View: Sendable, Equatable {
        public var index: Int?
        public var count: Int
        public var name: String
        public var say: String?
        /// Seconds since the running step began.
        public var elapsed: Double
        /// The step's `for:` or `timeout:` in seconds.
        public var length: Double?
        public var live: [ExpectationVerdict]
        /// `--step-by-key`: the step after this one waits for `n`.
        public var waitingAfter: Int?
        public var finished: Bool
        /// Each step's last verdict, by index.
        public var verdicts: [StepVerdict?]
    }

    private struct State {
        var engine: StepEngine
        var queue: [(RequestRecord, Nanos)] = []
        /// The last application of actions, which the next one waits for.
        var applying: Task<Void, Never>?
    }

    private let state: NIOLockedValueBox<State>
    private let origin = DispatchTime.now().uptimeNanoseconds
    private let lab: RunningLab
    private let send: @Sendable (Int) -> Void
    private let errors: @Sendable (String) -> Void
    public let steps: [LabScript.Step]

    /// `send` sends that many requests now (the step's `send:`), besides the traffic;
    /// `errors` hears a `set` that could not be applied.
    public init(steps: [LabScript.Step], stepByKey: Bool, lab: RunningLab,
                send: @escaping @Sendable (Int) -> Void, errors: @escaping @Sendable (String) -> Void = { _ in }) {
        self.steps = steps
        self.state = NIOLockedValueBox(State(engine: StepEngine(steps: steps, stepByKey: stepByKey)))
        self.lab = lab
        self.send = send
        self.errors = errors
    }

    /// The clock the steps run on, in nanoseconds since this runner was made.
    public func now() -> Nanos { DispatchTime.now().uptimeNanoseconds &- origin }

    /// A request finished (from any thread); stamped now.
    public func record(_ record: RequestRecord) {
        state.withLockedValue { $0.queue.append((record, now())) }
    }

    /// Starts the first step.
    public func start() -> [StepAction] {
        step { engine, now in engine.start(at: now) }
    }

    /// Takes in the requests that finished and the time: the actions that follow, already
    /// handed on to be applied.
    public func poll() -> [StepAction] {
        step { engine, now in engine.advance(to: now) }
    }

    /// `n`: the next step now.
    public func next() -> [StepAction] {
        step { engine, now in engine.next(at: now) }
    }

    /// `N`: the step before again, its `set` re-applied.
    public func previous() -> [StepAction] {
        step { engine, now in engine.previous(at: now) }
    }

    /// When `poll` must be called next for a step to end on time (nanoseconds on `now()`).
    public var deadline: Nanos? { state.withLockedValue { $0.engine.deadline } }

    /// Each step's last verdict, by index.
    public var verdicts: [StepVerdict?] { state.withLockedValue { $0.engine.verdicts } }

    /// Waits until every action handed on so far has been applied.
    public func settled() async {
        let task = state.withLockedValue { $0.applying }
        await task?.value
    }

    public func view() -> View {
        let at = now()
        return state.withLockedValue { s in
            let engine = s.engine
            var view = View(index: nil, count: steps.count, name: "", say: nil, elapsed: 0, length: nil, live: [],
                            waitingAfter: nil, finished: false, verdicts: engine.verdicts)
            switch engine.state {
            case .notStarted:
                break
            case .running(let i, let since):
                let step = steps[i]
                view.index = i
                view.name = step.name
                view.say = step.say
                view.elapsed = Double(at >= since ? at - since : 0) / 1e9
                switch step.end {
                case .duration(let d): view.length = Double(d) / 1e9
                case .until(_, let timeout):
                    view.length = Double(timeout) / 1e9
                }
                view.live = engine.liveVerdicts()
            case .waiting(let after):
                view.index = after
                view.name = steps[after].name
                view.say = steps[after].say
                view.waitingAfter = after
            case .finished:
                view.finished = true
            }
            return view
        }
    }

    /// Runs `body` on the engine with the queued requests first, and hands the actions on.
    private func step(_ body: (inout StepEngine, Nanos) -> [StepAction]) -> [StepAction] {
        state.withLockedValue { s in
            var actions: [StepAction] = []
            let queued = s.queue
            s.queue.removeAll(keepingCapacity: true)
            for (record, at) in queued { actions += s.engine.finished(record, at: at) }
            actions += body(&s.engine, now())
            if actions.contains(where: Self.needsApplying) {
                let previous = s.applying
                let lab = self.lab, send = self.send, errors = self.errors
                s.applying = Task {
                    await previous?.value
                    await Self.apply(actions, lab: lab, send: send, errors: errors)
                }
            }
            return actions
        }
    }

    private static func needsApplying(_ action: StepAction) -> Bool {
        switch action {
        case .setBehavior, .returnProvider, .send: return true
        default: return false
        }
    }

    /// The actions' effects on the lab, in order: a step's behaviours are set before its requests go.
    private static func apply(_ actions: [StepAction], lab: RunningLab, send: @Sendable (Int) -> Void,
                              errors: @Sendable (String) -> Void) async {
        for action in actions {
            switch action {
            case .setBehavior(let standIn, let behavior):
                guard let target = lab.standIn(standIn) else {
                    errors("no stand-in named \(standIn)")
                    continue
                }
                do { try await target.setBehavior(behavior) } catch {
                    errors("could not set stand-in \(standIn) to \(behavior): \(error)")
                }
            case .returnProvider(let provider):
                lab.returnProvider(named: provider)
            case .send(let n):
                send(n)
            default:
                break
            }
        }
    }
}

/// The drivers of a lab with steps, as `test` and the dashboard run them.
public enum LabDrivers {
    /// The traffic driver (nil without `traffic`), a paused driver that sends the steps' own
    /// requests (`sendSpec`) only when told, so it outlives a traffic plan that ends early, and
    /// the step runner (nil without steps or a lab). Every finished request of both goes to
    /// the steps, and to `sink` when given (the dashboard, a recorder).
    public static func make(steps: [LabScript.Step], traffic: DriverConfiguration?, sendSpec: RequestSpec, lab: RunningLab?,
                            stepByKey: Bool, sink: RecordSink?, errors: @escaping @Sendable (String) -> Void = { _ in })
        -> (traffic: Driver?, sender: Driver, steps: StepRunner?) {
        let box = NIOLockedValueBox<StepRunner?>(nil)
        let records = RecordSink(record: { record in
            box.withLockedValue { $0 }?.record(record)
            sink?.record(record)
        }, flush: { sink?.flush() })
        let trafficDriver = traffic.map { Driver(configuration: $0, sink: records) }
        var senderConfig = DriverConfiguration(workload: .openLoop([Phase(.constant(rate: 0))]), mix: RequestMix([sendSpec]))
        senderConfig.startPaused = true
        senderConfig.timeout = 130_000_000_000  // a lab route may allow 120 s
        let sender = Driver(configuration: senderConfig, sink: records)
        var runner: StepRunner?
        if let lab, !steps.isEmpty {
            let made = StepRunner(steps: steps, stepByKey: stepByKey, lab: lab, send: { n in
                for _ in 0..<n { sender.sendOne() }
            }, errors: errors)
            box.withLockedValue { $0 = made }
            runner = made
        }
        return (trafficDriver, sender, runner)
    }
}

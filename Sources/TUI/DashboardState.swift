import Wire

/// The stand-in faults `f` cycles through, in order.
public enum FaultStep: String, Sendable, CaseIterable, Hashable {
    case healthy
    case rateLimited = "429"
    case serverErrors = "5xx"
    case slow
    /// Answers healthy, but like a slow model: a long time to the first token, few tokens a second.
    case slowModel = "slow model"
    case down

    /// The step after a stand-in's current behaviour (by its short name).
    public static func after(_ current: String?) -> FaultStep {
        switch current {
        case "healthy": return .rateLimited
        case "429", "rate-limited": return .serverErrors
        case "5xx": return .slow
        case "slow": return .slowModel
        case "slow model": return .down
        default: return .healthy
        }
    }

    /// The shape of `slowModel`: 1.5 s to the first token, then 40 tokens at 8 a second (±25%).
    public static let slowModelShape = ModelShape(ttftNanos: 1_500_000_000, length: .fixed(40), rate: 8, jitterPercent: 25)
}

/// What the edge must do after a key: the I/O the pure handler asks for.
public enum DashboardCommand: Sendable, Hashable {
    case setPaused(Bool)
    /// The traffic at this multiple of its plan.
    case setScale(Double)
    case nextStep
    case previousStep
    case sendOne
    case setFault(standIn: String, step: FaultStep)
    case returnNow(group: Int, index: Int)
    case clearCounters
    case quit
}

/// The dashboard's own state around the model: selection, overlay, theme.
public struct DashboardState: Sendable {
    public var model: LabModel
    /// Index into `model.allProviders`.
    public var selected = 0
    public var showHelp = false
    /// What up/down select: providers, or (after tab) request rows.
    public var focus = Focus.providers
    /// The selected request row, by its time (rows scroll; the time stays with the request).
    public var selectedRequestAt: Double?
    /// The request whose trace waterfall is open.
    public var waterfall: RequestEntry?
    public var themeIndex = 0
    public var themeCount = 1
    /// The charts' time window in seconds, one of `Charts.windows`.
    public var chartWindow = Charts.defaultWindow

    /// The rates `+` and `-` step through when the plan is a constant rate.
    public static let rateSteps: [Double] = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
    /// The multiples they step through for any other plan.
    public static let scaleSteps: [Double] = [0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64]

    /// The multiple of the plan after `+` (`up`) or `-`: for a constant-rate plan the next of
    /// `rateSteps` over the rate it runs at now, else the next of `scaleSteps`. Nil at the end.
    static func nextScale(rate: Double, scale: Double, up: Bool) -> Double? {
        if rate > 0 {
            let now = rate * scale
            let next = up ? rateSteps.first { $0 > now + 1e-9 } : rateSteps.last { $0 < now - 1e-9 }
            return next.map { $0 / rate }
        }
        return up ? scaleSteps.first { $0 > scale + 1e-9 } : scaleSteps.last { $0 < scale - 1e-9 }
    }

    public init(model: LabModel, themeIndex: Int = 0, themeCount: Int = 1) {
        self.model = model
        self.themeIndex = themeIndex
        self.themeCount = max(1, themeCount)
    }

    /// What up/down select.
    public enum Focus: Sendable, Hashable {
        case providers, requests
    }

    /// The selected request, while it is still in the model's history.
    public var selectedRequest: RequestEntry? {
        guard let at = selectedRequestAt else { return nil }
        return model.requests.elements.last { $0.at == at }
    }

    /// Up (-1) to older rows, down (+1) to newer ones; starts at the newest.
    mutating func moveRequestSelection(by step: Int) {
        let rows = model.requests.elements
        guard !rows.isEmpty else { return }
        guard let at = selectedRequestAt, let i = rows.lastIndex(where: { $0.at == at }) else {
            selectedRequestAt = rows[rows.count - 1].at
            return
        }
        selectedRequestAt = rows[min(max(i + step, 0), rows.count - 1)].at
    }

    public var selectedProvider: ProviderStatus? {
        let all = model.allProviders
        return all.indices.contains(selected) ? all[selected] : nil
    }

    /// Handles a key: the new state and the commands for the edge. Pure.
    public mutating func handle(_ key: Key) -> [DashboardCommand] {
        guard let action = Keymap.action(for: key) else { return [] }
        if key == .escape && waterfall != nil && !showHelp {
            waterfall = nil
            return []
        }
        if key == .escape && !showHelp { return [] }
        return perform(action)
    }

    public mutating func perform(_ action: KeyAction) -> [DashboardCommand] {
        let count = model.allProviders.count
        switch action {
        case .togglePause:
            return [.setPaused(!model.paused)]
        case .faster, .slower:
            guard let next = Self.nextScale(rate: model.rate, scale: model.scale, up: action == .faster) else { return [] }
            return [.setScale(next)]
        case .nextStep:
            guard model.steps != nil else {
                model.apply(.note("this lab has no steps (see docs/labs.md)", at: model.now))
                return []
            }
            return [.nextStep]
        case .previousStep:
            guard model.steps != nil else { return [] }
            return [.previousStep]
        case .sendOne:
            return [.sendOne]
        case .selectPrevious where focus == .requests:
            moveRequestSelection(by: -1)
            return []
        case .selectNext where focus == .requests:
            moveRequestSelection(by: 1)
            return []
        case .selectPrevious:
            if count > 0 { selected = (selected - 1 + count) % count }
            return []
        case .selectNext:
            if count > 0 { selected = (selected + 1) % count }
            return []
        case .switchFocus:
            focus = focus == .providers ? .requests : .providers
            if focus == .requests && selectedRequest == nil { selectedRequestAt = model.requests.last?.at }
            return []
        case .openWaterfall:
            // Without a selection, the newest request: enter alone shows the latest trace.
            guard let request = (focus == .requests ? selectedRequest : nil) ?? model.requests.last else {
                model.apply(.note("no request yet to show the trace of", at: model.now))
                return []
            }
            waterfall = request
            return []
        case .cycleFault:
            guard let p = selectedProvider else { return [] }
            guard let standIn = p.standIn else {
                model.apply(.note("\(p.name) has no stand-in to fault", at: model.now))
                return []
            }
            return [.setFault(standIn: standIn, step: FaultStep.after(p.fault))]
        case .returnNow:
            guard let p = selectedProvider else { return [] }
            guard p.isOut || p.state != .healthy else {
                model.apply(.note("\(p.name) is not evicted", at: model.now))
                return []
            }
            let index = model.groups[p.group].firstIndex { $0.name == p.name } ?? 0
            return [.returnNow(group: p.group, index: index)]
        case .nextTheme:
            themeIndex = (themeIndex + 1) % themeCount
            return []
        case .shorterWindow:
            chartWindow = Charts.windows.last { $0 < chartWindow } ?? Charts.windows[0]
            return []
        case .longerWindow:
            chartWindow = Charts.windows.first { $0 > chartWindow } ?? Charts.windows[Charts.windows.count - 1]
            return []
        case .clearCounters:
            return [.clearCounters]
        case .toggleHelp:
            showHelp.toggle()
            return []
        case .quit:
            return [.quit]
        }
    }
}

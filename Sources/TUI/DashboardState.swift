/// The stand-in faults `f` cycles through, in order.
public enum FaultStep: String, Sendable, CaseIterable, Hashable {
    case healthy
    case rateLimited = "429"
    case serverErrors = "5xx"
    case slow
    case down

    /// The step after a stand-in's current behaviour (by its short name).
    public static func after(_ current: String?) -> FaultStep {
        switch current {
        case "healthy": return .rateLimited
        case "429", "rate-limited": return .serverErrors
        case "5xx": return .slow
        case "slow": return .down
        default: return .healthy
        }
    }
}

/// What the edge must do after a key: the I/O the pure handler asks for.
public enum DashboardCommand: Sendable, Hashable {
    case setPaused(Bool)
    case setRate(Double)
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
    public var themeIndex = 0
    public var themeCount = 1
    /// The charts' time window in seconds, one of `Charts.windows`.
    public var chartWindow = Charts.defaultWindow

    /// The rates `+` and `-` step through.
    public static let rateSteps: [Double] = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]

    public init(model: LabModel, themeIndex: Int = 0, themeCount: Int = 1) {
        self.model = model
        self.themeIndex = themeIndex
        self.themeCount = max(1, themeCount)
    }

    public var selectedProvider: ProviderStatus? {
        let all = model.allProviders
        return all.indices.contains(selected) ? all[selected] : nil
    }

    /// Handles a key: the new state and the commands for the edge. Pure.
    public mutating func handle(_ key: Key) -> [DashboardCommand] {
        guard let action = Keymap.action(for: key) else { return [] }
        if key == .escape && !showHelp { return [] }
        return perform(action)
    }

    public mutating func perform(_ action: KeyAction) -> [DashboardCommand] {
        let count = model.allProviders.count
        switch action {
        case .togglePause:
            return [.setPaused(!model.paused)]
        case .faster:
            let next = Self.rateSteps.first { $0 > model.rate + 1e-9 } ?? model.rate
            return next == model.rate ? [] : [.setRate(next)]
        case .slower:
            let next = Self.rateSteps.last { $0 < model.rate - 1e-9 } ?? model.rate
            return next == model.rate ? [] : [.setRate(next)]
        case .sendOne:
            return [.sendOne]
        case .selectPrevious:
            if count > 0 { selected = (selected - 1 + count) % count }
            return []
        case .selectNext:
            if count > 0 { selected = (selected + 1) % count }
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

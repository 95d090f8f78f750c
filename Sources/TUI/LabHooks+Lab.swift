import Lab
import NIOConcurrencyHelpers
import Upstreams
import Wire

extension LabHooks {
    /// The dashboard's hooks into a lab it started: the gateway's runtime for `backend`, each
    /// stand-in's fault as `f` shows it, and `f` itself. `slow model` is a shape, not a
    /// behaviour: the stand-in answers healthy, slowly; the shape it had (the Scenario's
    /// `model:`, if any) comes back at the next step.
    public static func forLab(_ lab: RunningLab, backend: Int) -> LabHooks {
        let specs = lab.config.scenario?.standIns ?? []
        // The shapes stand-ins had before `slow model`, by stand-in.
        let saved = NIOLockedValueBox<[String: ModelShape]>([:])
        return LabHooks(
            runtime: lab.gateway.runtime, backend: backend,
            faults: {
                let slowed = saved.withLockedValue { Set($0.keys) }
                return Dictionary(lab.standIns.map { standIn in
                    (standIn.name, slowed.contains(standIn.name) ? FaultStep.slowModel.rawValue : standIn.behavior.shortName)
                }, uniquingKeysWith: { a, _ in a })
            },
            setFault: { name, step in
                guard let standIn = lab.standIn(name) else { throw LabHookError(description: "no stand-in named \(name)") }
                let retryAfter = specs.first { $0.name == name }?.retryAfterSeconds ?? 60
                if step == .slowModel {
                    let before = standIn.shape
                    saved.withLockedValue { if $0[name] == nil { $0[name] = before } }
                    standIn.setShape(FaultStep.slowModelShape)
                    try await standIn.setBehavior(.healthy)
                    return step.rawValue
                }
                if let before = saved.withLockedValue({ $0.removeValue(forKey: name) }) { standIn.setShape(before) }
                let behavior = behavior(for: step, retryAfter: retryAfter)
                try await standIn.setBehavior(behavior)
                return behavior.shortName
            })
    }

    /// What each `f` step does to a stand-in's behaviour.
    public static func behavior(for step: FaultStep, retryAfter: Int) -> StandInBehavior {
        switch step {
        case .healthy, .slowModel: return .healthy
        case .rateLimited: return .always429(retryAfter: retryAfter)
        case .serverErrors: return .serverErrors(status: 503, share: 1)
        case .slow: return .slow(delayMs: 1500, jitterMs: 500)
        case .down: return .down
        }
    }
}

public struct LabHookError: Error, CustomStringConvertible {
    public var description: String
}

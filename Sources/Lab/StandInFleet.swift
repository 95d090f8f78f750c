import Gateway
import NIOCore
import NIOPosix
import Upstreams

/// The stand-ins a Scenario names, on their own event-loop threads.
public final class StandInFleet: Sendable {
    public let standIns: [StandIn]
    private let group: MultiThreadedEventLoopGroup

    private init(standIns: [StandIn], group: MultiThreadedEventLoopGroup) {
        self.standIns = standIns
        self.group = group
    }

    /// The behaviour a stand-in starts with: its `behavior`, else its kind's default.
    public static func initialBehavior(_ spec: StandInSpec) -> StandInBehavior {
        if let text = spec.behavior, let behavior = (try? StandInSetting.parse(text))?.behavior { return behavior }
        switch spec.kind {
        case .http429: return .always429(retryAfter: spec.retryAfterSeconds ?? 60)
        case .mockOpenAI: return .healthy
        }
    }

    /// Errors in the stand-ins' `behavior` texts, with file:line.
    public static func validate(_ specs: [StandInSpec]) -> [ConfigDiagnostic] {
        specs.compactMap { spec in
            guard let text = spec.behavior else { return nil }
            do {
                _ = try StandInSetting.parse(text)
                return nil
            } catch {
                return ConfigDiagnostic(severity: .error, location: spec.location, message: "stand-in \(spec.name): \(error)")
            }
        }
    }

    /// Starts every stand-in of `specs` on a free port of `host`.
    public static func start(_ specs: [StandInSpec], host: String = "127.0.0.1") async throws -> StandInFleet {
        let problems = validate(specs)
        if !problems.isEmpty { throw ConfigErrors(diagnostics: problems) }
        // One loop per core (at most 4): thousands of streamed answers are one timer and one
        // write a token each, too many for one thread to keep on time.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: min(4, max(1, System.coreCount)))
        var started: [StandIn] = []
        do {
            for spec in specs {
                let standIn = try await StandIn.start(name: spec.name, behavior: initialBehavior(spec), group: group, host: host)
                if let latency = spec.latency { standIn.setLatency(latency) }
                if let delay = spec.tokenDelay { standIn.setTokenDelay(delay) }
                // `model:` first, then a shape in the `behavior` text, which is the more specific.
                if let shape = spec.model { standIn.setShape(shape) }
                if let text = spec.behavior, let shape = (try? StandInSetting.parse(text))?.shape { standIn.setShape(shape) }
                started.append(standIn)
            }
        } catch {
            for standIn in started { await standIn.stop() }
            try? await group.shutdownGracefully()
            throw error
        }
        return StandInFleet(standIns: started, group: group)
    }

    /// Declared `host:port` -> the stand-in answering for it, for `PlanOptions`.
    public func mapping(_ specs: [StandInSpec]) -> [String: (name: String, address: UpstreamAddress)] {
        var mapping: [String: (name: String, address: UpstreamAddress)] = [:]
        for spec in specs {
            guard let standIn = standIns.first(where: { $0.name == spec.name }) else { continue }
            for declared in spec.answers {
                mapping[declared] = (spec.name, UpstreamAddress(host: standIn.host, port: standIn.port, tls: false))
            }
        }
        return mapping
    }

    public func stop() async {
        for standIn in standIns { await standIn.stop() }
        try? await group.shutdownGracefully()
    }
}

import Foundation
import Gateway
import Upstreams

/// How to start a lab.
public struct LabOptions: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var accessLog: AccessLogWriter?
    /// Connect providers without a `host` (real OpenAI) as declared, over TLS.
    public var realUpstreams = false
    public var environment = ProcessInfo.processInfo.environment
    public var gateway = GatewayOptions()

    public init() {}
}

/// A lab that runs: its stand-ins on loopback and the gateway in front of them.
public final class RunningLab: Sendable {
    public let config: LabConfig
    public let fleet: StandInFleet
    public let gateway: GatewayServer

    private init(config: LabConfig, fleet: StandInFleet, gateway: GatewayServer) {
        self.config = config
        self.fleet = fleet
        self.gateway = gateway
    }

    public var standIns: [StandIn] { fleet.standIns }

    /// The gateway's base URL, e.g. `http://127.0.0.1:8080`.
    public var gatewayURL: String {
        let host = gateway.address.ipAddress ?? "127.0.0.1"
        return "http://\(host.contains(":") ? "[\(host)]" : host):\(gateway.port)"
    }

    /// The stand-in named `name`.
    public func standIn(_ name: String) -> StandIn? {
        standIns.first { $0.name == name }
    }

    /// Starts the scenario's stand-ins (none without a Scenario), resolves the plan
    /// against them, and starts the gateway.
    public static func start(config: LabConfig, options: LabOptions) async throws -> RunningLab {
        let specs = config.scenario?.standIns ?? []
        let fleet = try await StandInFleet.start(specs)
        do {
            let plan = try config.plan(PlanOptions(standIns: fleet.mapping(specs), realUpstreams: options.realUpstreams, environment: options.environment))
            let runtime = GatewayRuntime(plan: plan, options: options.gateway, accessLog: options.accessLog)
            let gateway = try await GatewayServer.start(runtime: runtime, host: options.host, port: options.port)
            return RunningLab(config: config, fleet: fleet, gateway: gateway)
        } catch {
            await fleet.stop()
            throw error
        }
    }

    /// Stops the gateway and the stand-ins.
    public func stop() async {
        await gateway.stop()
        await fleet.stop()
    }
}

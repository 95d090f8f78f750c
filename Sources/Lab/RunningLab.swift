import Foundation
import Gateway
import NIOConcurrencyHelpers
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
    /// The admin port (health, metrics, stand-in controls) on `adminHost`; nil for none, 0 for a free one.
    public var adminPort: Int?
    /// Where the admin port listens: loopback unless asked otherwise, whatever `host` is.
    public var adminHost = "127.0.0.1"
    /// When set, the admin API's write calls need `Authorization: Bearer` this.
    public var adminToken: String?

    public init() {}
}

/// A lab that runs: its stand-ins on loopback and the gateway in front of them.
public final class RunningLab: Sendable {
    public let config: LabConfig
    public let fleet: StandInFleet
    public let gateway: GatewayServer
    private let adminBox = NIOLockedValueBox<AdminServer?>(nil)

    private init(config: LabConfig, fleet: StandInFleet, gateway: GatewayServer) {
        self.config = config
        self.fleet = fleet
        self.gateway = gateway
    }

    /// The admin server, when one was asked for.
    public var admin: AdminServer? { adminBox.withLockedValue { $0 } }

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

    /// Ends the eviction of every provider named `name` now (admin API, steps' `return:`);
    /// the provider's state afterwards, or nil when no backend has such a provider.
    @discardableResult
    public func returnProvider(named name: String) -> String? {
        let runtime = gateway.runtime
        var state: String?
        for (b, backend) in runtime.plan.backends.enumerated() {
            for (g, group) in backend.groups.enumerated() {
                guard let p = group.firstIndex(where: { $0.name == name }) else { continue }
                let index = ProviderIndex(group: g, index: p)
                runtime.returnNow(backend: b, provider: index)
                state = state ?? runtime.snapshot(backend: b)[index].stateName
            }
        }
        return state
    }

    /// The URL of the lab's first route (its first path match), where the lab's traffic goes
    /// by default; nil for a lab without routes.
    public var firstRouteURL: String? {
        guard let route = gateway.runtime.plan.routes.first, let match = route.matches.first else { return nil }
        return gatewayURL + match.value
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
            let lab = RunningLab(config: config, fleet: fleet, gateway: gateway)
            if let adminPort = options.adminPort {
                do {
                    let admin = try await AdminServer.start(lab: lab, host: options.adminHost, port: adminPort, token: options.adminToken)
                    lab.adminBox.withLockedValue { $0 = admin }
                } catch {
                    await gateway.stop()
                    throw AdminPortError(host: options.adminHost, port: adminPort, underlying: error)
                }
            }
            return lab
        } catch {
            await fleet.stop()
            throw error
        }
    }

    /// Stops the gateway and the stand-ins.
    public func stop() async {
        await admin?.stop()
        await gateway.stop()
        await fleet.stop()
    }
}

/// The admin port could not be opened.
public struct AdminPortError: Error, CustomStringConvertible {
    public let host: String
    public let port: Int
    public let underlying: Error
    public var description: String { "cannot open the admin port \(host):\(port): \(underlying) (choose another with --admin-port, 0 for a free one, or --admin-listen)" }
}

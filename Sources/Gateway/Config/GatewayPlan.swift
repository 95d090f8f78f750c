/// What the gateway runs: the config resolved against the stand-ins and the
/// environment. Built once at start; immutable afterwards.
public struct GatewayPlan: Sendable {
    public var routes: [PlannedRoute]
    public var backends: [PlannedBackend]

    /// The route for a request path: `Exact` before prefix, then the longest prefix.
    public func route(forPath path: String) -> PlannedRoute? {
        routeIndex(forPath: path).map { routes[$0] }
    }

    /// The index in `routes` of the route for a request path (see `route(forPath:)`).
    public func routeIndex(forPath path: String) -> Int? {
        var best: (route: Int, exact: Bool, length: Int)?
        for (index, route) in routes.enumerated() {
            for match in route.matches where match.matches(path) {
                let candidate = (index, match.kind == .exact, match.value.utf8.count)
                if let current = best {
                    if (candidate.1 && !current.exact) || (candidate.1 == current.exact && candidate.2 > current.length) {
                        best = candidate
                    }
                } else {
                    best = candidate
                }
            }
        }
        return best?.route
    }
}

/// One rule of an HTTPRoute, ready to serve.
public struct PlannedRoute: Sendable {
    public var name: String
    public var matches: [PathMatch]
    public var backendIndex: Int
    public var requestTimeout: Duration?
    public var retry: RetryPolicy?
}

/// A backend with its priority groups of providers.
public struct PlannedBackend: Sendable {
    public var name: String
    public var groups: [[PlannedProvider]]
}

/// How the upstream request is authenticated.
public enum ResolvedAuth: Sendable, Hashable {
    case none
    case passthrough
    /// The value sent after `Bearer `; never logged.
    case bearer(String)
}

/// A provider, resolved: where to connect, what to send.
public struct PlannedProvider: Sendable {
    public var name: String
    /// 0-based group index; the lab speaks of group `group + 1`.
    public var group: Int
    public var model: String?
    /// The address the manifest names (what the access log's `endpoint` shows for real upstreams).
    public var declared: UpstreamAddress
    /// Where the gateway actually connects (a stand-in on loopback, or `declared`).
    public var connect: UpstreamAddress
    /// The stand-in answering for this provider, if any.
    public var standIn: String?
    public var auth: ResolvedAuth
    public var health: HealthPolicy?
    public var spec: Provider

    /// The `Host` header sent upstream: the declared host, with its port unless 80 or 443.
    public var hostHeader: String {
        declared.port == 80 || declared.port == 443 ? declared.host : "\(declared.host):\(declared.port)"
    }
}

/// How to start: which stand-ins answer where, and whether real upstreams are used.
public struct PlanOptions: Sendable {
    /// Declared `host:port` -> the stand-in that answers for it and its loopback address.
    public var standIns: [String: (name: String, address: UpstreamAddress)]
    /// Providers whose declared address is real are connected as declared.
    public var realUpstreams: Bool
    public var environment: [String: String]

    public init(standIns: [String: (name: String, address: UpstreamAddress)] = [:], realUpstreams: Bool = false, environment: [String: String] = [:]) {
        self.standIns = standIns
        self.realUpstreams = realUpstreams
        self.environment = environment
    }
}

extension LabConfig {
    /// A provider without `host` is a real one (OpenAI): `--real-upstreams` connects it as
    /// declared even when a stand-in answers for its address.
    static func isRealProvider(_ provider: Provider) -> Bool { provider.host == nil }

    /// Resolves routes, backends, secrets and policies into a plan. Errors carry file:line.
    public func plan(_ options: PlanOptions) throws -> GatewayPlan {
        var errors: [ConfigDiagnostic] = []
        func fail(_ location: SourceLocation, _ message: String) {
            errors.append(ConfigDiagnostic(severity: .error, location: location, message: message))
        }
        var plannedBackends: [PlannedBackend] = []
        for backend in backends {
            var groups: [[PlannedProvider]] = []
            for (g, group) in backend.groups.enumerated() {
                var planned: [PlannedProvider] = []
                for provider in group {
                    let declared = provider.upstreamAddress
                    let mapped = options.realUpstreams && Self.isRealProvider(provider) ? nil : options.standIns[declared.description]
                    let policies = effectivePolicies(for: provider, in: backend)
                    var auth = ResolvedAuth.none
                    switch policies.auth {
                    case .none: auth = .none
                    case .passthrough?: auth = .passthrough
                    case .key(let key)?: auth = .bearer(Self.stripBearer(key))
                    case .secretRef(let name)?:
                        if let value = secret(named: name, namespace: backend.namespace)?.authorization {
                            auth = .bearer(Self.stripBearer(value))
                        } else if let variable = scenario?.secretsFromEnvironment[name], let value = options.environment[variable], !value.isEmpty {
                            if let problem = ManifestLoader.headerValueProblem(value) {
                                fail(provider.location, "provider \(provider.name): the environment variable \(variable) (for Secret \(name)) \(problem); it is sent as a header value")
                            } else {
                                auth = .bearer(Self.stripBearer(value))
                            }
                        } else if mapped == nil {
                            let hint = scenario?.secretsFromEnvironment[name].map { "; set \($0) in the environment" } ?? "; add a Secret with an Authorization key"
                            fail(provider.location, "provider \(provider.name) needs Secret \(backend.namespace)/\(name) for its Authorization, and it is not defined\(hint)")
                        }
                    }
                    planned.append(PlannedProvider(
                        name: provider.name, group: g, model: provider.model, declared: declared,
                        connect: mapped?.address ?? declared, standIn: mapped?.name, auth: auth,
                        health: policies.health, spec: provider))
                }
                groups.append(planned)
            }
            plannedBackends.append(PlannedBackend(name: backend.qualifiedName, groups: groups))
        }
        var plannedRoutes: [PlannedRoute] = []
        for route in routes {
            for rule in route.rules {
                guard let ref = rule.backendRefs.first,
                      let index = backends.firstIndex(where: { $0.name == ref.name && $0.namespace == ref.namespace }) else { continue }
                let backend = backends[index]
                let routePolicies = policies(targeting: "HTTPRoute", name: route.name, namespace: route.namespace)
                let backendPolicies = policies(targeting: backend.kind, name: backend.name, namespace: backend.namespace)
                let timeout = rule.requestTimeout ?? routePolicies.compactMap(\.requestTimeout).first ?? backendPolicies.compactMap(\.requestTimeout).first
                let retry = rule.retry ?? routePolicies.compactMap(\.retry).first ?? backendPolicies.compactMap(\.retry).first
                plannedRoutes.append(PlannedRoute(name: route.qualifiedName, matches: rule.matches, backendIndex: index, requestTimeout: timeout, retry: retry))
            }
        }
        if !errors.isEmpty { throw ConfigErrors(diagnostics: errors) }
        return GatewayPlan(routes: plannedRoutes, backends: plannedBackends)
    }

    /// Policies that target a resource (any section).
    func policies(targeting kind: String, name: String, namespace: String) -> [Policy] {
        policies.filter { policy in
            policy.namespace == namespace && policy.targetRefs.contains { ref in
                ref.name == name && (ref.kind == kind || (ManifestLoader.backendKinds.contains(ref.kind) && ManifestLoader.backendKinds.contains(kind))) && ref.sectionName == nil
            }
        }
    }

    /// Provider-level wins over backend-level; policy documents that name the provider
    /// (sectionName) sit with the provider, the others with the backend.
    public func effectivePolicies(for provider: Provider, in backend: Backend) -> ProviderPolicies {
        let sectionPolicies = policies.filter { policy in
            policy.namespace == backend.namespace && policy.targetRefs.contains {
                ManifestLoader.backendKinds.contains($0.kind) && $0.name == backend.name && $0.sectionName == provider.name
            }
        }
        let backendWide = policies(targeting: backend.kind, name: backend.name, namespace: backend.namespace)
        let layers = [provider.policies] + sectionPolicies.map(\.backend) + [backend.policies] + backendWide.map(\.backend)
        return ProviderPolicies(auth: layers.lazy.compactMap(\.auth).first, health: layers.lazy.compactMap(\.health).first)
    }

    /// Explains which policy supplies a provider's auth and health, for `check`.
    public func policySources(for provider: Provider, in backend: Backend) -> [String] {
        var notes: [String] = []
        for policy in policies where policy.namespace == backend.namespace {
            for ref in policy.targetRefs where ManifestLoader.backendKinds.contains(ref.kind) && ref.name == backend.name && (ref.sectionName == nil || ref.sectionName == provider.name) {
                var what: [String] = []
                if policy.backend.auth != nil { what.append("auth") }
                if policy.backend.health != nil { what.append("health") }
                if policy.requestTimeout != nil { what.append("timeout") }
                if policy.retry != nil { what.append("retry") }
                let scope = ref.sectionName == nil ? "backend \(backend.name)" : "provider \(provider.name)"
                notes.append("\(policy.kind) \(policy.name) (\(policy.location)) -> \(scope): \(what.joined(separator: ", "))")
            }
        }
        return notes
    }

    static func stripBearer(_ value: String) -> String {
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.hasPrefix("Bearer ") ? String(trimmed.dropFirst("Bearer ".count)) : trimmed
    }
}

import Foundation

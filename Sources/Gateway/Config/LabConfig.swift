import Wire
import Yams

/// Everything the manifests say, validated: routes, backends with their priority
/// groups, policies, secrets and the optional `Scenario` of ours.
public struct LabConfig: Sendable {
    public var routes: [Route] = []
    public var backends: [Backend] = []
    public var policies: [Policy] = []
    public var secrets: [Secret] = []
    public var scenario: Scenario?
    /// Warnings found while reading (unknown kinds or fields); errors are thrown instead.
    public var warnings: [ConfigDiagnostic] = []
    /// The files this configuration was read from, in order.
    public var files: [String] = []

    public init() {}

    public func backend(named name: String, namespace: String) -> Backend? {
        backends.first { $0.name == name && $0.namespace == namespace }
    }

    public func secret(named name: String, namespace: String) -> Secret? {
        secrets.first { $0.name == name && $0.namespace == namespace }
    }
}

/// An HTTPRoute: path matches that send traffic to a backend.
public struct Route: Sendable {
    public var name: String
    public var namespace: String
    public var location: SourceLocation
    public var rules: [RouteRule]

    /// The name the access log uses: `namespace/name`.
    public var qualifiedName: String { "\(namespace)/\(name)" }
}

/// One rule of an HTTPRoute.
public struct RouteRule: Sendable {
    public var matches: [PathMatch]
    public var backendRefs: [BackendRef]
    public var requestTimeout: Duration?
    public var retry: RetryPolicy?
    public var location: SourceLocation
}

/// A path match of a route rule.
public struct PathMatch: Sendable, Hashable {
    public enum Kind: String, Sendable { case pathPrefix = "PathPrefix", exact = "Exact" }
    public var kind: Kind
    public var value: String

    /// Segment-aware: prefix `/http-429` matches `/http-429` and `/http-429/x`, not `/http-4290`.
    /// The query is not part of the path. Compared as UTF-8 bytes, with no copies.
    public func matches(_ path: String) -> Bool {
        var path = path
        var value = value
        return path.withUTF8 { p in
            value.withUTF8 { v in
                let pathEnd = p.firstIndex(of: UInt8(ascii: "?")) ?? p.count
                switch kind {
                case .exact:
                    return pathEnd == v.count && p.prefix(pathEnd).elementsEqual(v)
                case .pathPrefix:
                    let prefixLength = v.count > 1 && v.last == UInt8(ascii: "/") ? v.count - 1 : v.count
                    if prefixLength == 1 && v.first == UInt8(ascii: "/") { return true }
                    guard pathEnd >= prefixLength, p.prefix(prefixLength).elementsEqual(v.prefix(prefixLength)) else { return false }
                    return pathEnd == prefixLength || p[prefixLength] == UInt8(ascii: "/")
                }
            }
        }
    }
}

/// A backendRef of a route rule.
public struct BackendRef: Sendable, Hashable {
    public var name: String
    public var namespace: String
    public var kind: String
    public var location: SourceLocation
}

/// Gateway API / policy retry settings.
public struct RetryPolicy: Sendable, Hashable {
    public var attempts: Int
    public var backoff: Duration?
    public var codes: [Int]
}

/// An AgentgatewayBackend (or the Enterprise kind) with `spec.ai.groups`.
public struct Backend: Sendable {
    public var name: String
    public var namespace: String
    public var kind: String
    public var location: SourceLocation
    /// Priority groups in list order; group 1 is `groups[0]`.
    public var groups: [[Provider]]
    /// `spec.policies` on the backend itself.
    public var policies: ProviderPolicies

    public var qualifiedName: String { "\(namespace)/\(name)" }
}

/// One provider inside a priority group.
public struct Provider: Sendable {
    public enum Kind: String, Sendable { case openai }
    public var name: String
    public var kind: Kind
    public var model: String?
    public var host: String?
    public var port: Int?
    public var path: String?
    public var pathPrefix: String?
    public var policies: ProviderPolicies
    public var location: SourceLocation

    /// The upstream address the manifest names: `host:port`, or OpenAI's when no host is set.
    public var upstreamAddress: UpstreamAddress {
        if let host {
            let port = port ?? 443
            return UpstreamAddress(host: host, port: port, tls: port == 443)
        }
        return UpstreamAddress(host: "api.openai.com", port: 443, tls: true)
    }

    /// The upstream path for a client request path, per SEMANTICS section 2.
    public func upstreamPath(forClientPath clientPath: String) -> String {
        if let path { return path }
        if let pathPrefix {
            let trimmed = pathPrefix.hasSuffix("/") ? String(pathPrefix.dropLast()) : pathPrefix
            return trimmed + (clientPath.hasPrefix("/") ? clientPath : "/" + clientPath)
        }
        if host != nil { return clientPath }
        return "/v1/chat/completions"
    }
}

/// Where an upstream lives.
public struct UpstreamAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var tls: Bool

    public init(host: String, port: Int, tls: Bool) {
        self.host = host
        self.port = port
        self.tls = tls
    }

    public var description: String { "\(host):\(port)" }
}

/// Policies that can sit on a provider, on a backend, or come from a policy document.
public struct ProviderPolicies: Sendable {
    public var auth: AuthPolicy?
    public var health: HealthPolicy?

    public init(auth: AuthPolicy? = nil, health: HealthPolicy? = nil) {
        self.auth = auth
        self.health = health
    }
}

/// How the gateway authenticates upstream.
public enum AuthPolicy: Sendable, Hashable {
    /// Forward the client's `Authorization` unchanged.
    case passthrough
    /// Send `Authorization: Bearer <secret's Authorization value>`.
    case secretRef(name: String)
    /// A key given inline (`key:` in agentgateway's schema).
    case key(String)

    public var kindDescription: String {
        switch self {
        case .passthrough: return "passthrough"
        case .secretRef(let name): return "secretRef \(name)"
        case .key: return "inline key"
        }
    }
}

/// A health policy: when a response is unhealthy, and how eviction follows.
public struct HealthPolicy: Sendable {
    public var unhealthyCondition: String?
    /// The parsed condition; nil means the default (5xx, or no response).
    public var condition: UnhealthyCondition?
    public var eviction: EvictionSettings
    public var location: SourceLocation
}

/// `eviction` of a health policy; thresholds are 0...1 here (0...100 in YAML).
public struct EvictionSettings: Sendable, Hashable {
    public var duration: Duration?
    public var consecutiveFailures: Int?
    public var healthThreshold: Double?
    public var restoreHealth: Double?

    public init(duration: Duration? = nil, consecutiveFailures: Int? = nil, healthThreshold: Double? = nil, restoreHealth: Double? = nil) {
        self.duration = duration
        self.consecutiveFailures = consecutiveFailures
        self.healthThreshold = healthThreshold
        self.restoreHealth = restoreHealth
    }
}

/// An AgentgatewayPolicy (or the Enterprise kind).
public struct Policy: Sendable {
    public struct TargetRef: Sendable, Hashable {
        public var kind: String
        public var name: String
        public var sectionName: String?
        public var location: SourceLocation
    }
    public var name: String
    public var namespace: String
    public var kind: String
    public var location: SourceLocation
    public var targetRefs: [TargetRef]
    public var backend: ProviderPolicies
    public var requestTimeout: Duration?
    public var retry: RetryPolicy?
}

/// A Kubernetes Secret; only its `Authorization` key matters here.
public struct Secret: Sendable {
    public var name: String
    public var namespace: String
    public var location: SourceLocation
    public var authorization: String?
}

/// Our own document: which stand-in answers for which upstream address.
public struct Scenario: Sendable {
    public var name: String
    public var description: String?
    public var location: SourceLocation
    public var standIns: [StandInSpec]
    /// Secrets taken from the environment when real upstreams are used: secret name -> variable.
    public var secretsFromEnvironment: [String: String]
    /// `spec.traffic`: a `drive --plan` document, read by the Driver's plan reader (see `ScenarioTraffic`).
    public var traffic: ScenarioTraffic?
    /// `spec.steps`: the lab as a script, in order.
    public var steps: [ScenarioStep] = []
}

/// A text from a lab file and where it was written. Grammars that live in targets the
/// gateway cannot import (expectations, stand-in behaviours) are read there, from these,
/// so their errors still name file:line.
public struct SourcedText: Sendable, Hashable, CustomStringConvertible {
    public var text: String
    public var location: SourceLocation

    public init(_ text: String, at location: SourceLocation) {
        self.text = text
        self.location = location
    }

    public var description: String { text }
}

/// `spec.traffic` as the YAML node it was written as: the Driver reads it with the same
/// code as a `drive --plan` file, and its node marks keep the lab file's lines.
public struct ScenarioTraffic: @unchecked Sendable {
    // Unchecked: a composed Yams node holds a Tag class instance, but nothing mutates
    // the node after the loader composed it; it is only read.
    public let node: Node
    public let location: SourceLocation
}

/// One step of a Scenario's `spec.steps`: what to change at its start, how long it lasts,
/// and what must hold over the requests that finished while it ran.
public struct ScenarioStep: Sendable {
    /// How a step ends.
    public enum End: Sendable {
        /// After this long.
        case duration(Duration)
        /// When the expectation holds over the step's requests, or at `timeout` (a failure).
        case until(SourcedText, timeout: Duration)
    }

    /// `set: {stand-in: behaviour}`: a stand-in's behaviour at the step's start, in the admin API's words.
    public struct Setting: Sendable, Hashable {
        public var standIn: String
        public var behavior: SourcedText
    }

    public var name: String
    /// The narration shown while the step runs.
    public var say: String?
    public var set: [Setting]
    /// Requests sent at the step's start, besides the Scenario's `traffic`.
    public var send: Int
    /// Providers whose eviction ends at the step's start.
    public var returns: [SourcedText]
    public var end: End
    /// Expectations in `drive --expect`'s grammar, over the requests that finished in this step.
    public var expect: [SourcedText]
    public var location: SourceLocation

    /// The longest `for` or `timeout` a step takes: one hour. A lab step is seconds long.
    public static let longestStep = Duration.seconds(3600)
    /// The most requests one step's `send` fires at once.
    public static let largestSend = 10_000
    /// The `timeout` of an `until` that gives none.
    public static let defaultTimeout = Duration.seconds(30)
}

/// One stand-in of a scenario.
public struct StandInSpec: Sendable, Hashable {
    public enum Kind: String, Sendable, CaseIterable { case http429 = "http-429", mockOpenAI = "mock-openai" }
    public var name: String
    public var kind: Kind
    /// The upstream addresses (`host:port`) this stand-in answers for.
    public var answers: [String]
    /// `retry-after` seconds the http-429 stand-in sends.
    public var retryAfterSeconds: Int?
    /// The behaviour it starts with, as text (`healthy`, `503 50%`, ...); nil for its kind's default.
    public var behavior: String?
    /// Added before every answer.
    public var latency: Duration?
    /// Between streamed chunks of the mock OpenAI.
    public var tokenDelay: Duration?
    public var location: SourceLocation
    /// How the mock OpenAI paces and sizes answers (`model:`); nil for today's answer.
    public var model: ModelShape? = nil

    /// The longest `latency` or `tokenDelay` a stand-in takes (from a file or the admin API):
    /// one hour. `hang` is the behaviour for never answering.
    public static let longestDelay = Duration.seconds(3600)
}

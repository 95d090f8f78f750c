import Driver
import Gateway
import Wire

/// A provider's state, with one meaning whatever reported it (agentgateway's `/config_dump`,
/// ours, an access log, the in-process balancer):
/// - `healthy`: in rotation.
/// - `evicted`: out of rotation; `remaining` seconds left when known.
/// - `probing`: the eviction is over and one probe request decides; while that probe is in
///   flight (`probeSent`) ordinary requests skip the provider, before it the next request is the probe.
public enum ProviderState: Sendable, Hashable {
    case healthy
    case evicted(remaining: Double?)
    case probing(probeSent: Bool)

    public var word: String {
        switch self {
        case .healthy: return "healthy"
        case .evicted: return "evicted"
        case .probing: return "probing"
        }
    }

    /// True when the next ordinary request may go to this provider. The active group is the
    /// first with such a provider: the balancer's own rule (a probe not yet sent counts as in).
    public var inRotation: Bool {
        switch self {
        case .healthy: return true
        case .evicted: return false
        case .probing(let sent): return !sent
        }
    }
}

/// One provider as a source reports it. Counts are nil when the source does not give them.
public struct ProviderReport: Sendable, Hashable {
    public var name: String
    public var state: ProviderState
    /// Success-rate EWMA, 0...1.
    public var health: Double?
    /// Latency EWMA of successes, seconds.
    public var latency: Double?
    public var inFlight: Int?
    public var totalRequests: Int?
    public var consecutiveFailures: Int?
    public var timesEjected: Int?
    /// Why it is out, when the source says (ours does: `429 quota`, `5xx`...).
    public var reason: String?

    public init(name: String, state: ProviderState, health: Double? = nil, latency: Double? = nil, inFlight: Int? = nil,
                totalRequests: Int? = nil, consecutiveFailures: Int? = nil, timesEjected: Int? = nil, reason: String? = nil) {
        self.reason = reason
        self.name = name
        self.state = state
        self.health = health
        self.latency = latency
        self.inFlight = inFlight
        self.totalRequests = totalRequests
        self.consecutiveFailures = consecutiveFailures
        self.timesEjected = timesEjected
    }
}

/// One AI backend: its priority groups in order (index 0 is group 1), providers by name.
public struct BackendReport: Sendable, Hashable {
    public var name: String
    public var namespace: String?
    public var groups: [[ProviderReport]]

    public init(name: String, namespace: String? = nil, groups: [[ProviderReport]]) {
        self.name = name
        self.namespace = namespace
        self.groups = groups
    }

    /// The first group with a provider in rotation (0-based); nil when every provider is out.
    public var activeGroup: Int? {
        groups.firstIndex { $0.contains { $0.state.inRotation } }
    }
}

/// What a `/config_dump` says about AI backends.
public struct ConfigDump: Sendable, Hashable {
    public var backends: [BackendReport]
    /// Entries of `backends` that are not AI backends with providers (hosts, services, MCP):
    /// not shown, counted so a user can tell an empty watch from a misread one.
    public var otherBackends: Int

    public init(backends: [BackendReport], otherBackends: Int = 0) {
        self.backends = backends
        self.otherBackends = otherBackends
    }
}

/// Why a `/config_dump` body could not be read: said once per URL, with what was missing.
public struct ConfigDumpProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Reads agentgateway's `GET /config_dump` (and ours, which speaks the same shape).
///
/// The shape, after agentgateway's serializer (`EndpointSet` is a sequence of
/// `EndpointGroup`s, one per priority; each has `active` and `rejected` maps keyed by
/// endpoint name, values `{endpoint, info}`; `EndpointInfo` is camelCase, older builds
/// snake_case):
/// `{"backends": [{"backend": {"ai": {"name", "namespace", "target": {"providers": [group...]}}}}]}`.
/// Every number is checked; sizes are bounded; unknown fields are ignored.
public enum ConfigDumpParser {
    /// Bodies above this are refused (a config dump of a large cluster is a few MB).
    public static let maxBytes = 32 << 20
    static let maxBackends = 10_000
    static let maxGroups = 64
    static let maxProvidersPerGroup = 1_000
    static let maxNameLength = 256

    public static func parse(bytes: [UInt8]) -> Result<ConfigDump, ConfigDumpProblem> {
        guard bytes.count <= maxBytes else {
            return .failure(ConfigDumpProblem(message: "body is \(bytes.count) bytes, over the \(maxBytes >> 20) MiB read"))
        }
        let json: JSONValue
        do { json = try JSONValue.parse(bytes: bytes) } catch {
            return .failure(ConfigDumpProblem(message: "not JSON (\(error)); expected agentgateway's config dump object"))
        }
        return parse(json)
    }

    public static func parse(_ json: JSONValue) -> Result<ConfigDump, ConfigDumpProblem> {
        guard case .object = json else {
            return .failure(ConfigDumpProblem(message: "not a JSON object; expected {\"backends\": [...]}"))
        }
        guard let backendsValue = json["backends"] else {
            return .failure(ConfigDumpProblem(message: "no \"backends\" field; is this agentgateway's admin port (15000)?"))
        }
        guard let entries = backendsValue.array else {
            if backendsValue.isNull { return .success(ConfigDump(backends: [])) }
            return .failure(ConfigDumpProblem(message: "\"backends\" is not an array"))
        }
        var out: [BackendReport] = []
        var other = 0
        for entry in entries.prefix(maxBackends) {
            // `{"backend": {"ai": {...}}}`: the variant is the key; only AI backends have provider groups.
            guard let ai = entry["backend"]?["ai"] ?? entry["ai"], let backend = backendReport(ai) else {
                other += 1
                continue
            }
            out.append(backend)
        }
        other += max(0, entries.count - maxBackends)
        return .success(ConfigDump(backends: out, otherBackends: other))
    }

    static func backendReport(_ ai: JSONValue) -> BackendReport? {
        guard let groups = ai["target"]?["providers"]?.array else { return nil }
        let name = shortName(ai["name"]?.string ?? "") ?? "(unnamed)"
        var out: [[ProviderReport]] = []
        for group in groups.prefix(maxGroups) {
            var providers: [ProviderReport] = []
            for (key, rejected) in [("active", false), ("rejected", true)] {
                guard case .object(let members)? = group[key] else { continue }
                for (providerKey, value) in members.prefix(maxProvidersPerGroup) {
                    let endpointName = value["endpoint"]?["name"]?.string
                    guard let name = shortName(providerKey.isEmpty ? endpointName ?? "" : providerKey) else { continue }
                    providers.append(provider(name: name, value["info"] ?? .null, rejected: rejected))
                }
            }
            // The dump's map order is not kept by the JSON reader: names give a stable order.
            providers.sort { $0.name < $1.name }
            out.append(Array(providers.prefix(maxProvidersPerGroup)))
        }
        return BackendReport(name: name, namespace: ai["namespace"]?.string.flatMap(shortName), groups: out)
    }

    /// One `info` object; camelCase first, snake_case as older builds wrote it.
    static func provider(name: String, _ info: JSONValue, rejected: Bool) -> ProviderReport {
        func field(_ camel: String, _ snake: String) -> JSONValue? {
            if let v = info[camel], !v.isNull { return v }
            if let v = info[snake], !v.isNull { return v }
            return nil
        }
        let state: ProviderState
        if rejected {
            // Ours adds `state: "probing"` (agentgateway has no half-open probe); agentgateway's
            // tooling ignores the field.
            if info["state"]?.string == "probing" {
                state = .probing(probeSent: info["probeSent"]?.bool ?? false)
            } else {
                state = .evicted(remaining: field("evictedUntil", "evicted_until")?.string.flatMap(remainingSeconds))
            }
        } else {
            state = .healthy
        }
        return ProviderReport(
            name: name, state: state,
            health: fraction(field("health", "health")),
            latency: seconds(field("requestLatency", "request_latency")),
            inFlight: count(field("pendingRequests", "pending_requests")),
            totalRequests: count(field("totalRequests", "total_requests")),
            consecutiveFailures: count(field("consecutiveFailures", "consecutive_failures")),
            timesEjected: count(field("timesEjected", "times_ejected")),
            reason: info["reason"]?.string.flatMap(shortName))
    }

    /// `evictedUntil`: the time left as a Go duration (`59.876s`, `1m0s`, `1h2m3.5s`, `250ms`).
    /// Unreadable text gives nil: still evicted, countdown unknown.
    public static func remainingSeconds(_ text: String) -> Double? {
        guard let d = try? GoDuration.parse(text) else { return nil }
        return d.seconds
    }

    /// A health EWMA: finite, clamped into 0...1.
    static func fraction(_ v: JSONValue?) -> Double? {
        guard let n = v?.number, n.isFinite else { return nil }
        return min(1, max(0, n))
    }

    /// A latency in seconds: finite and not negative, at most a day (beyond is no latency).
    static func seconds(_ v: JSONValue?) -> Double? {
        guard let n = v?.number, n.isFinite, n >= 0, n <= 86_400 else { return nil }
        return n
    }

    /// A count: a whole, non-negative number, clamped to Int.
    static func count(_ v: JSONValue?) -> Int? {
        guard let n = v?.number, n.isFinite, n >= 0 else { return nil }
        return Checked.clampedInt(n, 0...Int.max)
    }

    /// A name for the screen: control characters dropped, at most 256 characters; nil when empty.
    static func shortName(_ s: String) -> String? {
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars where u.value >= 0x20 && u.value != 0x7F {
            if out.count >= maxNameLength { break }
            out.append(u)
        }
        return out.isEmpty ? nil : String(out)
    }
}

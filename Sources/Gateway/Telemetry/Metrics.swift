import NIOConcurrencyHelpers

/// Counters and histograms of the gateway, served as Prometheus text exposition with
/// agentgateway's metric names (plus ours for eviction and the active group).
public final class GatewayMetrics: Sendable {
    struct RequestKey: Hashable {
        var backend, route: String
        var status: Int
        var reason: String
    }
    struct RouteKey: Hashable { var backend, route: String }
    struct TokenKey: Hashable { var type, requestModel, responseModel: String }
    struct EvictionKey: Hashable { var provider, reason: String }

    /// A fixed-bucket histogram, cumulative at render time.
    struct Histogram {
        let bounds: [Double]
        var counts: [UInt64]
        var sum = 0.0
        var count: UInt64 = 0
        init(bounds: [Double]) {
            self.bounds = bounds
            counts = Array(repeating: 0, count: bounds.count)
        }
        mutating func observe(_ value: Double) {
            if let i = bounds.firstIndex(where: { value <= $0 }) { counts[i] += 1 }
            sum += value
            count += 1
        }
    }

    struct State {
        var requests: [RequestKey: UInt64] = [:]
        var durations: [RouteKey: Histogram] = [:]
        var tokens: [TokenKey: Histogram] = [:]
        var retries: [RouteKey: UInt64] = [:]
        var evictions: [EvictionKey: UInt64] = [:]
        var refusedConnections: UInt64 = 0
        var timeToFirstToken: [RouteKey: Histogram] = [:]
        var timePerOutputToken: [RouteKey: Histogram] = [:]
    }

    static let durationBounds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
    static let tokenBounds = [1.0, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262_144, 1_048_576]

    private let state = NIOLockedValueBox(State())

    public init() {}

    func recordRequest(_ log: RequestLog, backend: String) {
        let route = log.route ?? ""
        let key = RequestKey(backend: backend, route: route, status: log.status, reason: log.reason ?? "")
        let routeKey = RouteKey(backend: backend, route: route)
        state.withLockedValue { s in
            s.requests[key, default: 0] += 1
            s.durations[routeKey, default: Histogram(bounds: Self.durationBounds)].observe(log.duration.seconds)
            if log.attempts.count > 1 { s.retries[routeKey, default: 0] += UInt64(log.attempts.count - 1) }
            if let ttft = log.timeToFirstToken {
                s.timeToFirstToken[routeKey, default: Histogram(bounds: Self.durationBounds)].observe(ttft.seconds)
            }
            if let tpot = log.timePerOutputToken {
                s.timePerOutputToken[routeKey, default: Histogram(bounds: Self.durationBounds)].observe(tpot.seconds)
            }
            let models = (log.requestModel ?? "", log.responseModel ?? "")
            if let input = log.inputTokens {
                s.tokens[TokenKey(type: "input", requestModel: models.0, responseModel: models.1), default: Histogram(bounds: Self.tokenBounds)].observe(Double(input))
            }
            if let output = log.outputTokens {
                s.tokens[TokenKey(type: "output", requestModel: models.0, responseModel: models.1), default: Histogram(bounds: Self.tokenBounds)].observe(Double(output))
            }
        }
    }

    /// A client connection closed at once: `maxConnections` were open.
    func recordRefusedConnection() {
        state.withLockedValue { $0.refusedConnections += 1 }
    }

    func recordEviction(provider: String, reason: EvictionReason) {
        state.withLockedValue { $0.evictions[EvictionKey(provider: provider, reason: reason.description), default: 0] += 1 }
    }

    /// The exposition text; gauges come from the balancers at this moment.
    public func render(runtime: GatewayRuntime, now: ContinuousClock.Instant = .now) -> String {
        let s = state.withLockedValue { $0 }
        var out = ""
        func labels(_ pairs: [(String, String)]) -> String {
            "{" + pairs.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        func header(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func histogram<K>(_ name: String, _ map: [K: Histogram], _ keyLabels: (K) -> [(String, String)]) {
            for (key, h) in map.sorted(by: { labels(keyLabels($0.key)) < labels(keyLabels($1.key)) }) {
                var cumulative: UInt64 = 0
                for (i, bound) in h.bounds.enumerated() {
                    cumulative += h.counts[i]
                    out += "\(name)_bucket\(labels(keyLabels(key) + [("le", Self.number(bound))])) \(cumulative)\n"
                }
                out += "\(name)_bucket\(labels(keyLabels(key) + [("le", "+Inf")])) \(h.count)\n"
                out += "\(name)_sum\(labels(keyLabels(key))) \(Self.number(h.sum))\n"
                out += "\(name)_count\(labels(keyLabels(key))) \(h.count)\n"
            }
        }
        header("agentgateway_requests_total", "counter", "Requests answered, by backend, route, status and reason.")
        for (key, value) in s.requests.sorted(by: { "\($0.key)" < "\($1.key)" }) {
            out += "agentgateway_requests_total\(labels([("backend", key.backend), ("route", key.route), ("status", String(key.status)), ("reason", key.reason)])) \(value)\n"
        }
        header("agentgateway_request_duration_seconds", "histogram", "Request duration, retries included.")
        histogram("agentgateway_request_duration_seconds", s.durations) { [("backend", $0.backend), ("route", $0.route)] }
        header("agentgateway_gen_ai_client_token_usage", "histogram", "Tokens per request, by type and model.")
        histogram("agentgateway_gen_ai_client_token_usage", s.tokens) { [("gen_ai_token_type", $0.type), ("gen_ai_request_model", $0.requestModel), ("gen_ai_response_model", $0.responseModel)] }
        header("agentgateway_gen_ai_server_time_to_first_token_seconds", "histogram", "Streamed responses: time to the first chunk.")
        histogram("agentgateway_gen_ai_server_time_to_first_token_seconds", s.timeToFirstToken) { [("backend", $0.backend), ("route", $0.route)] }
        header("agentgateway_gen_ai_server_time_per_output_token_seconds", "histogram", "Streamed responses: time per output token after the first.")
        histogram("agentgateway_gen_ai_server_time_per_output_token_seconds", s.timePerOutputToken) { [("backend", $0.backend), ("route", $0.route)] }
        header("agentgateway_retries_total", "counter", "Upstream tries beyond the first.")
        for (key, value) in s.retries.sorted(by: { "\($0.key)" < "\($1.key)" }) {
            out += "agentgateway_retries_total\(labels([("backend", key.backend), ("route", key.route)])) \(value)\n"
        }
        header("failover_evictions_total", "counter", "Evictions, by provider and reason.")
        for (key, value) in s.evictions.sorted(by: { "\($0.key)" < "\($1.key)" }) {
            out += "failover_evictions_total\(labels([("provider", key.provider), ("reason", key.reason)])) \(value)\n"
        }
        header("failover_client_connections", "gauge", "Client connections open now.")
        out += "failover_client_connections \(runtime.connectionCount)\n"
        header("failover_client_connections_refused_total", "counter", "Client connections closed at once because --max-connections were open.")
        out += "failover_client_connections_refused_total \(s.refusedConnections)\n"
        header("failover_provider_evicted", "gauge", "1 while the provider is out of rotation (evicted or probing), else 0.")
        var active: [(String, Int)] = []
        for (b, backend) in runtime.plan.backends.enumerated() {
            let balancer = runtime.snapshot(backend: b)
            for group in balancer.groups {
                for provider in group {
                    out += "failover_provider_evicted\(labels([("provider", provider.name), ("group", String(provider.group + 1))])) \(provider.isOut ? 1 : 0)\n"
                }
            }
            active.append((backend.name, balancer.activeGroup().map { $0 + 1 } ?? 0))
        }
        header("failover_active_group", "gauge", "The priority group serving new requests (1-based); 0 when every provider is out.")
        for (name, group) in active {
            out += "failover_active_group\(labels([("backend", name)])) \(group)\n"
        }
        if let exporter = runtime.traceExporter {
            let counts = exporter.counts
            header("failover_trace_spans_exported_total", "counter", "Spans the OTLP collector accepted.")
            out += "failover_trace_spans_exported_total \(counts.exported)\n"
            header("failover_trace_spans_dropped_total", "counter", "Spans dropped: the export queue was full, or the collector was down or refused them.")
            out += "failover_trace_spans_dropped_total \(counts.dropped)\n"
        }
        return out
    }

    /// Label values escape backslash, double quote and newline.
    static func escape(_ value: String) -> String {
        var out = ""
        for ch in value {
            switch ch {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(ch)
            }
        }
        return out
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}

import Foundation
import NIOConcurrencyHelpers

/// Settings of the gateway beyond the manifests.
public struct GatewayOptions: Sendable {
    /// Request body bytes held per connection (`--max-body-buffer`): the gateway reads a
    /// whole body before it sends it upstream, so a larger one gets 413, before its bytes
    /// are read when its length says so (and without `100 Continue`).
    public var maxRequestBody = 8 * 1024 * 1024
    /// Bodies over this are not retried.
    public var maxRetryBody = 64 * 1024
    /// How much of a response body is kept to read `usage` and `model` for the log.
    public var responseCopyLimit = 256 * 1024
    /// Adds `response.body` (cut to this many bytes) to the access log when set.
    public var logResponseBody: Int?
    public var balancer = BalancerOptions()
    /// When a response evicts its provider and another provider will serve the next
    /// request, add `retry-after-ms` with this value so SDKs retry at once instead of
    /// sleeping the upstream's `retry-after` (which still goes through unchanged). nil: off.
    public var failoverRetryHint: Duration? = .milliseconds(100)
    /// Event-loop threads serving clients (each with its own upstream pool).
    public var threads = 1
    /// Traces (spans per request, `traceparent` upstream): nil is off, at the cost of a nil check.
    public var tracing: TracingOptions?

    // Limits and timeouts against slow or hostile clients and hanging upstreams.
    /// Time to read a request's head from its first byte (from the accept, for a
    /// connection's first request): then 408 and close, or just close when nothing came.
    public var clientHeaderTimeout: Duration = .seconds(30)
    /// Longest pause within a request body: then 408 and close.
    public var clientBodyTimeout: Duration = .seconds(30)
    /// How long a keep-alive connection may wait for its next request.
    public var idleTimeout: Duration = .seconds(60)
    /// Time to an upstream's response head when the route sets no request timeout: then 504.
    public var upstreamHeaderTimeout: Duration = .seconds(120)
    /// Client connections served at once; past it new ones are closed at once.
    public var maxConnections = GatewayOptions.defaultMaxConnections()
    /// On shutdown: how long requests in flight may take to finish before they are cut.
    public var drainTimeout: Duration = .seconds(10)
    /// A request target longer than this gets 414; header lines (name, value, 4 bytes of
    /// framing each) beyond `maxHead` bytes get 431. nginx and Envoy allow about as much.
    public var maxTarget = 8 * 1024
    public var maxHead = 64 * 1024

    /// Raises this process's soft limit of open files to its hard limit, as Go programs do
    /// at start: every open stream is a descriptor or two, and a soft limit of 1,024 (the
    /// usual default) ends a lab of a few hundred streams in `EMFILE`. The hard limit is
    /// left as it is. Returns the soft limit before and after (nil when unchanged).
    @discardableResult
    public static func raiseFileLimit() -> (before: UInt64, after: UInt64)? {
        var limit = rlimit()
        #if canImport(Glibc)
        let resource = Int32(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        guard getrlimit(resource, &limit) == 0 else { return nil }
        // An unlimited hard limit is not asked for: a soft limit of 2^20 is plenty.
        let target = limit.rlim_max == rlim_t.max ? min(rlim_t(1 << 20), limit.rlim_max) : limit.rlim_max
        guard limit.rlim_cur != rlim_t.max, limit.rlim_cur < target else { return nil }
        let before = UInt64(limit.rlim_cur)
        limit.rlim_cur = target
        guard setrlimit(resource, &limit) == 0 else { return nil }
        return (before, UInt64(target))
    }

    /// Half of the descriptors the process may open (`ulimit -n`) after a reserve of 64 for
    /// the log, listeners and stand-ins: each client may hold an upstream connection too.
    public static func defaultMaxConnections() -> Int {
        var limit = rlimit()
        #if canImport(Glibc)
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 512 }
        #else
        guard getrlimit(RLIMIT_NOFILE, &limit) == 0 else { return 512 }
        #endif
        let soft = limit.rlim_cur == rlim_t.max ? UInt64(1 << 20) : UInt64(limit.rlim_cur)
        let usable = soft > 64 ? (soft - 64) / 2 : 1
        return Int(min(max(usable, 1), 1 << 20))
    }

    public init() {}
}

/// Shared, thread-safe state of a running gateway: the plan, one balancer per
/// backend (each behind its own lock), and where events go.
public final class GatewayRuntime: Sendable {
    public let plan: GatewayPlan
    public let options: GatewayOptions
    private let balancers: [NIOLockedValueBox<BackendBalancer>]
    private let sinks: NIOLockedValueBox<[GatewayEventSink]>
    let accessLog: AccessLogWriter?
    /// Prometheus counters and histograms.
    public let metrics = GatewayMetrics()
    /// Client connections open now, against `options.maxConnections`.
    private let openConnections = NIOLockedValueBox(0)
    /// What every request to a provider sends and logs the same way, by backend, group, index.
    let wire: [[[ProviderWire]]]
    /// Tracing's settings when it is on.
    let tracing: TracingOptions?
    /// The sampler when tracing is on: what each exchange reads (a copy of the whole
    /// options, with their strings and arrays, would cost retains per request).
    let traceSampler: TraceSampler?
    /// Sends spans to the collector, when an endpoint is set.
    public let traceExporter: TraceExporter?

    public init(plan: GatewayPlan, options: GatewayOptions = GatewayOptions(), accessLog: AccessLogWriter?) {
        self.plan = plan
        self.options = options
        self.accessLog = accessLog
        self.sinks = NIOLockedValueBox([])
        self.tracing = options.tracing
        self.traceSampler = options.tracing?.sampler
        self.traceExporter = options.tracing.flatMap { t in t.endpoint.map { TraceExporter(options: t, endpoint: $0) } }
        self.wire = plan.backends.map { $0.groups.map { $0.map(ProviderWire.init) } }
        self.balancers = plan.backends.enumerated().map { index, backend in
            // The third fallback for an eviction's base: the retry backoff of a route to this backend.
            let backoff = plan.routes.first { $0.backendIndex == index && $0.retry?.backoff != nil }?.retry?.backoff
            let groups = backend.groups.map { group in
                group.map { ProviderHealth(name: $0.name, group: $0.group, rule: $0.healthRule(retryBackoff: backoff)) }
            }
            return NIOLockedValueBox(BackendBalancer(groups: groups, options: options.balancer))
        }
    }

    /// Counts a new client connection in; false when `maxConnections` are open already.
    func admitConnection() -> Bool {
        let admitted = openConnections.withLockedValue { open -> Bool in
            guard open < options.maxConnections else { return false }
            open += 1
            return true
        }
        if !admitted { metrics.recordRefusedConnection() }
        return admitted
    }

    func connectionClosed() {
        openConnections.withLockedValue { $0 -= 1 }
    }

    /// Client connections open now.
    public var connectionCount: Int { openConnections.withLockedValue { $0 } }

    /// Adds a receiver of gateway events (dashboard, tests).
    public func subscribe(_ sink: @escaping GatewayEventSink) {
        sinks.withLockedValue { $0.append(sink) }
    }

    func emit(_ event: GatewayEvent) {
        for sink in sinks.withLockedValue({ $0 }) { sink(event) }
    }

    func emit(backend: Int, _ events: [BalancerEvent]) {
        guard !events.isEmpty else { return }
        let name = plan.backends[backend].name
        for event in events {
            if case .evicted(_, let reason, _) = event.kind { metrics.recordEviction(provider: event.provider, reason: reason) }
            emit(.health(backend: name, event))
        }
    }

    /// Counts a finished request, queues its spans and tells the subscribers; returns its
    /// access-log line (nil when there is no access log) for the caller to write. `pool`
    /// is the finishing loop's (its scratch buffer for the spans).
    func finished(_ log: RequestLog, backend: Int?, pool: UpstreamPool) -> [UInt8]? {
        metrics.recordRequest(log, backend: backend.map { plan.backends[$0].name } ?? "")
        let line = accessLog == nil ? nil : log.jsonLineBytes()
        traceExporter?.submit(log, scratch: pool.traceScratch)
        emit(.request(log))
        return line
    }

    /// Chooses a provider of a backend; eviction already recorded is in force.
    func choose(backend: Int, now: ContinuousClock.Instant) -> ProviderChoice? {
        var rng = SystemRandomNumberGenerator()
        let result = balancers[backend].withLockedValue { $0.choose(now: now, using: &rng) }
        guard let (choice, events) = result else { return nil }
        emit(backend: backend, events)
        return choice
    }

    /// Records a try's outcome; returns the balancer's events (an eviction, for the trace).
    @discardableResult
    func record(_ outcome: AttemptOutcome, for choice: ProviderChoice, backend: Int, latency: Duration, now: ContinuousClock.Instant) -> [BalancerEvent] {
        let events = balancers[backend].withLockedValue { $0.record(outcome, for: choice, latency: latency, now: now) }
        emit(backend: backend, events)
        return events
    }

    func cancel(_ choice: ProviderChoice, backend: Int) {
        balancers[backend].withLockedValue { $0.cancel(choice) }
    }

    /// Whether an outcome counts as a failure for that provider's health rule.
    func isFailure(_ outcome: AttemptOutcome, for choice: ProviderChoice, backend: Int) -> Bool {
        balancers[backend].withLockedValue { $0.isFailure(outcome, rule: $0[choice.provider].rule) }
    }

    /// True when `choice`'s provider is out of rotation and another provider is in it.
    func failoverReady(after choice: ProviderChoice, backend: Int) -> Bool {
        balancers[backend].withLockedValue { $0[choice.provider].isOut && $0.activeGroup() != nil }
    }

    /// A copy of a backend's balancer state, for the health API and the dashboard.
    public func snapshot(backend: Int) -> BackendBalancer {
        balancers[backend].withLockedValue { $0 }
    }

    /// Ends an eviction at once (the dashboard's `r` key).
    public func returnNow(backend: Int, provider: ProviderIndex) {
        let events = balancers[backend].withLockedValue { $0.returnNow(provider, now: .now) }
        emit(backend: backend, events)
    }
}

/// A provider's per-request constants, made once: the header lines every request to it
/// carries, and the `endpoint` the access log names.
final class ProviderWire: Sendable {
    /// The provider itself: exchanges hold this object, not copies of it.
    let provider: PlannedProvider
    /// `host`, `content-type` and (for a Secret or key) `authorization` header lines.
    let headerLines: [UInt8]
    let endpoint: String
    /// The provider's model override as a JSON string literal, for the body splice.
    let quotedModel: [UInt8]?

    init(_ provider: PlannedProvider) {
        self.provider = provider
        var lines = "host: \(provider.hostHeader)\r\ncontent-type: application/json\r\n"
        if case .bearer(let token) = provider.auth { lines += "authorization: Bearer \(token)\r\n" }
        headerLines = Array(lines.utf8)
        endpoint = provider.connect.description
        quotedModel = provider.model.map(JSONLine.quoted)
    }
}

extension PlannedProvider {
    /// The provider's health rule: lab mode without a health policy. With one, a missing
    /// response (connect error, reset, timeout) is always unhealthy.
    func healthRule(retryBackoff: Duration?) -> HealthRule {
        guard let health else { return .lab }
        return .policy(HealthPolicyRule(condition: health.condition ?? .defaultCondition, eviction: health.eviction, retryBackoff: retryBackoff))
    }
}

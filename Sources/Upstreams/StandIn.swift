import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Wire

/// One of the lab's stand-ins on loopback (the http-429 server or the mock OpenAI),
/// whose behaviour can be switched while it runs.
public final class StandIn: Sendable {
    public let name: String
    public let host: String
    /// The port, fixed at start, kept when it goes `down` and comes back.
    public let port: Int
    private let group: EventLoopGroup
    private let state: NIOLockedValueBox<State>
    /// One token clock per event loop that serves this stand-in's streams.
    private let clocks = NIOLockedValueBox<[ObjectIdentifier: NIOLoopBound<TokenClock>]>([:])

    struct State {
        var behavior: StandInBehavior
        var listener: Channel?
        var connections: [ObjectIdentifier: Channel] = [:]
        var bucketTokens: Double = 0
        var bucketUpdated = ContinuousClock.now
        var requests = 0
        var completionCounter = 0
        /// Delay between streamed chunks.
        var tokenDelay: Duration = .zero
        /// Added before every answer, whatever the behaviour.
        var latency: Duration = .zero
        /// How completions are paced and sized; the default is today's answer.
        var shape = ModelShape()
        /// Seeds each answer's jitter and length draws (with its counter), so a run repeats.
        var seed: UInt64 = 0x5EED
        /// The `traceparent` of the last requests that had one (the gateway's tries, when traced).
        var traceParents: [String] = []
    }

    private init(name: String, host: String, port: Int, group: EventLoopGroup, behavior: StandInBehavior) {
        self.name = name
        self.host = host
        self.port = port
        self.group = group
        self.state = NIOLockedValueBox(State(behavior: behavior))
    }

    /// Starts a stand-in; `port` 0 lets the system choose.
    public static func start(name: String, behavior: StandInBehavior, group: EventLoopGroup, host: String = "127.0.0.1", port: Int = 0) async throws -> StandIn {
        let listener = try await bind(group: group, host: host, port: port, standIn: nil)
        let standIn = StandIn(name: name, host: host, port: listener.channel.localAddress?.port ?? port, group: group, behavior: behavior)
        listener.attach(standIn)
        standIn.state.withLockedValue {
            $0.listener = listener.channel
            if case .rateLimited(_, let burst) = behavior { $0.bucketTokens = Double(burst) }
        }
        if case .down = behavior { try await standIn.closeListener() }
        return standIn
    }

    /// What the stand-in does now.
    public var behavior: StandInBehavior { state.withLockedValue { $0.behavior } }

    /// Requests it has read since start.
    public var requestCount: Int { state.withLockedValue { $0.requests } }

    /// The `traceparent` headers of the last (up to 32) requests that carried one, oldest first.
    public var seenTraceParents: [String] { state.withLockedValue { $0.traceParents } }

    func noteTraceParent(_ value: String) {
        state.withLockedValue {
            if $0.traceParents.count >= 32 { $0.traceParents.removeFirst() }
            $0.traceParents.append(value)
        }
    }

    /// `host:port` to reach it.
    public var address: String { "\(host):\(port)" }

    /// Adds this much latency before every answer, whatever the behaviour.
    public func setLatency(_ latency: Duration) {
        state.withLockedValue { $0.latency = latency }
    }

    /// Sets the delay between streamed chunks.
    public func setTokenDelay(_ delay: Duration) {
        state.withLockedValue { $0.tokenDelay = delay }
    }

    /// How the mock OpenAI paces and sizes its answers now.
    public var shape: ModelShape { state.withLockedValue { $0.shape } }

    /// Sets how answers are paced and sized (`ModelShape()` for today's answer).
    public func setShape(_ shape: ModelShape, seed: UInt64? = nil) {
        state.withLockedValue {
            $0.shape = shape
            if let seed { $0.seed = seed }
        }
    }

    /// Applies a parsed `--stand-in`/admin/Scenario setting: its behaviour and its shape, each if given.
    public func apply(_ setting: StandInSetting) async throws {
        if let shape = setting.shape { setShape(shape) }
        if let behavior = setting.behavior { try await setBehavior(behavior) }
    }

    /// Switches behaviour live. `down` closes the listener and every connection, so new
    /// connections are refused; leaving `down` listens on the same port again.
    public func setBehavior(_ behavior: StandInBehavior) async throws {
        let wasDown = state.withLockedValue { s -> Bool in
            let wasDown = s.listener == nil
            s.behavior = behavior
            if case .rateLimited(_, let burst) = behavior {
                s.bucketTokens = Double(burst)
                s.bucketUpdated = .now
            }
            return wasDown
        }
        if case .down = behavior {
            try await closeListener()
        } else if wasDown {
            let listener = try await Self.bind(group: group, host: host, port: port, standIn: self)
            state.withLockedValue { $0.listener = listener.channel }
        }
    }

    private func closeListener() async throws {
        let (listener, connections) = state.withLockedValue { s -> (Channel?, [Channel]) in
            let result = (s.listener, Array(s.connections.values))
            s.listener = nil
            s.connections = [:]
            return result
        }
        try? await listener?.close()
        for connection in connections { try? await connection.close() }
    }

    /// Stops listening and closes every connection.
    public func stop() async {
        try? await closeListener()
    }

    // MARK: Serving

    /// A listener whose handlers find their stand-in once it exists.
    private final class Listener: Sendable {
        let channel: Channel
        let owner: NIOLockedValueBox<StandIn?>
        init(channel: Channel, owner: NIOLockedValueBox<StandIn?>) {
            self.channel = channel
            self.owner = owner
        }
        func attach(_ standIn: StandIn) { owner.withLockedValue { $0 = standIn } }
    }

    private static func bind(group: EventLoopGroup, host: String, port: Int, standIn: StandIn?) async throws -> Listener {
        let owner = NIOLockedValueBox<StandIn?>(standIn)
        let channel = try await ServerBootstrap(group: group)
            // Thousands of streams open their connections at once (a closed loop starting).
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let standIn = owner.withLockedValue({ $0 }) else { throw ChannelError.ioOnClosedChannel }
                    let sync = channel.pipeline.syncOperations
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(StandInHandler(standIn: standIn))
                }
            }
            .bind(host: host, port: port)
            .get()
        return Listener(channel: channel, owner: owner)
    }

    /// The token clock of `loop` (made on first use); call on that loop.
    func tokenClock(on loop: EventLoop) -> TokenClock {
        let key = ObjectIdentifier(loop)
        return clocks.withLockedValue { clocks in
            if let clock = clocks[key] { return clock }
            let clock = NIOLoopBound(TokenClock(loop: loop), eventLoop: loop)
            clocks[key] = clock
            return clock
        }.value
    }

    func connectionOpened(_ channel: Channel) -> Bool {
        state.withLockedValue { s in
            guard s.listener != nil else { return false }
            s.connections[ObjectIdentifier(channel)] = channel
            return true
        }
    }

    func connectionClosed(_ channel: Channel) {
        _ = state.withLockedValue { $0.connections.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// What to answer to one request, decided under the lock (counters, token bucket).
    enum Decision {
        case completion(id: String, tokenDelay: Duration, delay: Duration, shape: ModelShape, seed: UInt64)
        case rateLimit(retryAfter: Int)
        case bucketEmpty(limit: Int, reset: Duration)
        case error(status: Int)
        case hang
        case close
    }

    /// The decision and the latency added before it is carried out.
    func decide() -> (Decision, Duration) {
        state.withLockedValue { s in (decide(&s), s.latency) }
    }

    private func decide(_ s: inout State) -> Decision {
        s.requests += 1
        s.completionCounter += 1
        let id = "chatcmpl-fl\(port)x\(s.completionCounter)"
        let (shape, tokenDelay) = (s.shape, s.tokenDelay)
        // Each answer draws from its own stream of the seed: its jitter does not depend on the others'.
        let seed = s.seed &+ UInt64(truncatingIfNeeded: s.completionCounter) &* 0x9E37_79B9_7F4A_7C15
        func completion(_ delay: Duration) -> Decision {
            .completion(id: id, tokenDelay: tokenDelay, delay: delay, shape: shape, seed: seed)
        }
        switch s.behavior {
        case .healthy:
            return completion(.zero)
        case .always429(let retryAfter):
            return .rateLimit(retryAfter: retryAfter)
        case .rateLimited(let rate, let burst):
            let now = ContinuousClock.now
            s.bucketTokens = min(Double(burst), s.bucketTokens + (now - s.bucketUpdated).seconds * rate)
            s.bucketUpdated = now
            if s.bucketTokens >= 1 {
                s.bucketTokens -= 1
                return completion(.zero)
            }
            return .bucketEmpty(limit: Int(rate * 60), reset: .seconds((1 - s.bucketTokens) / max(rate, 0.001)))
        case .serverErrors(let status, let share):
            return Double.random(in: 0..<1) < share ? .error(status: status) : completion(.zero)
        case .slow(let delay, let jitter):
            let ms = delay + (jitter > 0 ? Int.random(in: 0...jitter) : 0)
            return completion(.milliseconds(ms))
        case .hang:
            return .hang
        case .down:
            return .close
        }
    }
}

extension Duration {
    fileprivate var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }
}

extension Duration {
    /// As a NIO `TimeAmount`, saturating: a delay set from outside must not trap here.
    var timeAmount: TimeAmount {
        let (s, atto) = components
        let (scaled, overflow) = s.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return .nanoseconds(s < 0 ? .min : .max) }
        let (total, overflow2) = scaled.addingReportingOverflow(atto / 1_000_000_000)
        return .nanoseconds(overflow2 ? (s < 0 ? .min : .max) : total)
    }
}

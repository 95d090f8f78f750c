import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// The in-process gateway: an HTTP/1.1 server on SwiftNIO whose requests are proxied
/// to upstreams from a keep-alive pool on the same event loop as the client.
public final class GatewayServer: Sendable {
    /// Every connection keeps its receive buffer between reads: NIO's default starts it at
    /// 2 KiB, which two connections an open stream (client, upstream) hold the whole stream
    /// long. Starting at 512 bytes (it still grows to 64 KiB for reads that fill it) saves
    /// 3 KiB an open stream; requests, answers and token events mostly fit.
    static let recvAllocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536)

    public let runtime: GatewayRuntime
    private let group: MultiThreadedEventLoopGroup
    private let channel: Channel
    private let pools: [NIOLoopBound<UpstreamPool>]
    /// `stop` ran (a second call must not submit work to loops that are shut down).
    private let stopped = NIOLockedValueBox(false)
    /// Where the gateway listens.
    public let address: SocketAddress

    /// The port it listens on.
    public var port: Int { address.port ?? 0 }

    private init(runtime: GatewayRuntime, group: MultiThreadedEventLoopGroup, channel: Channel, pools: [NIOLoopBound<UpstreamPool>]) {
        self.runtime = runtime
        self.group = group
        self.channel = channel
        self.pools = pools
        self.address = channel.localAddress!
    }

    /// Starts listening on `host:port` (port 0 picks a free one).
    public static func start(runtime: GatewayRuntime, host: String, port: Int) async throws -> GatewayServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, runtime.options.threads))
        let tlsContext = try NIOSSLContext(configuration: .makeClientConfiguration())
        var pools: [ObjectIdentifier: NIOLoopBound<UpstreamPool>] = [:]
        for loop in group.makeIterator() {
            pools[ObjectIdentifier(loop)] = try await loop.submit {
                let pool = UpstreamPool(eventLoop: loop, tlsContext: tlsContext, accessLog: runtime.accessLog, options: runtime.options)
                pool.clients.start()
                return NIOLoopBound(pool, eventLoop: loop)
            }.get()
        }
        let loopPools = pools
        do {
            let channel = try await ServerBootstrap(group: group)
                // As many as the kernel allows (somaxconn): thousands of clients may connect at once.
                .serverChannelOption(.backlog, value: 4096)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                // Out of descriptors (EMFILE, ENFILE) accept fails at once, again and again:
                // pause accepting a little instead of spinning the loop.
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(AcceptPause())
                    }
                }
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                .childChannelOption(.recvAllocator, value: Self.recvAllocator)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        // Past --max-connections: closed at once; those served go on as before.
                        guard runtime.admitConnection() else {
                            try channel.pipeline.syncOperations.addHandler(RefuseConnection())
                            return
                        }
                        let pool = loopPools[ObjectIdentifier(channel.eventLoop)]!.value
                        // One handler parses requests and writes responses: no HTTP codec
                        // handlers between it and the socket.
                        try channel.pipeline.syncOperations.addHandler(ProxyHandler(runtime: runtime, pool: pool))
                    }
                }
                .bind(host: host, port: port)
                .get()
            return GatewayServer(runtime: runtime, group: group, channel: channel, pools: Array(loopPools.values))
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Stops listening, lets requests in flight finish (up to `options.drainTimeout`),
    /// closes every connection, writes the last log lines, then ends the event loops.
    public func stop() async {
        guard stopped.withLockedValue({ was in defer { was = true }; return !was }) else { return }
        try? await channel.close()
        let open = await eachLoop { $0.clients.drain(); return $0.clients.count }
        if open > 0 {
            let clock = ContinuousClock()
            let end = clock.now + runtime.options.drainTimeout
            while clock.now < end, await eachLoop({ $0.clients.count }) > 0 {
                try? await Task.sleep(for: .milliseconds(20))
            }
            // Past the drain timeout: what is left is cut (and logged as such).
            _ = await eachLoop { $0.clients.closeAll(); return 0 }
            let settle = clock.now + .seconds(1)
            while clock.now < settle, await eachLoop({ $0.clients.count }) > 0 {
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
        // Nothing may be scheduled on a loop once it shuts down: stop the tickers, and
        // let each loop run what its closing connections queued (log lines included).
        _ = await eachLoop { $0.clients.stop(); $0.flusher.writeLog(); return 0 }
        _ = await eachLoop { _ in 0 }
        try? await group.shutdownGracefully()
        // The last requests' spans go out too (bounded: a collector that is down costs its timeout).
        runtime.traceExporter?.shutdown()
    }

    /// Runs `body` on each loop with its pool; the sum of what it returns.
    private func eachLoop(_ body: @escaping @Sendable (UpstreamPool) -> Int) async -> Int {
        var total = 0
        for pool in pools {
            total += (try? await pool.eventLoop.submit { body(pool.value) }.get()) ?? 0
        }
        return total
    }
}

/// Pauses accepting for a while when accept fails for want of descriptors or memory.
///
/// NIO's `AcceptBackoffHandler` delays the next `read()`, but when accept fails on the
/// first try of a readable event NIO still has a read pending and keeps the listener
/// registered, so epoll reports it readable again at once and the loop spins (seen: 100 %
/// of a core with `ulimit -n 80` and 200 clients). Turning `autoRead` off unregisters the
/// listener; after the pause it is turned on again and one read asked for.
final class AcceptPause: ChannelInboundHandler {
    typealias InboundIn = Channel
    typealias InboundOut = Channel

    static let pause = TimeAmount.milliseconds(100)
    private var paused = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let io = error as? IOError, [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(io.errnoCode) else {
            context.fireErrorCaught(error)
            return
        }
        guard !paused else { return }
        paused = true
        try? context.channel.syncOptions?.setOption(.autoRead, value: false)
        context.eventLoop.assumeIsolated().scheduleTask(in: Self.pause) { [self] in
            paused = false
            guard context.channel.isActive else { return }
            try? context.channel.syncOptions?.setOption(.autoRead, value: true)
            context.read()
        }
    }
}

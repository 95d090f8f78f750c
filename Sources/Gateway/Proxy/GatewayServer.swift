import NIOCore
import NIOPosix
import NIOSSL

/// The in-process gateway: an HTTP/1.1 server on SwiftNIO whose requests are proxied
/// to upstreams from a keep-alive pool on the same event loop as the client.
public final class GatewayServer: Sendable {
    public let runtime: GatewayRuntime
    private let group: MultiThreadedEventLoopGroup
    private let channel: Channel
    /// Where the gateway listens.
    public let address: SocketAddress

    /// The port it listens on.
    public var port: Int { address.port ?? 0 }

    private init(runtime: GatewayRuntime, group: MultiThreadedEventLoopGroup, channel: Channel) {
        self.runtime = runtime
        self.group = group
        self.channel = channel
        self.address = channel.localAddress!
    }

    /// Starts listening on `host:port` (port 0 picks a free one).
    public static func start(runtime: GatewayRuntime, host: String, port: Int) async throws -> GatewayServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, runtime.options.threads))
        let tlsContext = try NIOSSLContext(configuration: .makeClientConfiguration())
        var pools: [ObjectIdentifier: NIOLoopBound<UpstreamPool>] = [:]
        for loop in group.makeIterator() {
            pools[ObjectIdentifier(loop)] = try await loop.submit {
                NIOLoopBound(UpstreamPool(eventLoop: loop, tlsContext: tlsContext, accessLog: runtime.accessLog), eventLoop: loop)
            }.get()
        }
        let loopPools = pools
        do {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pool = loopPools[ObjectIdentifier(channel.eventLoop)]!.value
                        // One handler parses requests and writes responses: no HTTP codec
                        // handlers between it and the socket.
                        try channel.pipeline.syncOperations.addHandler(ProxyHandler(runtime: runtime, pool: pool))
                    }
                }
                .bind(host: host, port: port)
                .get()
            return GatewayServer(runtime: runtime, group: group, channel: channel)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Stops listening and closes every connection.
    public func stop() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

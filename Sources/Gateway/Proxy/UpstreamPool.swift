import NIOCore
import NIOPosix
import NIOSSL
import Wire

/// What an upstream connection is for: where it connects and how.
struct UpstreamKey: Hashable {
    var address: UpstreamAddress
    /// The TLS server name (the declared host), when TLS is used.
    var serverName: String?
}

/// Receives one upstream response, part by part, on the event loop.
protocol UpstreamResponseDelegate: AnyObject {
    func upstreamHead(_ head: MessageHead, on connection: UpstreamConnection)
    func upstreamBody(_ buffer: ByteBuffer, on connection: UpstreamConnection)
    func upstreamEnd(on connection: UpstreamConnection)
    func upstreamFailed(_ error: Error, on connection: UpstreamConnection)
    /// The upstream channel's read burst ended: time to flush what was passed on.
    func upstreamReadComplete(on connection: UpstreamConnection)
}

/// The upstream connection closed or failed before the response was complete.
struct UpstreamClosed: Error, CustomStringConvertible {
    var description: String { "upstream closed the connection" }
}

/// The upstream's bytes are not an HTTP response.
struct UpstreamMalformed: Error, CustomStringConvertible {
    var detail: String
    var description: String { "malformed HTTP response from upstream: \(detail)" }
}

/// One keep-alive HTTP/1.1 connection to an upstream. Lives on one event loop.
final class UpstreamConnection {
    let channel: Channel
    let key: UpstreamKey
    /// The exchange reading the current response; nil while idle in the pool. Held
    /// strongly (a weak reference makes every retain of the exchange take the slow path)
    /// and cleared at every response end, failure, release and discard.
    var delegate: UpstreamResponseDelegate?
    /// How many requests this connection has carried.
    var requests = 0
    /// False once the upstream said `connection: close` or spoke HTTP/1.0.
    var reusable = true
    var closed = false
    /// The request in flight was HEAD: its response has no body whatever it says.
    var expectsNoBody = false

    init(channel: Channel, key: UpstreamKey) {
        self.channel = channel
        self.key = key
    }
}

/// Parses the upstream channel's responses and hands their parts to the connection's delegate.
final class UpstreamResponseHandler: ChannelInboundHandler, MessageParserDelegate {
    typealias InboundIn = ByteBuffer

    /// Set once connected; cleared when the channel closes, which ends the cycle
    /// connection -> channel -> this handler -> connection.
    var connection: UpstreamConnection?
    var pool: UpstreamPool?
    private let parser = MessageParser(kind: .response)
    /// The message being parsed is a 1xx interim response: not passed on.
    private var interim = false

    init() {
        parser.delegate = self
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        while buffer.readableBytes > 0 {
            do {
                try parser.feed(&buffer)
            } catch {
                fail(UpstreamMalformed(detail: "\(error)"), context: context)
                return
            }
        }
    }

    func parsedHead(_ parser: MessageParser) -> Bool {
        // Framing and status as strict as for clients: an upstream's head that another
        // parser could read otherwise is not passed on (502, counted as broken).
        if let failure = parser.withHead({ HeadCheck.response(&$0) }) {
            parser.stop(failure)
            return true
        }
        let head = parser.head
        if head.status >= 100 && head.status < 200 && head.status != 101 {
            interim = true
            return true
        }
        guard let connection else { return true }
        connection.delegate?.upstreamHead(head, on: connection)
        // A body without a length (a stream) may be open for minutes: its headers, passed
        // on, are not kept for the next response meanwhile.
        if head.contentLength == nil { parser.releaseHeaderStorage() }
        return !connection.expectsNoBody
    }

    func parsedBody(_ parser: MessageParser, _ part: ByteBuffer) {
        guard !interim, let connection else { return }
        connection.delegate?.upstreamBody(part, on: connection)
    }

    func parsedEnd(_ parser: MessageParser) {
        if interim {
            interim = false
            return
        }
        guard let connection else { return }
        if !parser.head.keepAlive { connection.reusable = false }
        let delegate = connection.delegate
        connection.delegate = nil
        delegate?.upstreamEnd(on: connection)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard let connection else { return }
        connection.delegate?.upstreamReadComplete(on: connection)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A body that runs to the close ends here.
        _ = parser.feedEOF()
        guard let connection else { return }
        self.connection = nil
        connection.closed = true
        pool?.remove(connection)
        let delegate = connection.delegate
        connection.delegate = nil
        delegate?.upstreamFailed(UpstreamClosed(), on: connection)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(error, context: context)
    }

    private func fail(_ error: Error, context: ChannelHandlerContext) {
        if let connection, let delegate = connection.delegate {
            connection.delegate = nil
            connection.reusable = false
            delegate.upstreamFailed(error, on: connection)
        }
        context.close(promise: nil)
    }
}

/// Keep-alive upstream connections of one event loop, by upstream. Used only on that loop,
/// so a request's client channel and its upstream channel never hop threads.
final class UpstreamPool {
    let eventLoop: EventLoop
    private let tlsContext: NIOSSLContext?
    /// Releases this loop's completed responses and their log lines.
    let flusher: LoopFlusher
    /// The request timeouts of this loop's exchanges.
    let deadlines: RequestDeadlines
    /// This loop's client connections: their timeouts and the drain.
    let clients: ClientConnections
    /// Span and trace ids of this loop's exchanges (when tracing is on): fast, seeded once.
    var traceRandom = SeededRandom(seed: UInt64.random(in: UInt64.min...UInt64.max))
    /// Where this loop's exchanges encode their spans for the exporter, reused.
    let traceScratch = ProtoBytes()
    /// Idle connections of one upstream. A class, so a lookup hands out the list itself and
    /// it is changed in place (a dictionary's in-place access costs an allocation each time).
    private final class IdleList {
        var connections: [UpstreamConnection] = []
    }
    private var idle: [UpstreamKey: IdleList] = [:]

    private func idleList(_ key: UpstreamKey) -> IdleList {
        if let list = idle[key] { return list }
        let list = IdleList()
        idle[key] = list
        return list
    }
    static let maxIdlePerUpstream = 256
    static let connectTimeout = TimeAmount.seconds(5)

    init(eventLoop: EventLoop, tlsContext: NIOSSLContext?, accessLog: AccessLogWriter?, options: GatewayOptions = GatewayOptions()) {
        self.eventLoop = eventLoop
        self.tlsContext = tlsContext
        self.flusher = LoopFlusher(eventLoop: eventLoop, accessLog: accessLog)
        self.deadlines = RequestDeadlines(eventLoop: eventLoop)
        self.clients = ClientConnections(eventLoop: eventLoop, options: options)
    }

    /// An idle connection to `key`, if the pool has one that is still open. Reused
    /// connections come with `requests > 0`.
    func idleConnection(_ key: UpstreamKey) -> UpstreamConnection? {
        eventLoop.preconditionInEventLoop()
        // Mutated in place (a copy taken out and put back would reallocate every time).
        guard let list = idle[key] else { return nil }
        while let connection = list.connections.popLast() {
            if connection.channel.isActive && !connection.closed { return connection }
        }
        return nil
    }

    /// Always a new connection.
    func connect(_ key: UpstreamKey) -> EventLoopFuture<UpstreamConnection> {
        let tlsContext = key.serverName != nil ? self.tlsContext : nil
        let serverName = key.serverName
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(Self.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.recvAllocator, value: GatewayServer.recvAllocator)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tlsContext {
                        try sync.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: serverName))
                    }
                    try sync.addHandler(UpstreamResponseHandler())
                }
            }
        // An address given as an IP (every stand-in, and most lab upstreams) is connected to
        // as it is: `connect(host:port:)` would put each connect through getaddrinfo on a
        // queue (one a loop, in turn) and Happy Eyeballs, which is most of a cold start's
        // cost when a thousand streams open at once. Names are resolved as before.
        let connecting: EventLoopFuture<Channel>
        if (0...65535).contains(key.address.port), let address = try? SocketAddress(ipAddress: key.address.host, port: key.address.port) {
            connecting = bootstrap.connect(to: address)
        } else {
            connecting = bootstrap.connect(host: key.address.host, port: key.address.port)
        }
        return connecting.assumeIsolated().flatMapThrowing { channel in
            let connection = UpstreamConnection(channel: channel, key: key)
            let handler = try channel.pipeline.syncOperations.handler(type: UpstreamResponseHandler.self)
            handler.connection = connection
            handler.pool = self
            return connection
        }.nonisolated()
    }

    /// Gives a connection back after a complete response; closes it when it cannot be reused.
    func release(_ connection: UpstreamConnection) {
        eventLoop.preconditionInEventLoop()
        connection.delegate = nil
        guard connection.reusable, !connection.closed, connection.channel.isActive else {
            discard(connection)
            return
        }
        let list = idleList(connection.key)
        guard list.connections.count < Self.maxIdlePerUpstream else {
            discard(connection)
            return
        }
        list.connections.append(connection)
    }

    /// Closes a connection that is in an unknown state (timeout, client gone).
    func discard(_ connection: UpstreamConnection) {
        connection.delegate = nil
        connection.reusable = false
        remove(connection)
        if !connection.closed {
            connection.closed = true
            connection.channel.close(promise: nil)
        }
    }

    func remove(_ connection: UpstreamConnection) {
        guard let list = idle[connection.key], let i = list.connections.firstIndex(where: { $0 === connection }) else { return }
        list.connections.remove(at: i)
    }
}

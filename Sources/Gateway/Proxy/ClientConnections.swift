import NIOCore

/// The client connections of one event loop: their timeouts (head, body, keep-alive idle)
/// watched by one coarse ticker instead of a timer per request, and the drain on shutdown.
///
/// A connection's deadline is `now + timeout + tick`, where `now` is the ticker's last
/// reading: no clock is read on the data path, and a deadline never fires early (at most
/// two ticks late; a tick is a quarter of the shortest timeout, at most a second).
final class ClientConnections {
    private let eventLoop: EventLoop
    private var handlers: [ProxyHandler] = []
    /// The ticker's last reading of the clock, in uptime nanoseconds.
    private(set) var now: UInt64
    let tick: UInt64
    let headerTimeout: UInt64
    let bodyTimeout: UInt64
    let idleTimeout: UInt64
    private var ticker: Scheduled<Void>?
    private var stopped = false
    /// Shutting down: no new requests are read; connections close when their answer is out.
    private(set) var draining = false

    init(eventLoop: EventLoop, options: GatewayOptions) {
        self.eventLoop = eventLoop
        // Clamped to about 31 years, so `now + timeout + tick` cannot overflow.
        let most: UInt64 = 1_000_000_000_000_000_000
        headerTimeout = min(options.clientHeaderTimeout.clampedNanoseconds, most)
        bodyTimeout = min(options.clientBodyTimeout.clampedNanoseconds, most)
        idleTimeout = min(options.idleTimeout.clampedNanoseconds, most)
        let shortest = min(headerTimeout, bodyTimeout, idleTimeout)
        tick = min(max(shortest / 4, 5_000_000), 1_000_000_000)
        now = NIODeadline.now().uptimeNanoseconds
        handlers.reserveCapacity(256)
    }

    var count: Int { handlers.count }

    /// Starts the ticker (on the loop).
    func start() {
        guard !stopped else { return }
        ticker = eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(tick))) { [self] in
            sweep()
            start()
        }
    }

    /// A deadline `timeout` from now, never early.
    @inline(__always)
    func deadline(after timeout: UInt64) -> UInt64 {
        now &+ timeout &+ tick
    }

    func add(_ handler: ProxyHandler) {
        handler.slot = handlers.count
        handlers.append(handler)
    }

    func remove(_ handler: ProxyHandler) {
        let slot = handler.slot
        guard slot >= 0, slot < handlers.count, handlers[slot] === handler else { return }
        handler.slot = -1
        let last = handlers.removeLast()
        if slot < handlers.count {
            handlers[slot] = last
            last.slot = slot
        }
    }

    private func sweep() {
        now = NIODeadline.now().uptimeNanoseconds
        var expired: [ProxyHandler] = []
        for handler in handlers where handler.deadline != 0 && handler.deadline <= now {
            expired.append(handler)
        }
        for handler in expired { handler.deadlinePassed() }
    }

    /// Stops reading new requests: idle connections close now, busy ones after their answer.
    func drain() {
        draining = true
        for handler in handlers { handler.drain() }
    }

    /// Closes every connection (the drain timeout passed): unanswered requests are logged 499.
    func closeAll() {
        for handler in handlers { handler.forceClose() }
    }

    /// Ends the ticker before the loop shuts down.
    func stop() {
        stopped = true
        ticker?.cancel()
        ticker = nil
    }
}

extension Duration {
    /// Whole nanoseconds, 0 for negative durations and at most about 292 years (no trap).
    var clampedNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        guard seconds < 9_000_000_000 else { return 9_000_000_000 * 1_000_000_000 }
        return UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }
}

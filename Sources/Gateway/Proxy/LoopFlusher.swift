import NIOCore

/// Per event loop: the responses completed in one pass of the loop, released together
/// once the pass's I/O is handled. Their access-log lines go out in one `write(2)`, and
/// only then are the clients' last bytes flushed, so a client never sees its response end
/// before its log line is written.
final class LoopFlusher {
    private let eventLoop: EventLoop
    private let accessLog: AccessLogWriter?
    private var lines: [UInt8] = []
    private var waiting: [ChannelHandlerContext] = []
    /// The list being flushed; swapped with `waiting` so neither is reallocated.
    private var flushing: [ChannelHandlerContext] = []
    /// Connections to close once this pass's flush is done (a drain).
    private var closing: [ChannelHandlerContext] = []
    private var scheduled = false

    init(eventLoop: EventLoop, accessLog: AccessLogWriter?) {
        self.eventLoop = eventLoop
        self.accessLog = accessLog
        lines.reserveCapacity(16 * 1024)
        waiting.reserveCapacity(64)
    }

    /// A response is complete: its last bytes are written to `context` but not flushed.
    /// Its log line and the flush happen at the end of this pass of the loop.
    func completed(line: [UInt8]?, context: ChannelHandlerContext) {
        add(line)
        waiting.append(context)
        guard !scheduled else { return }
        scheduled = true
        eventLoop.assumeIsolated().execute { [self] in release() }
    }

    /// Closes `context` after this pass's flush, so a completed answer goes out first.
    func close(afterRelease context: ChannelHandlerContext) {
        closing.append(context)
        guard !scheduled else { return }
        scheduled = true
        eventLoop.assumeIsolated().execute { [self] in release() }
    }

    /// Adds a log line to this pass's batch.
    func add(_ line: [UInt8]?) {
        guard let line, accessLog != nil else { return }
        lines.append(contentsOf: line)
        lines.append(UInt8(ascii: "\n"))
    }

    /// Writes the batched log lines now (before a client is closed, say).
    func writeLog() {
        guard !lines.isEmpty, let accessLog else { return }
        accessLog.write(lines: lines)
        lines.removeAll(keepingCapacity: true)
    }

    private func release() {
        scheduled = false
        writeLog()
        swap(&waiting, &flushing)
        for context in flushing { context.flush() }
        flushing.removeAll(keepingCapacity: true)
        if !closing.isEmpty {
            let contexts = closing
            closing.removeAll()
            for context in contexts { context.close(promise: nil) }
        }
    }
}

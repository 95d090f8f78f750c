import NIOCore

/// The request timeouts of one event loop, watched by one timer set for the earliest of
/// them, instead of a task scheduled and cancelled for every request. Requests finish
/// long before their timeouts, so that timer rarely fires.
final class RequestDeadlines {
    private struct Entry {
        var deadline: NIODeadline
        unowned(unsafe) var exchange: Exchange
    }

    private let eventLoop: EventLoop
    private var entries: [Entry] = []
    /// When the timer fires next, if it is set.
    private var timerAt: NIODeadline?

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
        entries.reserveCapacity(256)
    }

    /// Watches `exchange` until `remove`; calls its `timerFired()` at `deadline`.
    func add(_ exchange: Exchange, deadline: NIODeadline) {
        exchange.deadlineSlot = entries.count
        entries.append(Entry(deadline: deadline, exchange: exchange))
        if timerAt.map({ deadline < $0 }) ?? true { setTimer(at: deadline) }
    }

    func remove(_ exchange: Exchange) {
        let slot = exchange.deadlineSlot
        guard slot >= 0, slot < entries.count, entries[slot].exchange === exchange else { return }
        exchange.deadlineSlot = -1
        let last = entries.removeLast()
        if slot < entries.count {
            entries[slot] = last
            last.exchange.deadlineSlot = slot
        }
    }

    private func setTimer(at deadline: NIODeadline) {
        timerAt = deadline
        eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in fire(scheduledFor: deadline) }
    }

    private func fire(scheduledFor deadline: NIODeadline) {
        // A later add may have set an earlier timer; this one is then stale.
        guard timerAt == deadline else { return }
        timerAt = nil
        let now = NIODeadline.now()
        var expired: [Exchange] = []
        var next: NIODeadline?
        for entry in entries {
            if entry.deadline <= now {
                expired.append(entry.exchange)
            } else if next.map({ entry.deadline < $0 }) ?? true {
                next = entry.deadline
            }
        }
        for exchange in expired {
            remove(exchange)
            exchange.timerFired()
        }
        if let next, timerAt.map({ next < $0 }) ?? true { setTimer(at: next) }
    }
}

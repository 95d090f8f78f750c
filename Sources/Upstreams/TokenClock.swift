import NIOCore

/// Streams waiting for their next write, by the time it is due (nanoseconds on the event
/// loop's clock): a binary min-heap of (due, slot). Pure, so which streams a tick writes is
/// testable without a loop or a socket.
struct DueQueue {
    struct Entry: Equatable {
        var due: Int64
        var slot: Int32
    }

    private(set) var heap: [Entry] = []

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }
    /// The earliest due time, nil when nothing waits.
    var earliest: Int64? { heap.first?.due }

    mutating func insert(slot: Int32, due: Int64) {
        heap.append(Entry(due: due, slot: slot))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if heap[parent].due <= heap[i].due { break }
            heap.swapAt(parent, i)
            i = parent
        }
    }

    /// Removes every entry due at or before `now` and appends its slot to `out`, earliest
    /// first. Entries due after `now` stay: a tick never writes a token before it is due.
    mutating func popDue(now: Int64, into out: inout [Int32]) {
        while let top = heap.first, top.due <= now {
            out.append(top.slot)
            let last = heap.removeLast()
            guard !heap.isEmpty else { break }
            heap[0] = last
            siftDown(0)
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        let n = heap.count
        while true {
            let l = 2 * i + 1
            if l >= n { return }
            let r = l + 1
            let c = r < n && heap[r].due < heap[l].due ? r : l
            if heap[i].due <= heap[c].due { return }
            heap.swapAt(i, c)
            i = c
        }
    }

    /// When the tick that serves an entry due at `due` fires: the first multiple of
    /// `resolution` at or after it (so entries due within one slot share a tick), never
    /// before `due`. Saturates at `Int64.max`.
    static func tick(for due: Int64, resolution: Int64) -> Int64 {
        guard resolution > 1 else { return due }
        let r = due % resolution
        if r == 0 { return due }
        // Round towards +infinity for negative times too (`%` keeps the dividend's sign).
        let up = r > 0 ? resolution - r : -r
        let (t, overflow) = due.addingReportingOverflow(up)
        return overflow ? .max : t
    }
}

/// A stream the clock drives: writes everything due by `now` (flushing once) and says when
/// its next write is due, or nil when it is done (or its connection is gone).
protocol ClockedStream: AnyObject {
    func fire(now: Int64) -> Int64?
}

/// One timer for all the streams of one event loop: instead of a task scheduled per token
/// per stream, one task is armed for the earliest due stream, rounded up to `resolution`,
/// and each time it fires it writes every stream whose next token is due by then. A token
/// waits at most `resolution` (1 ms) longer than its due time plus the loop's own lateness,
/// and is never written before it is due (the tick reads the clock and writes only what is
/// due by that reading).
final class TokenClock {
    static let resolution: Int64 = 1_000_000

    let loop: EventLoop
    private var queue = DueQueue()
    private var slots: [ClockedStream?] = []
    private var freeSlots: [Int32] = []
    private var dueScratch: [Int32] = []
    private var scheduled: Scheduled<Void>?
    private var scheduledAt: Int64 = .max

    init(loop: EventLoop) {
        self.loop = loop
    }

    /// The loop's clock, in nanoseconds.
    var now: Int64 { Int64(truncatingIfNeeded: loop.now.uptimeNanoseconds) }

    /// Adds a stream whose first write is due at `due`.
    func add(_ stream: ClockedStream, due: Int64) {
        let slot: Int32
        if let s = freeSlots.popLast() {
            slot = s
            slots[Int(s)] = stream
        } else {
            slot = Int32(truncatingIfNeeded: slots.count)  // checked: one slot per open stream, far below Int32.max
            slots.append(stream)
        }
        queue.insert(slot: slot, due: due)
        arm()
    }

    /// Arms the one task for the earliest due stream (re-arms it when that moved earlier).
    private func arm() {
        guard let earliest = queue.earliest else { return }
        let at = DueQueue.tick(for: earliest, resolution: Self.resolution)
        if scheduled != nil && scheduledAt <= at { return }
        scheduled?.cancel()
        scheduledAt = at
        let deadline = NIODeadline.uptimeNanoseconds(UInt64(max(0, at)))  // checked: max(0, _) is never negative
        scheduled = loop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in self.tick() }
    }

    private func tick() {
        scheduled = nil
        scheduledAt = .max
        let now = self.now
        dueScratch.removeAll(keepingCapacity: true)
        queue.popDue(now: now, into: &dueScratch)
        for slot in dueScratch {
            let i = Int(slot)
            guard let stream = slots[i] else { continue }
            if let next = stream.fire(now: now) {
                queue.insert(slot: slot, due: next)
            } else {
                slots[i] = nil
                freeSlots.append(slot)
            }
        }
        arm()
    }
}

/// HTTP/1.1 chunked framing written by hand: `SIZE-IN-HEX\r\n`, the bytes, `\r\n`, the
/// same bytes NIOHTTP1's `HTTPResponseEncoder` writes for one body part (lowercase hex, no
/// extensions); an empty part is not framed (it would end the body).
enum RawChunk {
    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Writes the size line of a chunk of `length` bytes (`length` > 0).
    static func writeSizeLine(_ length: Int, into buffer: inout ByteBuffer) {
        var digits = 1
        var rest = UInt(bitPattern: length) >> 4
        while rest != 0 {
            digits += 1
            rest >>= 4
        }
        let value = UInt(bitPattern: length)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: digits + 2) { out in
            for k in 0..<digits {
                out[k] = hexDigits[Int((value >> UInt(4 * (digits - 1 - k))) & 0xF)]
            }
            out[digits] = 0x0D
            out[digits + 1] = 0x0A
            return digits + 2
        }
    }

    static func writeChunkEnd(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt16(0x0D0A))
    }

    /// `payload` framed as one chunk.
    static func frame(_ payload: ByteBuffer, into buffer: inout ByteBuffer) {
        guard payload.readableBytes > 0 else { return }
        writeSizeLine(payload.readableBytes, into: &buffer)
        var payload = payload
        buffer.writeBuffer(&payload)
        writeChunkEnd(into: &buffer)
    }
}

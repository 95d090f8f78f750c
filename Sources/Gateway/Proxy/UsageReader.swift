#if canImport(Glibc)
import Glibc
#endif
import Wire

/// Reads `model` and `usage` from a whole chat completion for the access log, with the
/// driver's scanner (Wire), so the log and the driver's records read a response the same
/// way. A stream's are read as its events pass (`StreamUsageTap`, below).
enum UsageReader {
    struct Usage {
        var model: String?
        var inputTokens: Int?
        var outputTokens: Int?
    }

    static func read(_ bytes: some Collection<UInt8>) -> Usage {
        var usage = Usage()
        if bytes.withContiguousStorageIfAvailable({ merge($0, into: &usage) }) == nil {
            Array(bytes).withUnsafeBufferPointer { merge($0, into: &usage) }
        }
        return usage
    }

    /// `text/event-stream`, with or without parameters (compared without Foundation).
    static func isEventStream(_ contentType: String) -> Bool {
        contentType.utf8.starts(with: "text/event-stream".utf8)
    }

    /// What one JSON object says; a later object's facts replace an earlier one's.
    static func merge(_ bytes: UnsafeBufferPointer<UInt8>, into usage: inout Usage) {
        var scanner = ModelUsageScanner(bytes: bytes)
        guard let found = try? scanner.modelAndUsage() else { return }
        if let model = found.model { usage.model = model }
        if let prompt = found.usage?.prompt { usage.inputTokens = prompt }
        if let completion = found.usage?.completion { usage.outputTokens = completion }
    }
}

/// Reads a stream's `model` and `usage` as its events pass, so an open stream holds no
/// copy of its body (a copy of its last events was about 1 KiB in every open stream).
///
/// Each whole event's `data:` lines are read as they come: the first that names a model
/// gives the model, and any that mentions `"usage"` is read in full (the usage chunk comes
/// last, with the model again). Only an event cut between two reads is held, until its end
/// comes; one longer than `limit` (4 KiB) is skipped to its end. `[DONE]` is not JSON and is passed over.
struct StreamUsageTap {
    private(set) var usage = UsageReader.Usage()
    /// The start of an event whose end has not come yet, or (while skipping) the last bytes
    /// of a skipped one, where a blank line may have begun. Empty (no storage) between events.
    private var carried: [UInt8] = []
    private var skipping = false
    /// The longest event held while its end has not come.
    static let limit = Exchange.streamTail

    /// Bytes held between reads (0 when the upstream's reads end on event boundaries).
    var heldBytes: Int { carried.count }

    mutating func feed(_ part: UnsafeRawBufferPointer) {
        let bytes = part.bindMemory(to: UInt8.self)
        if carried.isEmpty {
            take(bytes)
        } else {
            var joined = carried
            carried = []
            joined.append(contentsOf: bytes)
            joined.withUnsafeBufferPointer { take($0) }
        }
    }

    private mutating func take(_ bytes: UnsafeBufferPointer<UInt8>) {
        var from = 0
        if skipping {
            guard let end = Self.firstEventEnd(bytes) else {
                carried = Array(bytes.suffix(2))
                return
            }
            skipping = false
            from = end
        }
        let rest = UnsafeBufferPointer(rebasing: bytes[from...])
        let end = Self.lastEventEnd(rest)
        if end > 0 { read(events: UnsafeBufferPointer(rebasing: rest[..<end])) }
        let left = rest.count - end
        if left > Self.limit {
            skipping = true
            carried = Array(rest.suffix(2))
        } else if left > 0 {
            carried = Array(rest[end...])
        }
    }

    private mutating func read(events: UnsafeBufferPointer<UInt8>) {
        SSE.forEachData(in: events) { payload in
            guard !(payload.count == 6 && payload.elementsEqual("[DONE]".utf8)) else { return }
            if usage.model == nil || Self.mentionsUsage(payload) {
                UsageReader.merge(payload, into: &usage)
            }
        }
    }

    /// The payload has `"usage"` in it (a quick test before a full read).
    static func mentionsUsage(_ payload: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = payload.baseAddress else { return false }
        let n = payload.count
        // Jumps from one `u` to the next with memchr (a token's event has few): a quote
        // before it and `sage"` after it.
        var i = 1
        while i + 6 <= n, let found = memchr(base + i, 0x75, n - i - 5) {
            let u = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
            if payload[u - 1] == 0x22 && payload[u + 1] == 0x73 && payload[u + 2] == 0x61 && payload[u + 3] == 0x67
                && payload[u + 4] == 0x65 && payload[u + 5] == 0x22 {
                return true
            }
            i = u + 1
        }
        return false
    }

    /// The index just past the first blank line (`\n\n` or `\n\r\n`), if any.
    static func firstEventEnd(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        var i = 1
        while i < bytes.count {
            if bytes[i] == 0x0A && (bytes[i - 1] == 0x0A || (i >= 2 && bytes[i - 1] == 0x0D && bytes[i - 2] == 0x0A)) {
                return i + 1
            }
            i += 1
        }
        return nil
    }

    /// The index just past the last blank line, or 0 when there is none.
    static func lastEventEnd(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var i = bytes.count - 1
        while i >= 1 {
            if bytes[i] == 0x0A && (bytes[i - 1] == 0x0A || (i >= 2 && bytes[i - 1] == 0x0D && bytes[i - 2] == 0x0A)) {
                return i + 1
            }
            i -= 1
        }
        return 0
    }
}

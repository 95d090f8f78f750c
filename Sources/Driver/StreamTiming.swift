/// Finds the content-bearing events of a server-sent event stream, byte by byte, without
/// parsing JSON: a line that starts with `data:` and holds `"content":` followed by a
/// non-empty string. So the OpenAI role-only first chunk (`"content":""`), the final
/// `finish_reason` chunk (`"delta":{}`), a usage chunk and `data: [DONE]` do not count.
///
/// The state survives between calls, so an event split across libcurl's write callbacks is
/// still found once. Lines end at LF or CR. One data line counts at most once.
public struct SSEContentScanner: Sendable, Equatable {
    /// 0...4: bytes of `data:` matched at the line's start; 5: inside a data line; 6: skip to the line's end.
    var line: UInt8 = 0
    /// 0...10: bytes of `"content":` matched; 10: after the colon (spaces allowed); 11: after the opening quote.
    var match: UInt8 = 0

    public init() {}

    static let inData: UInt8 = 5
    static let skip: UInt8 = 6
    static let afterColon: UInt8 = 10
    static let afterQuote: UInt8 = 11

    @inline(__always) static func prefixByte(_ i: UInt8) -> UInt8 {
        // "data:"
        switch i {
        case 0: return 0x64
        case 1: return 0x61
        case 2: return 0x74
        case 3: return 0x61
        default: return 0x3A
        }
    }

    @inline(__always) static func needleByte(_ i: UInt8) -> UInt8 {
        // "content":
        switch i {
        case 0, 8: return 0x22
        case 1: return 0x63
        case 2: return 0x6F
        case 3: return 0x6E
        case 4: return 0x74
        case 5: return 0x65
        case 6: return 0x6E
        case 7: return 0x74
        default: return 0x3A
        }
    }

    /// Scans the next bytes of the body; returns how many content-bearing events ended their match in them.
    public mutating func scan(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int {
        var found = 0
        var line = self.line, match = self.match
        var i = 0
        while i < n {
            let c = p[i]
            i += 1
            if c == 0x0A || c == 0x0D {
                line = 0
                match = 0
                continue
            }
            if line == Self.skip {
                // The rest of the line: straight to its end.
                while i < n && p[i] != 0x0A && p[i] != 0x0D { i += 1 }
                continue
            }
            if line < Self.inData {
                line = c == Self.prefixByte(line) ? line + 1 : Self.skip
                continue
            }
            // Inside a data line.
            switch match {
            case Self.afterColon:
                if c == 0x20 || c == 0x09 { continue }
                match = c == 0x22 ? Self.afterQuote : 0
            case Self.afterQuote:
                if c == 0x22 {
                    match = 0 // "content":"" (the role-only first chunk)
                } else {
                    found += 1
                    match = 0
                    line = Self.skip
                }
            case 0:
                // Nothing matched: on to the next quote (the needle's first byte) or line end.
                if c == 0x22 {
                    match = 1
                } else {
                    while i < n, p[i] != 0x22, p[i] != 0x0A, p[i] != 0x0D { i += 1 }
                }
            default:
                // The needle's first byte (a quote) appears nowhere else in it, so a mismatch restarts simply.
                if c == Self.needleByte(match) {
                    match += 1
                } else {
                    match = c == 0x22 ? 1 : 0
                }
            }
        }
        self.line = line
        self.match = match
        return found
    }
}

/// Inter-token latency of one streamed response: the gaps between its content-bearing events.
public struct InterTokenLatency: Sendable, Equatable {
    /// Content-bearing events seen (gaps are one fewer).
    public var events: Int
    /// Mean gap, nil with fewer than two events.
    public var mean: Nanos?
    /// Largest gap, nil with fewer than two events.
    public var max: Nanos?

    public init(events: Int, mean: Nanos? = nil, max: Nanos? = nil) {
        self.events = events
        self.mean = mean
        self.max = max
    }
}

/// Arrival times of content events on one transfer, folded as they come (constant memory).
struct StreamClock {
    var scanner = SSEContentScanner()
    var events = 0
    var first: Nanos = 0
    var last: Nanos = 0
    var gapSum: Nanos = 0
    var gapMax: Nanos = 0

    /// `k` content events arrived together at `at` (absolute monotonic); all but the first had a gap of 0.
    @inline(__always) mutating func arrived(_ k: Int, at: Nanos) {
        if events == 0 {
            first = at
        } else {
            let gap = at >= last ? at - last : 0
            gapSum &+= gap
            if gap > gapMax { gapMax = gap }
        }
        last = at
        events += k
    }

    /// Time to first token from `sent` (absolute monotonic), nil without content events.
    func ttft(since sent: Nanos) -> Nanos? {
        events > 0 ? (first >= sent ? first - sent : 0) : nil
    }

    var interToken: InterTokenLatency? {
        guard events > 0 else { return nil }
        guard events > 1 else { return InterTokenLatency(events: events) }
        return InterTokenLatency(events: events, mean: gapSum / Nanos(events - 1), max: gapMax)
    }
}

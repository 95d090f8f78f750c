import Wire

/// A byte-level reader for the lines our own `RequestRecord.jsonLine` writes: the fields in
/// its order, strings without escapes or non-ASCII bytes, numbers in its format. It builds no
/// JSON tree, so `report` reads a million records in a fraction of the time. Anything else
/// (another writer's order, an escape, a value out of range) returns nil and goes to the
/// general reader, which decides and words the error: both readers give the same record for
/// every line the fast one accepts (tested, and fuzzed by `recordLine`).
enum RecordLineReader {
    /// Millisecond values up to this many ns are read exactly the way the general reader's
    /// `Double` arithmetic reads them (its rounding error stays under half a ns below 2^50).
    static let exactNanos: UInt64 = 1 << 50

    static func read(_ b: UnsafeBufferPointer<UInt8>) -> RequestRecord? {
        var c = Cursor(b: b)
        guard c.lit("{\"seq\":"), let seq = c.int(), seq <= UInt64(Int.max) else { return nil }
        guard c.lit(",\"intended_at\":\""), let wallRange = c.stringBody(), c.lit(",\"intended_offset_ns\":"),
              let intended = c.int(), intended <= RequestRecord.maxNanos else { return nil }
        guard let wall = WallTime.parse(bytes: UnsafeBufferPointer(rebasing: b[wallRange])) else { return nil }
        guard c.lit(",\"sent_at\":") else { return nil }
        if !c.null() { guard c.lit("\""), c.stringBody() != nil else { return nil } }
        guard c.lit(",\"sent_offset_ns\":") else { return nil }
        var sent: Nanos?
        if !c.null() {
            guard let n = c.int(), n <= RequestRecord.maxNanos else { return nil }
            sent = n
        }
        let late: Bool
        guard c.lit(",\"late\":") else { return nil }
        if c.lit("true") { late = true } else if c.lit("false") { late = false } else { return nil }
        guard c.lit(",\"method\":\""), let method = c.string(), c.lit(",\"url\":\""), let url = c.string() else { return nil }
        guard c.lit(",\"model\":"), let model = c.optionalString() else { return nil }
        guard c.lit(",\"status\":") else { return nil }
        var status: Int?
        if !c.null() {
            guard let n = c.int(), n <= 999 else { return nil }
            status = Int(n)
        }
        guard c.lit(",\"latency_ms\":"), let latency = c.ms(), c.lit(",\"latency_corrected_ms\":"), let corrected = c.ms(),
              c.lit(",\"ttfb_ms\":"), let ttfb = c.ms(), c.lit(",\"ttft_ms\":"), let ttft = c.ms(), c.lit(",\"itl_ms\":") else { return nil }
        var interToken: InterTokenLatency?
        if !c.null() {
            guard c.lit("{\"events\":"), let events = c.int(), events <= UInt64(RequestRecord.maxCount),
                  c.lit(",\"mean\":"), let mean = c.ms(), c.lit(",\"max\":"), let max = c.ms(), c.lit("}") else { return nil }
            interToken = InterTokenLatency(events: Int(events), mean: mean, max: max)
        }
        guard c.lit(",\"bytes_in\":"), let bytesIn = c.int(), bytesIn <= UInt64(Int.max),
              c.lit(",\"bytes_out\":"), let bytesOut = c.int(), bytesOut <= UInt64(Int.max) else { return nil }
        guard c.lit(",\"error\":"), let error = c.optionalString(), c.lit(",\"provider\":"), let provider = c.optionalString() else { return nil }
        guard c.lit(",\"attempts\":") else { return nil }
        var attempts: [Attempt]?
        if !c.null() {
            guard c.lit("[") else { return nil }
            var list: [Attempt] = []
            if !c.lit("]") {
                repeat {
                    guard list.count < FailoverAttempts.maxEntries, c.lit("{\"provider\":\""), let p = c.string(), c.lit(",\"status\":") else { return nil }
                    if c.null() {
                        guard c.lit(",\"failure\":\""), let word = c.string(), c.lit("}") else { return nil }
                        // The word as the header has it, read by the header's reader (as the general path does).
                        let parsed = FailoverAttempts.parse("x=" + word).entries
                        guard parsed.count == 1 else { return nil }
                        list.append(Attempt(provider: p, outcome: parsed[0].outcome))
                    } else {
                        guard let n = c.int(), (100...999).contains(n), c.lit("}") else { return nil }
                        list.append(Attempt(provider: p, status: Int(n)))
                    }
                } while c.lit(",")
                guard c.lit("]") else { return nil }
            }
            attempts = list
        }
        guard c.lit(",\"tokens\":") else { return nil }
        var tokens: TokenUsage?
        if !c.null() {
            guard c.lit("{\"prompt\":"), let prompt = c.count(), c.lit(",\"completion\":"), let completion = c.count(),
                  c.lit(",\"total\":"), let total = c.count(), c.lit("}") else { return nil }
            tokens = TokenUsage(prompt: prompt, completion: completion, total: total)
        }
        guard c.lit("}"), c.i == b.count else { return nil }
        // As the general reader: the run's start is intended_at minus the offset cut to microseconds.
        let (start, overflow) = wall.subtractingReportingOverflow(Int64(intended / 1000) * 1000)
        guard !overflow else { return nil }
        return RequestRecord(
            seq: seq, runStartWall: wall == 0 ? 0 : start, intended: intended, sent: sent, late: late,
            method: method, url: url, model: model, status: status,
            latency: latency, correctedLatency: corrected, ttfb: ttfb, ttft: ttft, interToken: interToken,
            bytesIn: Int(bytesIn), bytesOut: Int(bytesOut), error: error, provider: provider, attempts: attempts, tokens: tokens)
    }

    struct Cursor {
        let b: UnsafeBufferPointer<UInt8>
        var i = 0

        /// Takes `text` if the bytes at the cursor are exactly it.
        mutating func lit(_ text: StaticString) -> Bool {
            let n = text.utf8CodeUnitCount
            guard b.count - i >= n else { return false }
            let p = text.utf8Start
            for k in 0..<n where b[i + k] != p[k] { return false }
            i += n
            return true
        }

        mutating func null() -> Bool { lit("null") }

        /// A whole number as JSON writes it (no sign, no leading zero, no fraction or exponent),
        /// with overflow checked.
        mutating func int() -> UInt64? {
            let start = i
            var v: UInt64 = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(UInt64(b[i] - 0x30))
                guard !o1, !o2 else { return nil }
                v = s
                i += 1
            }
            guard i > start, !(b[start] == 0x30 && i - start > 1) else { return nil }
            // A fraction or exponent is the general reader's business; so is a number past 2^53,
            // which it reads as a Double (and so rounds).
            if i < b.count, b[i] == 0x2E || b[i] == 0x65 || b[i] == 0x45 { return nil }
            return v <= 1 << 53 ? v : nil
        }

        /// A token count: null or 0...maxCount. nil: not in this shape; .some(nil): null.
        mutating func count() -> Int?? {
            if null() { return .some(nil) }
            guard let n = int(), n <= UInt64(RequestRecord.maxCount) else { return nil }
            return .some(Int(n))
        }

        /// `*_ms` as `ms()` in RequestRecord writes it: digits, a point, exactly six digits; or null.
        mutating func ms() -> Nanos?? {
            if null() { return .some(nil) }
            let start = i
            var whole: UInt64 = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39, i - start < 12 {
                whole = whole * 10 + UInt64(b[i] - 0x30)
                i += 1
            }
            guard i > start, !(b[start] == 0x30 && i - start > 1), i < b.count, b[i] == 0x2E, b.count - i > 6 else { return nil }
            i += 1
            var frac: UInt64 = 0
            for _ in 0..<6 {
                guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
                frac = frac * 10 + UInt64(b[i] - 0x30)
                i += 1
            }
            if i < b.count, b[i] >= 0x30 && b[i] <= 0x39 || b[i] == 0x65 || b[i] == 0x45 { return nil }
            // At most 12 whole digits: no overflow here.
            let ns = whole * 1_000_000 + frac
            return ns <= RecordLineReader.exactNanos ? .some(ns) : nil
        }

        /// The bytes of a string whose opening quote is taken, up to its closing quote (taken too):
        /// printable ASCII with no escapes only.
        mutating func stringBody() -> Range<Int>? {
            let start = i
            while i < b.count {
                let ch = b[i]
                if ch == 0x22 { i += 1; return start..<(i - 1) }
                guard ch >= 0x20, ch < 0x7F, ch != 0x5C else { return nil }
                i += 1
            }
            return nil
        }

        mutating func string() -> String? {
            guard let r = stringBody() else { return nil }
            return String(decoding: UnsafeBufferPointer(rebasing: b[r]), as: UTF8.self)
        }

        /// null or a string. nil: not in this shape; .some(nil): null.
        mutating func optionalString() -> String?? {
            if null() { return .some(nil) }
            guard lit("\""), let s = string() else { return nil }
            return .some(s)
        }
    }
}

extension RequestRecord {
    /// One line of a records file: our own writer's lines by the fast reader, anything else by
    /// the general JSON reader.
    public init(fastOrGeneral line: String) throws(DecodeError) {
        var line = line
        if let record = line.withUTF8({ RecordLineReader.read($0) }) {
            self = record
        } else {
            try self.init(line: line)
        }
    }

    /// The fast reader alone: nil when the line is not in our writer's exact shape.
    public static func fastRead(_ bytes: [UInt8]) -> RequestRecord? {
        bytes.withUnsafeBufferPointer { RecordLineReader.read($0) }
    }
}

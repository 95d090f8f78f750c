/// `x-failover-attempts`: the gateway's list of upstream tries of one request, in order,
/// e.g. `http-429-provider=429,openai-provider=timeout,openai-provider=200`.
/// The one writer (gateway response header, access log) and the one reader (driver records,
/// reports, dashboard) of that text, so the two cannot drift apart.
public enum FailoverAttempts {
    public static let headerName = "x-failover-attempts"
    /// Entries kept from one value; a hostile or broken header cannot make a reader hold more.
    public static let maxEntries = 256
    /// Longest provider name kept; longer entries are skipped.
    public static let maxNameLength = 256
    /// Longest outcome word kept.
    public static let maxWordLength = 32

    /// What one try gave: a status, or a word when there was no (whole) response.
    public enum Outcome: Hashable, Sendable, CustomStringConvertible {
        /// The upstream answered with this status (three digits, 100...999).
        case status(Int)
        /// The route's request timeout passed before the upstream answered.
        case timeout
        /// No connection, or the connection closed before any response.
        case connect
        /// The response broke off after it started.
        case broken
        /// The gateway's fallback for a try that has neither a status nor a known failure.
        case error
        /// A word this reader does not know (a newer gateway): still a failed try.
        case other(String)

        /// The outcome the text after `=` stands for, for a word (not a number).
        public init(word: String) {
            switch word {
            case "timeout": self = .timeout
            case "connect": self = .connect
            case "broken": self = .broken
            case "error": self = .error
            default: self = .other(word)
            }
        }

        /// The gateway's words, all of them: a test writes and reads back each.
        public static let knownWords: [Outcome] = [.timeout, .connect, .broken, .error]

        public var status: Int? { if case .status(let s) = self { return s } else { return nil } }

        /// The word, when the outcome is not a status.
        public var word: String? {
            switch self {
            case .status: return nil
            case .timeout: return "timeout"
            case .connect: return "connect"
            case .broken: return "broken"
            case .error: return "error"
            case .other(let w): return w
            }
        }

        /// A 2xx status.
        public var isSuccess: Bool { status.map { (200..<300).contains($0) } ?? false }

        public var description: String { status.map(String.init) ?? word ?? "error" }
    }

    public struct Entry: Hashable, Sendable, CustomStringConvertible {
        public var provider: String
        public var outcome: Outcome
        public init(provider: String, outcome: Outcome) {
            self.provider = provider
            self.outcome = outcome
        }
        public init(provider: String, status: Int) { self.init(provider: provider, outcome: .status(status)) }
        public var status: Int? { outcome.status }
        /// The word when there was no status (`timeout`, `connect`, `broken`, ...).
        public var failure: String? { outcome.word }
        public var description: String { "\(provider)=\(outcome)" }
    }

    /// A value read: its entries, and how many parts were not entries.
    public struct Parsed: Hashable, Sendable {
        public var entries: [Entry] = []
        /// Parts that were not `name=outcome` (empty, no `=`, bad number, control bytes, too long).
        public var skipped = 0
        /// Entries past `maxEntries`, not kept.
        public var dropped = 0
    }

    // MARK: Reader

    /// Reads a header value; never traps, whatever the bytes. Entries that do not parse are
    /// skipped and counted; at most `maxEntries` are kept.
    public static func parse(_ value: Substring) -> Parsed {
        var copy = value
        return copy.withUTF8 { parse(bytes: $0) }
    }

    public static func parse(_ value: String) -> Parsed { parse(Substring(value)) }

    /// The fuzz entry: any bytes.
    public static func parse(bytes: [UInt8]) -> Parsed { bytes.withUnsafeBufferPointer { parse(bytes: $0) } }

    public static func parse(bytes: UnsafeBufferPointer<UInt8>) -> Parsed {
        var out = Parsed()
        var start = 0
        let n = bytes.count
        while start <= n {
            var end = start
            while end < n, bytes[end] != UInt8(ascii: ",") { end += 1 }
            let part = UnsafeBufferPointer(rebasing: bytes[start..<end])
            // An empty part (`a=1,,b=2`, a trailing comma) is list syntax (RFC 9110 5.6.1), not an error.
            if !isBlank(part) {
                if out.entries.count >= maxEntries {
                    out.dropped += 1
                } else if let entry = entry(part) {
                    out.entries.append(entry)
                } else {
                    out.skipped += 1
                }
            }
            start = end + 1
        }
        return out
    }

    private static func isBlank(_ part: UnsafeBufferPointer<UInt8>) -> Bool {
        part.allSatisfy { $0 == 0x20 || $0 == 0x09 }
    }

    /// One `name=outcome` part, optional whitespace around either side.
    private static func entry(_ part: UnsafeBufferPointer<UInt8>) -> Entry? {
        guard let eq = part.firstIndex(of: UInt8(ascii: "=")) else { return nil }
        let name = trim(UnsafeBufferPointer(rebasing: part[..<eq]))
        let value = trim(UnsafeBufferPointer(rebasing: part[(eq + 1)...]))
        guard !name.isEmpty, name.count <= maxNameLength, !value.isEmpty, value.count <= maxWordLength else { return nil }
        // A name is visible characters (UTF-8 allowed); never a control byte, `=` or `,`.
        for b in name where b < 0x21 || b == 0x7F || b == UInt8(ascii: "=") { return nil }
        let outcome: Outcome
        if value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            // status-code = 3DIGIT (RFC 9110 15); anything else is not a status.
            guard value.count == 3, value[0] != 0x30 else { return nil }
            outcome = .status(Int(value[0] - 0x30) * 100 + Int(value[1] - 0x30) * 10 + Int(value[2] - 0x30))
        } else {
            // A word: a lowercase letter, then lowercase letters, digits, `-` or `_`.
            guard value[0] >= 0x61 && value[0] <= 0x7A else { return nil }
            for b in value where !((b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F) { return nil }
            outcome = Outcome(word: String(decoding: value, as: UTF8.self))
        }
        // Invalid UTF-8 is repaired (U+FFFD, 3 bytes each): the name is measured after
        // that, so what is kept is within the limit when written and read again.
        let provider = String(decoding: name, as: UTF8.self)
        guard provider.utf8.count <= maxNameLength else { return nil }
        return Entry(provider: provider, outcome: outcome)
    }

    private static func trim(_ b: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        var lo = 0, hi = b.count
        while lo < hi, b[lo] == 0x20 || b[lo] == 0x09 { lo += 1 }
        while hi > lo, b[hi - 1] == 0x20 || b[hi - 1] == 0x09 || b[hi - 1] == 0x0D || b[hi - 1] == 0x0A { hi -= 1 }
        return UnsafeBufferPointer(rebasing: b[lo..<hi])
    }

    // MARK: Writer

    /// Appends one entry (preceded by `,` unless it is the first) to any byte sink: the
    /// gateway writes straight into its response buffer. A provider name byte that would
    /// break the list or the header (`,` `=`, control bytes, space) is written as `_`.
    @inlinable
    public static func write<Sink: WireSink>(provider: String, outcome: Outcome, first: Bool, into out: inout Sink) {
        if !first { out.appendWireByte(UInt8(ascii: ",")) }
        var name = provider
        name.withUTF8 { bytes in
            if bytes.allSatisfy(isSafeNameByte) {
                out.appendWireBytes(UnsafeRawBufferPointer(bytes))
            } else {
                for b in bytes { out.appendWireByte(isSafeNameByte(b) ? b : UInt8(ascii: "_")) }
            }
        }
        if name.isEmpty { out.appendWireByte(UInt8(ascii: "?")) }
        out.appendWireByte(UInt8(ascii: "="))
        if let status = outcome.status, (100...999).contains(status) {
            out.appendWireByte(UInt8(ascii: "0") &+ UInt8(status / 100))
            out.appendWireByte(UInt8(ascii: "0") &+ UInt8(status / 10 % 10))
            out.appendWireByte(UInt8(ascii: "0") &+ UInt8(status % 10))
        } else {
            // A status out of range cannot be read back as one: the try failed either way.
            var word = outcome.status == nil ? (outcome.word ?? "error") : "error"
            word.withUTF8 { bytes in
                if bytes.allSatisfy(isWordByte), let f = bytes.first, f >= 0x61 && f <= 0x7A, bytes.count <= maxWordLength {
                    out.appendWireBytes(UnsafeRawBufferPointer(bytes))
                } else {
                    for b in "error".utf8 { out.appendWireByte(b) }
                }
            }
        }
    }

    @inlinable
    static func isSafeNameByte(_ b: UInt8) -> Bool { b > 0x20 && b != 0x7F && b != UInt8(ascii: ",") && b != UInt8(ascii: "=") }

    @inlinable
    static func isWordByte(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F }

    /// The whole value for `entries`.
    public static func value(_ entries: [Entry]) -> String {
        var out: [UInt8] = []
        for (i, e) in entries.enumerated() { write(provider: e.provider, outcome: e.outcome, first: i == 0, into: &out) }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Where Wire's writers put bytes: the gateway's `ByteBuffer`, a `[UInt8]`.
public protocol WireSink {
    mutating func appendWireByte(_ byte: UInt8)
    mutating func appendWireBytes(_ bytes: UnsafeRawBufferPointer)
}

extension Array: WireSink where Element == UInt8 {
    @inlinable public mutating func appendWireByte(_ byte: UInt8) { append(byte) }
    @inlinable public mutating func appendWireBytes(_ bytes: UnsafeRawBufferPointer) { append(contentsOf: bytes) }
}

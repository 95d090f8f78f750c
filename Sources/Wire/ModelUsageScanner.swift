#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads the top-level `model` and `usage` of a response body in place, without building a
/// tree: the engine does this for every response (and every `data:` event of a stream), so
/// it must not allocate more than the model's string. Everything else is skipped without being decoded.
///
/// This is not a JSON parser and must not become one; records, replay files and plan files
/// are read with Foundation (`JSONValue.parse`) and Yams. Its limits:
/// - only the top level of one object is looked at (`model` as a string, `usage` as an object
///   whose `prompt_tokens`, `completion_tokens`, `total_tokens` are numbers); nested or
///   other-typed `model`/`usage` members are skipped, a repeated key keeps the last value;
/// - skipped values are checked only for balanced brackets and closed strings, so some invalid
///   JSON (`[1:2]`, `tru`, a bad escape in a skipped string) passes unnoticed; what is read is
///   decoded properly (string escapes, surrogate pairs, numbers);
/// - a body that stops early throws `JSONError` with the byte offset, and the caller drops the
///   facts of that body; nothing after the closing `}` is looked at.
///
/// In Wire so the gateway's access log (`UsageReader`) can read usage the same way.
public struct ModelUsageScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    public init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    /// Where the scanner stopped (after the object, or where it threw).
    public var offset: Int { index }

    func error(_ message: String) -> JSONError { JSONError(message: message, offset: index) }

    mutating func parseNumber() throws(JSONError) -> Double {
        let start = index
        // Small integers (token counts, statuses) without a String round trip.
        var negative = false
        var i = index
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { negative = true; i += 1 }
        var value: Int64 = 0
        var digits = 0
        while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39, digits < 15 {
            value = value * 10 + Int64(bytes[i] - 0x30)
            digits += 1
            i += 1
        }
        if digits > 0, i == bytes.count || !ModelUsageScanner.isNumberByte(bytes[i]) {
            index = i
            return Double(negative ? -value : value)
        }
        while index < bytes.count, ModelUsageScanner.isNumberByte(bytes[index]) { index += 1 }
        guard index > start else { throw error("unexpected character '\(Character(Unicode.Scalar(bytes[index])))'") }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(text) else { index = start; throw error("invalid number \(text)") }
        return value
    }

    /// A token count: a plain integer read directly, otherwise the number `parseNumber` reads
    /// when it is whole (and fits), else nil.
    @inline(__always) mutating func parseCount() throws(JSONError) -> Int? {
        var negative = false
        var i = index
        let end = bytes.count
        if i < end, bytes[i] == UInt8(ascii: "-") { negative = true; i += 1 }
        var value = 0
        var digits = 0
        while i < end, bytes[i] >= 0x30, bytes[i] <= 0x39, digits < 15 {
            value = value * 10 + Int(bytes[i] - 0x30)
            digits += 1
            i += 1
        }
        if digits > 0, i == end || !ModelUsageScanner.isNumberByte(bytes[i]) {
            index = i
            return negative ? -value : value
        }
        let n = try parseNumber()
        return n.isFinite && n.rounded() == n && abs(n) < 9e18 ? Int(n) : nil
    }

    @inline(__always) static func isNumberByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x2B || b == 0x2E || b == 0x65 || b == 0x45
    }

    mutating func parseString() throws(JSONError) -> String {
        index += 1 // opening quote
        let start = index
        // Fast path: no escapes.
        var i = index
        let end = bytes.count
        while i < end {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                index = i + 1
                return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { index = i; throw error("control character in a string") }
            i += 1
        }
        index = i
        var out = [UInt8](UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                index += 1
                return String(decoding: out, as: UTF8.self)
            }
            if b < 0x20 { throw error("control character in a string") }
            if b != UInt8(ascii: "\\") { out.append(b); index += 1; continue }
            index += 1
            guard index < bytes.count else { break }
            let e = bytes[index]
            index += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800..<0xDC00).contains(code), index + 1 < bytes.count,
                   bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") {
                    index += 2
                    let low = try hex4()
                    if (0xDC00..<0xE000).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                }
                let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(scalar).utf8))
            default:
                throw error("invalid escape in a string")
            }
        }
        throw error("unterminated string")
    }

    mutating func hex4() throws(JSONError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[index]
            let d: UInt32
            switch b {
            case 0x30...0x39: d = UInt32(b - 0x30)
            case 0x41...0x46: d = UInt32(b - 0x41 + 10)
            case 0x61...0x66: d = UInt32(b - 0x61 + 10)
            default: throw error("invalid \\u escape")
            }
            v = v << 4 | d
            index += 1
        }
        return v
    }
}

// The skipping below works on a base pointer and a local index (not on `self.index`), so the
// index stays in a register while bytes are read; `self.index` is written back where the
// members above (parseString, parseCount) take over, and errors carry their own offset.
extension ModelUsageScanner {
    typealias Bytes = UnsafePointer<UInt8>

    /// The first index at or after `i` that is not JSON whitespace (or `end`).
    @inline(__always) static func skipWhitespace(_ p: Bytes, _ i: Int, _ end: Int) -> Int {
        var i = i
        while i < end {
            let b = p[i]
            // Every whitespace byte is <= 0x20; most bytes are not, so one comparison sends them back.
            guard b <= 0x20, b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D else { return i }
            i += 1
        }
        return i
    }

    /// High bit set in the lowest byte of `word` equal to `b` (higher bytes may be false positives,
    /// so only the lowest set bit is meaningful); zero when no byte equals `b`.
    @inline(__always) static func bytesEqual(_ word: UInt64, _ b: UInt8) -> UInt64 {
        let x = word ^ (0x0101_0101_0101_0101 &* UInt64(b))
        return (x &- 0x0101_0101_0101_0101) & ~x & 0x8080_8080_8080_8080
    }

    /// Skips the string whose opening quote is at `i` (a backslash skips the byte after it);
    /// returns the index after its closing quote.
    @inline(__always) static func skipString(_ p: Bytes, _ i: Int, _ end: Int) throws(JSONError) -> Int {
        var i = i + 1
        // Eight bytes at a time while eight remain: find the first quote or backslash in a word.
        while i &+ 8 <= end {
            let word = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))
            let hits = bytesEqual(word, UInt8(ascii: "\"")) | bytesEqual(word, UInt8(ascii: "\\"))
            if hits == 0 { i &+= 8; continue }
            i &+= hits.trailingZeroBitCount >> 3
            if p[i] == UInt8(ascii: "\"") { return i + 1 }
            i &+= 2 // a backslash and the byte it escapes
        }
        while i < end {
            let b = p[i]
            if b == UInt8(ascii: "\\") { i += 2; continue }
            i += 1
            if b == UInt8(ascii: "\"") { return i }
        }
        throw JSONError(message: "unterminated string", offset: i)
    }

    /// Skips a number, `true`, `false` or `null` (or any run up to a delimiter) starting at `i`.
    @inline(__always) static func skipScalar(_ p: Bytes, _ i: Int, _ end: Int) throws(JSONError) -> Int {
        var j = i
        while j < end {
            let b = p[j]
            if b == UInt8(ascii: ",") || b == UInt8(ascii: "}") || b == UInt8(ascii: "]") || b == 0x20 || b == 0x0A
                || b == 0x0D || b == 0x09 { break }
            j += 1
        }
        if j == i { throw JSONError(message: "expected a value", offset: i) }
        return j
    }

    /// Skips one value starting at `i` without building it; returns the index after it.
    @inline(__always) static func skipValue(_ p: Bytes, _ i: Int, _ end: Int, depth: Int) throws(JSONError) -> Int {
        guard depth < 200, i < end else { throw JSONError(message: "unexpected end of JSON", offset: i) }
        switch p[i] {
        case UInt8(ascii: "\""): return try skipString(p, i, end)
        case UInt8(ascii: "{"), UInt8(ascii: "["): return try skipContainer(p, i, end, depth: depth)
        default: return try skipScalar(p, i, end)
        }
    }

    /// Skips the object or array whose opening bracket is at `i`; values and keys alike are
    /// elements, separated by `:` or `,`.
    @inline(never) static func skipContainer(_ p: Bytes, _ i: Int, _ end: Int, depth: Int) throws(JSONError) -> Int {
        let close = p[i] == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
        var i = skipWhitespace(p, i + 1, end)
        if i < end, p[i] == close { return i + 1 }
        while true {
            i = skipWhitespace(p, i, end)
            i = try skipValue(p, i, end, depth: depth + 1)
            i = skipWhitespace(p, i, end)
            guard i < end else { throw JSONError(message: "unexpected end of JSON", offset: i) }
            let b = p[i]
            i += 1
            if b == close { return i }
            if b == UInt8(ascii: ":") || b == UInt8(ascii: ",") { continue }
            throw JSONError(message: "unexpected character in a container", offset: i)
        }
    }

    /// Whether the raw bytes of a key (escapes not decoded) are exactly `word`.
    @inline(__always) static func key(_ p: Bytes, _ start: Int, _ length: Int, is word: StaticString) -> Bool {
        length == word.utf8CodeUnitCount && memcmp(p + start, word.utf8Start, length) == 0
    }

    /// Reads only the top-level `model` (a string) and `usage` (an object) of an object,
    /// skipping everything else without building it: the engine does this for every response.
    public mutating func modelAndUsage() throws(JSONError) -> (model: String?, usage: TokenUsage?) {
        let end = bytes.count
        guard let p = bytes.baseAddress else { throw error("not an object") }
        var i = Self.skipWhitespace(p, index, end)
        guard i < end, p[i] == UInt8(ascii: "{") else { index = i; throw error("not an object") }
        i = Self.skipWhitespace(p, i + 1, end)
        if i < end, p[i] == UInt8(ascii: "}") { index = i; return (nil, nil) }
        var model: String?
        var usage: TokenUsage?
        while true {
            i = Self.skipWhitespace(p, i, end)
            guard i < end, p[i] == UInt8(ascii: "\"") else { index = i; throw error("expected a string key") }
            let keyStart = i + 1
            i = try Self.skipString(p, i, end)
            let keyLength = i - 1 - keyStart
            let isModel = Self.key(p, keyStart, keyLength, is: "model")
            let isUsage = Self.key(p, keyStart, keyLength, is: "usage")
            i = Self.skipWhitespace(p, i, end)
            guard i < end, p[i] == UInt8(ascii: ":") else { index = i; throw error("expected ':'") }
            i = Self.skipWhitespace(p, i + 1, end)
            if isModel, i < end, p[i] == UInt8(ascii: "\"") {
                index = i
                model = try parseString()
                i = index
            } else if isUsage, i < end, p[i] == UInt8(ascii: "{") {
                index = i
                usage = try usageCounts()
                i = index
            } else {
                i = try Self.skipValue(p, i, end, depth: 0)
            }
            i = Self.skipWhitespace(p, i, end)
            guard i < end else { index = i; throw error("unexpected end of JSON") }
            let b = p[i]
            i += 1
            index = i
            if b == UInt8(ascii: "}") { return (model, usage) }
            guard b == UInt8(ascii: ",") else { throw error("expected ',' or '}'") }
        }
    }

    /// The three OpenAI usage counts of the `usage` object at `index`, other keys skipped, nothing allocated.
    mutating func usageCounts() throws(JSONError) -> TokenUsage {
        let end = bytes.count
        let p = bytes.baseAddress! // the caller saw its opening brace
        var usage = TokenUsage()
        var i = Self.skipWhitespace(p, index + 1, end)
        if i < end, p[i] == UInt8(ascii: "}") { index = i + 1; return usage }
        while true {
            i = Self.skipWhitespace(p, i, end)
            guard i < end, p[i] == UInt8(ascii: "\"") else { index = i; throw error("expected a string key") }
            let keyStart = i + 1
            i = try Self.skipString(p, i, end)
            let keyLength = i - 1 - keyStart
            let which = Self.key(p, keyStart, keyLength, is: "prompt_tokens") ? 0
                : Self.key(p, keyStart, keyLength, is: "completion_tokens") ? 1
                : Self.key(p, keyStart, keyLength, is: "total_tokens") ? 2 : -1
            i = Self.skipWhitespace(p, i, end)
            guard i < end, p[i] == UInt8(ascii: ":") else { index = i; throw error("expected ':'") }
            i = Self.skipWhitespace(p, i + 1, end)
            if which >= 0, i < end, p[i] != UInt8(ascii: "\""), p[i] != UInt8(ascii: "{"), p[i] != UInt8(ascii: "["),
               p[i] != UInt8(ascii: "n"), p[i] != UInt8(ascii: "t"), p[i] != UInt8(ascii: "f") {
                index = i
                let v = try parseCount()
                i = index
                switch which {
                case 0: usage.prompt = v
                case 1: usage.completion = v
                default: usage.total = v
                }
            } else {
                i = try Self.skipValue(p, i, end, depth: 1)
            }
            i = Self.skipWhitespace(p, i, end)
            guard i < end else { index = i; throw error("unexpected end of JSON") }
            let b = p[i]
            i += 1
            index = i
            if b == UInt8(ascii: "}") { return usage }
            guard b == UInt8(ascii: ",") else { throw error("expected ',' or '}'") }
        }
    }
}

/// Token counts from a response's `usage`.
public struct TokenUsage: Sendable, Equatable {
    public var prompt: Int?
    public var completion: Int?
    public var total: Int?
    public init(prompt: Int? = nil, completion: Int? = nil, total: Int? = nil) {
        self.prompt = prompt
        self.completion = completion
        self.total = total
    }
}

/// Why a JSON text did not parse (Foundation's reason), or where the response scanner stopped.
public struct JSONError: Error, Equatable, CustomStringConvertible {
    public var message: String
    /// The byte offset where the scanner stopped; nil for Foundation's errors, whose message says where.
    public var offset: Int?
    public init(message: String, offset: Int? = nil) {
        self.message = message
        self.offset = offset
    }
    public var description: String { offset.map { "\(message) at byte \($0 + 1)" } ?? message }
}

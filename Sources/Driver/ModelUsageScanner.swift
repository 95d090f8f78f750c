/// Reads the top-level `model` and `usage` of a response body in place, without building a
/// tree: the engine does this for every response (and every `data:` event of a stream), so
/// it must not allocate more than the model's string. Everything else is skipped byte by byte.
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
struct ModelUsageScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    func error(_ message: String) -> JSONError { JSONError(message: message, offset: index) }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

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

    static func isNumberByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x2B || b == 0x2E || b == 0x65 || b == 0x45
    }

    mutating func parseString() throws(JSONError) -> String {
        index += 1 // opening quote
        let start = index
        // Fast path: no escapes.
        while index < bytes.count {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return s
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw error("control character in a string") }
            index += 1
        }
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

extension ModelUsageScanner {
    /// Skips one value without building it.
    mutating func skipValue(depth: Int = 0) throws(JSONError) {
        guard depth < 200, index < bytes.count else { throw error("unexpected end of JSON") }
        switch bytes[index] {
        case UInt8(ascii: "\""):
            index += 1
            while index < bytes.count {
                let b = bytes[index]
                if b == UInt8(ascii: "\\") { index += 2; continue }
                index += 1
                if b == UInt8(ascii: "\"") { return }
            }
            throw error("unterminated string")
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let close = bytes[index] == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
            index += 1
            skipWhitespace()
            if index < bytes.count, bytes[index] == close { index += 1; return }
            while true {
                skipWhitespace()
                try skipValue(depth: depth + 1)
                skipWhitespace()
                guard index < bytes.count else { throw error("unexpected end of JSON") }
                let b = bytes[index]
                index += 1
                if b == close { return }
                if b == UInt8(ascii: ":") || b == UInt8(ascii: ",") { continue }
                throw error("unexpected character in a container")
            }
        default:
            let start = index
            while index < bytes.count {
                let b = bytes[index]
                if b == UInt8(ascii: ",") || b == UInt8(ascii: "}") || b == UInt8(ascii: "]") || b == 0x20 || b == 0x0A
                    || b == 0x0D || b == 0x09 { break }
                index += 1
            }
            if index == start { throw error("expected a value") }
        }
    }

    /// Whether the string at `index` (a key, with its quotes) is exactly `word`.
    func keyIs(_ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard index + n + 1 < bytes.count, bytes[index + n + 1] == UInt8(ascii: "\"") else { return false }
        let w = word.utf8Start
        for i in 0..<n where bytes[index + 1 + i] != w[i] { return false }
        return true
    }

    /// Reads only the top-level `model` (a string) and `usage` (an object) of an object,
    /// skipping everything else without building it: the engine does this for every response.
    mutating func modelAndUsage() throws(JSONError) -> (model: String?, usage: TokenUsage?) {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { throw error("not an object") }
        index += 1
        var model: String?
        var usage: TokenUsage?
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") { return (nil, nil) }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let isModel = keyIs("model"), isUsage = keyIs("usage")
            try skipValue()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            if isModel, index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                model = try parseString()
            } else if isUsage, index < bytes.count, bytes[index] == UInt8(ascii: "{") {
                usage = try usageCounts()
            } else {
                try skipValue()
            }
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of JSON") }
            let b = bytes[index]
            index += 1
            if b == UInt8(ascii: "}") { return (model, usage) }
            guard b == UInt8(ascii: ",") else { throw error("expected ',' or '}'") }
        }
    }

    /// The three OpenAI usage counts of a `usage` object, other keys skipped, nothing allocated.
    mutating func usageCounts() throws(JSONError) -> TokenUsage {
        index += 1 // {
        var usage = TokenUsage()
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return usage }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let which = keyIs("prompt_tokens") ? 0 : keyIs("completion_tokens") ? 1 : keyIs("total_tokens") ? 2 : -1
            try skipValue()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            if which >= 0, index < bytes.count, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "{"),
               bytes[index] != UInt8(ascii: "["), bytes[index] != UInt8(ascii: "n"), bytes[index] != UInt8(ascii: "t"),
               bytes[index] != UInt8(ascii: "f") {
                let n = try parseNumber()
                let v: Int? = n.isFinite && n.rounded() == n && abs(n) < 9e18 ? Int(n) : nil
                switch which {
                case 0: usage.prompt = v
                case 1: usage.completion = v
                default: usage.total = v
                }
            } else {
                try skipValue(depth: 1)
            }
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of JSON") }
            let b = bytes[index]
            index += 1
            if b == UInt8(ascii: "}") { return usage }
            guard b == UInt8(ascii: ",") else { throw error("expected ',' or '}'") }
        }
    }
}

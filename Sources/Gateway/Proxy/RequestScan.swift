/// The fast path of reading a client's body: one pass that checks the bytes are JSON
/// (RFC 8259, strictly: grammar, escapes, UTF-8) and picks out what the gateway acts on.
///
/// Foundation's JSONDecoder did this at about 1.8 µs per request, the largest single cost
/// left on the data path. This scanner answers only when it is sure: a body it finds
/// wrong, or one with something it does not decide itself (escaped keys, an escaped
/// `model`, `\u` surrogates, deep nesting), returns nil, and the caller asks Foundation,
/// whose answer and error message then stand. So a body is never refused here that
/// Foundation would take; tests compare the two on generated and mutated bodies.
enum RequestScan {
    /// What the gateway reads of a chat completion request, or nil: ask Foundation.
    static func peek(_ bytes: UnsafeBufferPointer<UInt8>) -> Exchange.RequestPeek? {
        var scanner = Scanner(bytes: bytes)
        return scanner.topLevel()
    }

    /// Nesting beyond this is left to Foundation, which has its own limit.
    static let maxDepth = 64

    /// After Foundation took a body the scan left to it: the same strict reading (UTF-8,
    /// escapes with paired surrogates, numbers inside a Double's range, nesting up to 512)
    /// on all of it. Foundation takes invalid UTF-8 and `1e999999`, which upstreams then
    /// refuse or read otherwise. Returns the byte offset where the body stops being
    /// strict JSON, or nil when it is.
    static func strictFailure(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        var scanner = Scanner(bytes: bytes, strict: true)
        scanner.skipSpace()
        guard scanner.value(depth: 1) else { return min(scanner.i, bytes.count) }
        scanner.skipSpace()
        return scanner.i == bytes.count ? nil : scanner.i
    }

    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var i = 0
        /// Validation only: surrogate pairs are read, and nesting may go deeper.
        let strict: Bool
        let maxDepth: Int

        init(bytes: UnsafeBufferPointer<UInt8>, strict: Bool = false) {
            self.bytes = bytes
            self.strict = strict
            self.maxDepth = strict ? 512 : RequestScan.maxDepth
        }

        mutating func topLevel() -> Exchange.RequestPeek? {
            skipSpace()
            var peek = Exchange.RequestPeek()
            peek.modelPlace = .absent
            // A key of ours given twice: which one counts is Foundation's call.
            var seen: UInt8 = 0
            let whole = members(plainKeys: true) { scanner, key in
                let name = scanner.keyName(key)
                if name != .other {
                    guard seen & name.bit == 0 else { return false }
                    seen |= name.bit
                }
                return scanner.topLevelValue(name, into: &peek)
            }
            guard whole else { return nil }
            skipSpace()
            return i == bytes.count ? peek : nil
        }

        /// Reads the value of a top-level member named `name` into `peek`.
        mutating func topLevelValue(_ name: Key, into peek: inout Exchange.RequestPeek) -> Bool {
            let valueStart = i
            switch name {
            case .model:
                peek.hasModel = true
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else {
                    peek.model = nil
                    guard value(depth: 1) else { return false }
                    peek.modelPlace = .at(valueStart..<i)
                    return true
                }
                guard let range = plainString() else { return false }
                peek.model = String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
                peek.modelPlace = .at(valueStart..<i)
            case .stream:
                guard value(depth: 1) else { return false }
                peek.stream = boolean(valueStart..<i)
            case .streamOptions:
                peek.hasStreamOptions = true
                guard i < bytes.count, bytes[i] == UInt8(ascii: "{") else {
                    peek.includeUsage = nil
                    return value(depth: 1)
                }
                guard let usage = streamOptions() else { return false }
                peek.includeUsage = usage
            case .other:
                return value(depth: 1)
            }
            return true
        }

        /// `stream_options`: an object whose `include_usage` is read when it is a boolean.
        /// Returns nil when the scan failed; `.some(nil)` when there is no boolean there.
        mutating func streamOptions() -> Bool?? {
            var usage: Bool?
            var seenUsage = false
            let whole = members(plainKeys: true) { scanner, key in
                let valueStart = scanner.i
                guard scanner.value(depth: 2) else { return false }
                if scanner.bytes[key].elementsEqual("include_usage".utf8) {
                    guard !seenUsage else { return false }
                    seenUsage = true
                    usage = scanner.boolean(valueStart..<scanner.i)
                }
                return true
            }
            return whole ? .some(usage) : nil
        }

        /// Walks the members of the object at `i`: reads each key and the colon, then lets
        /// `member` read the value. `plainKeys`: a key with escapes is not decided here.
        /// False when the object is not valid JSON or `member` says so.
        mutating func members(plainKeys: Bool, _ member: (inout Scanner, Range<Int>) -> Bool) -> Bool {
            guard next(UInt8(ascii: "{")) else { return false }
            skipSpace()
            if next(UInt8(ascii: "}")) { return true }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return false }
                let keyStart = i + 1
                guard string(allowEscapes: !plainKeys) else { return false }
                let key = keyStart..<(i - 1)
                skipSpace()
                guard next(UInt8(ascii: ":")) else { return false }
                skipSpace()
                guard member(&self, key) else { return false }
                skipSpace()
                if next(UInt8(ascii: "}")) { return true }
                guard next(UInt8(ascii: ",")) else { return false }
            }
        }

        enum Key {
            case model, stream, streamOptions, other
            var bit: UInt8 {
                switch self {
                case .model: 1
                case .stream: 2
                case .streamOptions: 4
                case .other: 0
                }
            }
        }

        func keyName(_ range: Range<Int>) -> Key {
            let key = bytes[range]
            switch key.count {
            case 5 where key.elementsEqual("model".utf8): return .model
            case 6 where key.elementsEqual("stream".utf8): return .stream
            case 14 where key.elementsEqual("stream_options".utf8): return .streamOptions
            default: return .other
            }
        }

        func boolean(_ range: Range<Int>) -> Bool? {
            if bytes[range].elementsEqual("true".utf8) { return true }
            if bytes[range].elementsEqual("false".utf8) { return false }
            return nil
        }

        mutating func skipSpace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        }

        mutating func next(_ byte: UInt8) -> Bool {
            guard i < bytes.count, bytes[i] == byte else { return false }
            i += 1
            return true
        }

        /// Any JSON value at nesting `depth`; false when it is not valid or not decided here.
        mutating func value(depth: Int) -> Bool {
            guard i < bytes.count, depth <= maxDepth else { return false }
            switch bytes[i] {
            case UInt8(ascii: "\""):
                return string()
            case UInt8(ascii: "{"):
                return members(plainKeys: false) { scanner, _ in scanner.value(depth: depth + 1) }
            case UInt8(ascii: "["):
                i += 1
                skipSpace()
                if next(UInt8(ascii: "]")) { return true }
                while true {
                    skipSpace()
                    guard value(depth: depth + 1) else { return false }
                    skipSpace()
                    if next(UInt8(ascii: "]")) { return true }
                    guard next(UInt8(ascii: ",")) else { return false }
                }
            case UInt8(ascii: "t"): return literal("true")
            case UInt8(ascii: "f"): return literal("false")
            case UInt8(ascii: "n"): return literal("null")
            default: return number()
            }
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let n = word.utf8CodeUnitCount
            guard bytes.count - i >= n else { return false }
            for k in 0..<n where bytes[i + k] != word.utf8Start[k] { return false }
            i += n
            return true
        }

        /// -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?, decided here only when it is
        /// well inside a Double's range: `1e999999` is valid grammar that Foundation (and
        /// many upstreams) refuse, so a number whose magnitude may be out of range is left
        /// to Foundation's answer.
        mutating func number() -> Bool {
            _ = next(UInt8(ascii: "-"))
            guard i < bytes.count else { return false }
            let integerStart = i
            if bytes[i] == UInt8(ascii: "0") {
                i += 1
            } else {
                guard digits() else { return false }
            }
            let integerDigits = i - integerStart
            if next(UInt8(ascii: ".")) { guard digits() else { return false } }
            var exponent = 0
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1
                var negative = false
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") {
                    negative = bytes[i] == UInt8(ascii: "-")
                    i += 1
                }
                let start = i
                guard digits() else { return false }
                // More than 3 digits (leading zeros aside) is out of range either way.
                var k = start
                while k < i - 1, bytes[k] == UInt8(ascii: "0") { k += 1 }
                guard i - k <= 3 else { return false }
                while k < i { exponent = exponent * 10 + Int(bytes[k] - UInt8(ascii: "0")); k += 1 }
                if negative { exponent = -exponent }
            }
            // |value| < 10^(integerDigits + exponent) <= 1e308 < Double's largest; tiny ones
            // are left to Foundation too.
            return integerDigits + exponent <= 308 && exponent >= -300
        }

        mutating func digits() -> Bool {
            let start = i
            while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") { i += 1 }
            return i > start
        }

        /// A string with no escapes: the range of its content, or nil (not valid, or escaped).
        mutating func plainString() -> Range<Int>? {
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return nil }
            let start = i + 1
            guard string(allowEscapes: false) else { return nil }
            return start..<(i - 1)
        }

        /// A string; false when it is not valid JSON, or holds what is left to Foundation.
        mutating func string(allowEscapes: Bool = true) -> Bool {
            i += 1  // the opening quote
            while i < bytes.count {
                let b = bytes[i]
                switch b {
                case UInt8(ascii: "\""):
                    i += 1
                    return true
                case UInt8(ascii: "\\"):
                    guard allowEscapes, escape() else { return false }
                case 0..<0x20:
                    return false
                case 0x80...:
                    guard utf8Sequence() else { return false }
                default:
                    i += 1
                }
            }
            return false
        }

        /// `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t` or `\uXXXX` (no surrogates: Foundation's call).
        mutating func escape() -> Bool {
            guard i + 1 < bytes.count else { return false }
            switch bytes[i + 1] {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                 UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                i += 2
                return true
            case UInt8(ascii: "u"):
                guard bytes.count - i >= 6 else { return false }
                var code: UInt32 = 0
                for k in 2..<6 {
                    let h = bytes[i + k]
                    let v: UInt8
                    switch h {
                    case UInt8(ascii: "0")...UInt8(ascii: "9"): v = h - UInt8(ascii: "0")
                    case UInt8(ascii: "a")...UInt8(ascii: "f"): v = h - UInt8(ascii: "a") + 10
                    case UInt8(ascii: "A")...UInt8(ascii: "F"): v = h - UInt8(ascii: "A") + 10
                    default: return false
                    }
                    code = code << 4 | UInt32(v)
                }
                guard code < 0xD800 || code > 0xDFFF else {
                    // A high surrogate and its low one (strict only); a lone one is not text.
                    guard strict, code <= 0xDBFF, bytes.count - i >= 12, bytes[i + 6] == UInt8(ascii: "\\"), bytes[i + 7] == UInt8(ascii: "u") else { return false }
                    var low: UInt32 = 0
                    for k in 8..<12 {
                        let h = bytes[i + k]
                        switch h {
                        case UInt8(ascii: "0")...UInt8(ascii: "9"): low = low << 4 | UInt32(h - UInt8(ascii: "0"))
                        case UInt8(ascii: "a")...UInt8(ascii: "f"): low = low << 4 | UInt32(h - UInt8(ascii: "a") + 10)
                        case UInt8(ascii: "A")...UInt8(ascii: "F"): low = low << 4 | UInt32(h - UInt8(ascii: "A") + 10)
                        default: return false
                        }
                    }
                    guard (0xDC00...0xDFFF).contains(low) else { return false }
                    i += 12
                    return true
                }
                i += 6
                return true
            default:
                return false
            }
        }

        /// One well-formed UTF-8 sequence of two to four bytes (RFC 3629).
        mutating func utf8Sequence() -> Bool {
            let b0 = bytes[i]
            let count: Int
            var low: UInt8 = 0x80, high: UInt8 = 0xBF
            switch b0 {
            case 0xC2...0xDF: count = 2
            case 0xE0: count = 3; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: count = 3
            case 0xED: count = 3; high = 0x9F
            case 0xF0: count = 4; low = 0x90
            case 0xF1...0xF3: count = 4
            case 0xF4: count = 4; high = 0x8F
            default: return false
            }
            guard bytes.count - i >= count else { return false }
            guard bytes[i + 1] >= low, bytes[i + 1] <= high else { return false }
            for k in 2..<count where bytes[i + k] < 0x80 || bytes[i + k] > 0xBF { return false }
            i += count
            return true
        }
    }
}

/// Finds where the values of chosen top-level keys sit in a JSON object's bytes, so the
/// gateway can swap `model` or read `usage` without decoding and re-encoding the whole
/// body on every request. Not a parser: it assumes JSON that is already known to be
/// valid (Foundation parsed the request; the response came from the upstream) and only
/// tracks strings and nesting to tell top-level keys from nested ones. On anything it
/// does not expect it gives up (nil), and callers fall back to Foundation.
enum TopLevelJSON {
    /// Where the values of up to two keys are; nil for a key that is not there.
    struct Found {
        var first: Range<Int>?
        var second: Range<Int>?
    }

    /// Byte ranges of the values of `first` and `second` (raw key bytes, no escapes) in the
    /// object `bytes`. Keys are compared in place, so nothing is allocated.
    static func valueRanges(_ bytes: UnsafeBufferPointer<UInt8>, _ first: [UInt8], _ second: [UInt8]? = nil) -> Found? {
        var found = Found()
        var i = skipSpace(bytes, 0)
        guard i < bytes.count, bytes[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        while true {
            i = skipSpace(bytes, i)
            guard i < bytes.count else { return nil }
            if bytes[i] == UInt8(ascii: "}") { return found }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            guard bytes[i] == UInt8(ascii: "\"") else { return nil }
            guard let keyEnd = stringEnd(bytes, i) else { return nil }
            let key = UnsafeBufferPointer(rebasing: bytes[(i + 1)..<(keyEnd - 1)])
            i = skipSpace(bytes, keyEnd)
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return nil }
            let start = skipSpace(bytes, i + 1)
            guard let end = valueEnd(bytes, start) else { return nil }
            if first.elementsEqual(key) {
                found.first = start..<end
            } else if let second, second.elementsEqual(key) {
                found.second = start..<end
            }
            i = end
        }
    }

    /// The value at `range` read as a non-negative integer; nil when it is not one.
    static func digits(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Int? {
        guard !range.isEmpty else { return nil }
        var value = 0
        for b in bytes[range] {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            value = value &* 10 &+ Int(b - UInt8(ascii: "0"))
        }
        return value
    }

    /// The text of a string value with no escapes in it; nil otherwise (callers fall back).
    static func plainString(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String? {
        guard range.count >= 2, bytes[range.lowerBound] == UInt8(ascii: "\""), bytes[range.upperBound - 1] == UInt8(ascii: "\"") else { return nil }
        let inner = bytes[(range.lowerBound + 1)..<(range.upperBound - 1)]
        guard !inner.contains(UInt8(ascii: "\\")) else { return nil }
        return String(decoding: inner, as: UTF8.self)
    }

    static func skipSpace(_ b: UnsafeBufferPointer<UInt8>, _ from: Int) -> Int {
        var i = from
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        return i
    }

    /// The index just past the string starting at `start` (a quote).
    static func stringEnd(_ b: UnsafeBufferPointer<UInt8>, _ start: Int) -> Int? {
        var i = start + 1
        while i < b.count {
            switch b[i] {
            case UInt8(ascii: "\\"): i += 2
            case UInt8(ascii: "\""): return i + 1
            default: i += 1
            }
        }
        return nil
    }

    /// The index just past the value starting at `start`.
    static func valueEnd(_ b: UnsafeBufferPointer<UInt8>, _ start: Int) -> Int? {
        guard start < b.count else { return nil }
        switch b[start] {
        case UInt8(ascii: "\""):
            return stringEnd(b, start)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            var i = start
            while i < b.count {
                switch b[i] {
                case UInt8(ascii: "\""):
                    guard let end = stringEnd(b, i) else { return nil }
                    i = end
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { return i + 1 }
                default:
                    break
                }
                i += 1
            }
            return nil
        default:
            var i = start
            while i < b.count, b[i] != UInt8(ascii: ","), b[i] != UInt8(ascii: "}"), b[i] != UInt8(ascii: "]"),
                  b[i] != 0x20, b[i] != 0x0A, b[i] != 0x0D, b[i] != 0x09 { i += 1 }
            return i > start ? i : nil
        }
    }
}

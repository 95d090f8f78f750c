/// Puts the pinned model into a client's JSON body so that every reader upstream sees it:
/// the body must name `model` at most once at the top level, keys compared after their
/// escapes are undone (`"mod\u0065l"` is `model`). With two, a parser that keeps the first
/// key and one that keeps the last would read different models, and the access log could
/// not say which the upstream used: such a body is refused (400) rather than repaired,
/// because no splice of one key can tell which of the client's keys it meant.
public enum ModelSplice {
    public enum Outcome: Equatable, Sendable {
        /// The body to send: its one `model` value replaced, or `model` added first.
        case spliced([UInt8])
        /// Why the body is refused.
        case rejected(String)
    }

    /// `body` with `model` pinned, or why not. Any bytes are safe to pass: what is not a
    /// JSON object is rejected (this walker only tracks strings and nesting; a body the
    /// gateway forwards was validated as JSON before).
    public static func apply(_ body: [UInt8], model: String) -> Outcome {
        let quoted = JSONLine.quoted(model)
        return body.withUnsafeBufferPointer { apply($0, quoted: quoted) }
    }

    /// As `apply`, with the model already a JSON string literal.
    static func apply(_ bytes: UnsafeBufferPointer<UInt8>, quoted: [UInt8]) -> Outcome {
        switch find(bytes) {
        case .failure(let refusal):
            return .rejected(refusal.reason)
        case .success(let found):
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count + quoted.count + 12)
            if let range = found.value {
                out.append(contentsOf: bytes[..<range.lowerBound])
                out.append(contentsOf: quoted)
                out.append(contentsOf: bytes[range.upperBound...])
            } else {
                out.append(contentsOf: bytes[...found.open])
                out.append(contentsOf: "\"model\":".utf8)
                out.append(contentsOf: quoted)
                if !found.empty { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: bytes[(found.open + 1)...])
            }
            return .spliced(out)
        }
    }

    /// Where the one `model` value is (nil: none), the object's `{`, and whether it has no members.
    struct Found {
        var value: Range<Int>?
        var open: Int
        var empty: Bool
    }

    struct Refusal: Error { var reason: String }

    /// Finds the top-level `model` members of the object `bytes`; fails when it is not one
    /// object, or names `model` more than once.
    static func find(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<Found, Refusal> {
        var i = TopLevelJSON.skipSpace(bytes, 0)
        guard i < bytes.count, bytes[i] == UInt8(ascii: "{") else { return .failure(Refusal(reason: "request body must be a JSON object")) }
        let open = i
        i += 1
        var value: Range<Int>?
        var count = 0
        var members = 0
        while true {
            i = TopLevelJSON.skipSpace(bytes, i)
            guard i < bytes.count else { return .failure(Refusal(reason: "request body is not a complete JSON object")) }
            if bytes[i] == UInt8(ascii: "}") {
                i = TopLevelJSON.skipSpace(bytes, i + 1)
                guard i == bytes.count else { return .failure(Refusal(reason: "request body has bytes after its JSON object")) }
                break
            }
            if members > 0 {
                guard bytes[i] == UInt8(ascii: ",") else { return .failure(Refusal(reason: "request body is not a JSON object")) }
                i = TopLevelJSON.skipSpace(bytes, i + 1)
            }
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return .failure(Refusal(reason: "request body is not a JSON object")) }
            guard let keyEnd = TopLevelJSON.stringEnd(bytes, i), keyEnd <= bytes.count else { return .failure(Refusal(reason: "request body is not a JSON object")) }
            let isModel = keyIsModel(UnsafeBufferPointer(rebasing: bytes[(i + 1)..<(keyEnd - 1)]))
            i = TopLevelJSON.skipSpace(bytes, keyEnd)
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return .failure(Refusal(reason: "request body is not a JSON object")) }
            let start = TopLevelJSON.skipSpace(bytes, i + 1)
            guard let end = TopLevelJSON.valueEnd(bytes, start), end <= bytes.count else { return .failure(Refusal(reason: "request body is not a JSON object")) }
            if isModel {
                count += 1
                value = start..<end
            }
            members += 1
            i = end
        }
        guard count <= 1 else {
            return .failure(Refusal(reason: "request body names \"model\" \(count) times (keys compared after unescaping); give it once"))
        }
        return .success(Found(value: value, open: open, empty: members == 0))
    }

    /// Whether a key's raw bytes (between the quotes) decode to `model`.
    static func keyIsModel(_ key: UnsafeBufferPointer<UInt8>) -> Bool {
        let want: StaticString = "model"
        var i = 0
        var n = 0
        while i < key.count {
            var c = key[i]
            if c == UInt8(ascii: "\\") {
                // Only `\uXXXX` can spell a letter of `model`; every other escape is not one.
                guard i + 5 < key.count, key[i + 1] == UInt8(ascii: "u") else { return false }
                var code: UInt32 = 0
                for k in 2...5 {
                    guard let v = hexValue(key[i + k]) else { return false }
                    code = code << 4 | v
                }
                guard code < 0x80 else { return false }
                c = UInt8(code)
                i += 6
            } else {
                i += 1
            }
            guard n < want.utf8CodeUnitCount, c == want.utf8Start[n] else { return false }
            n += 1
        }
        return n == want.utf8CodeUnitCount
    }

    private static func hexValue(_ h: UInt8) -> UInt32? {
        switch h {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(h - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(h - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(h - UInt8(ascii: "A") + 10)
        default: nil
        }
    }
}

/// The checks a head must pass beyond what http-parser does (Debian builds it non-strict:
/// it takes `Content-Length : 52`, with a space in the name, as the length), so that what
/// frames a message here is what frames it for every other parser on its way: RFC 9112 as
/// Envoy and nginx apply it. One loop over the bytes the parser already collected.
enum HeadCheck {
    typealias Failure = MessageParser.Failure

    /// A request head: every name a token, no control bytes in values, exactly one `host`
    /// in HTTP/1.1 (at most one in 1.0), one `content-length` at most and never with
    /// `transfer-encoding`, which only HTTP/1.1 may use and only as `chunked`.
    static func request(_ head: inout MessageHead) -> Failure? {
        var counts = Counts()
        if let failure = fields(&head, counts: &counts) { return failure }
        if head.isHTTP10 ? counts.host > 1 : counts.host != 1 {
            return Failure(name: "BAD_HOST", description: counts.host == 0 ? "HTTP/1.1 request without a Host header" : "request with \(counts.host) Host headers")
        }
        if counts.transferEncoding > 0 && head.isHTTP10 {
            return Failure(name: "BAD_FRAMING", description: "HTTP/1.0 request with Transfer-Encoding")
        }
        return framing(counts, head: head)
    }

    /// A response head: the same rules for names, values and framing, and a status in 100...599.
    static func response(_ head: inout MessageHead) -> Failure? {
        guard (100...599).contains(head.status) else {
            return Failure(name: "BAD_STATUS", description: "status \(head.status) is outside 100-599")
        }
        var counts = Counts()
        if let failure = fields(&head, counts: &counts) { return failure }
        return framing(counts, head: head)
    }

    private struct Counts {
        var host = 0
        var contentLength = 0
        var transferEncoding = 0
        /// `connection` fields that may name other fields.
        var connection = 0
        var otherCoding = false
    }

    private static func framing(_ counts: Counts, head: MessageHead) -> Failure? {
        if counts.contentLength > 1 {
            return Failure(name: "BAD_FRAMING", description: "more than one Content-Length header")
        }
        if counts.transferEncoding > 0 && counts.contentLength > 0 {
            return Failure(name: "BAD_FRAMING", description: "both Content-Length and Transfer-Encoding")
        }
        if counts.transferEncoding > 1 || counts.otherCoding || (counts.transferEncoding == 1 && !head.chunked) {
            return Failure(name: "BAD_FRAMING", description: "Transfer-Encoding other than a single chunked")
        }
        return nil
    }

    private static func fields(_ head: inout MessageHead, counts: inout Counts) -> Failure? {
        let headers = head.headers
        let failure: Failure? = headers.bytes.withUnsafeBufferPointer { b in
            for (index, f) in headers.fields.enumerated() {
                let nameStart = Int(f.nameStart), nameEnd = Int(f.nameEnd)
                guard nameEnd > nameStart else { return Failure(name: "BAD_HEADER", description: "empty header name") }
                for i in nameStart..<nameEnd where !isTokenByte(b[i]) {
                    let shown = String(decoding: b[nameStart..<nameEnd].prefix(64), as: UTF8.self)
                    let what = b[i] == 0x20 || b[i] == 0x09 ? "whitespace before the colon" : "byte 0x\(String(b[i], radix: 16)) in the name"
                    return Failure(name: "BAD_HEADER", description: "invalid header name \(debugQuoted(shown)): \(what)")
                }
                for i in Int(f.valueStart)..<Int(f.valueEnd) {
                    let c = b[i]
                    if (c < 0x20 && c != 0x09) || c == 0x7F {
                        let shown = String(decoding: b[nameStart..<nameEnd].prefix(64), as: UTF8.self)
                        return Failure(name: "BAD_HEADER", description: "control byte 0x\(String(c, radix: 16)) in the value of \(shown) (folded lines are not accepted)")
                    }
                }
                // The framing and routing fields, told apart by length first.
                switch nameEnd - nameStart {
                case 4 where headers.nameIs("host", at: index): counts.host += 1
                case 14 where headers.nameIs("content-length", at: index): counts.contentLength += 1
                case 17 where headers.nameIs("transfer-encoding", at: index):
                    counts.transferEncoding += 1
                    // Only `chunked` alone: the gateway de-chunks and knows no other coding.
                    if !isWord(b, Int(f.valueStart)..<Int(f.valueEnd), "chunked") { counts.otherCoding = true }
                case 10 where headers.nameIs("connection", at: index):
                    // `keep-alive` or `close` alone (the usual values) name no other field.
                    let value = Int(f.valueStart)..<Int(f.valueEnd)
                    if !isWord(b, value, "keep-alive") && !isWord(b, value, "close") { counts.connection += 1 }
                default: break
                }
            }
            return nil
        }
        if let failure { return failure }
        if counts.connection > 0 { head.connectionNamed = connectionNamed(headers) }
        return nil
    }

    /// The value is `word` (lower case, compared without case), with optional whitespace around it.
    private static func isWord(_ b: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ word: StaticString) -> Bool {
        var lower = range.lowerBound, upper = range.upperBound
        while lower < upper, b[lower] == 0x20 || b[lower] == 0x09 { lower += 1 }
        while upper > lower, b[upper - 1] == 0x20 || b[upper - 1] == 0x09 { upper -= 1 }
        guard upper - lower == word.utf8CodeUnitCount else { return false }
        for k in 0..<word.utf8CodeUnitCount where b[lower + k] | 0x20 != word.utf8Start[k] { return false }
        return true
    }

    /// Fields named by `connection` tokens other than `close` and `keep-alive`, or nil.
    static func connectionNamed(_ headers: WireHeaders) -> [Int]? {
        var tokens: [Substring] = []
        for i in 0..<headers.count where headers.nameIs("connection", at: i) {
            for token in headers.value(at: i).lowercased().split(separator: ",") {
                let t = token.trimmingWhitespace()
                if !t.isEmpty && t != "close" && t != "keep-alive" { tokens.append(t) }
            }
        }
        guard !tokens.isEmpty else { return nil }
        var named: [Int] = []
        for i in 0..<headers.count where tokens.contains(Substring(headers.name(at: i).lowercased())) { named.append(i) }
        return named.isEmpty ? nil : named
    }

    /// RFC 9110 `tchar`: `!#$%&'*+-.^_`|~`, digits and letters.
    @inline(__always)
    static func isTokenByte(_ c: UInt8) -> Bool {
        c < 64 ? (lowMask >> UInt64(c)) & 1 == 1 : c < 128 && (highMask >> UInt64(c - 64)) & 1 == 1
    }

    /// Bit c set when byte c (0..<64) is a tchar: `!#$%&'*+-.` and digits.
    private static let lowMask: UInt64 = 0x03FF6CFA00000000
    /// Bit c - 64 set when byte c (64..<128) is a tchar: `^_`|~` and letters.
    private static let highMask: UInt64 = 0x57FFFFFFC7FFFFFE

    private static func debugQuoted(_ s: String) -> String { s.debugDescription }
}

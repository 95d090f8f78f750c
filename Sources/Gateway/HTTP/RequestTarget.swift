/// A request target made the form routing and upstreams see: origin-form (`/path?query`),
/// with `.` and `..` segments resolved (RFC 3986 5.2.4), percent-encoded dots included,
/// so `/a/../http-429` and `/a/%2e%2e/http-429` route as `/http-429`, as Envoy and nginx do.
enum RequestTarget {
    /// The origin-form of `target`, or why it cannot be one. Targets that need nothing
    /// done (the usual case) are returned as they are after one pass over their bytes.
    static func originForm(_ target: String, method: String) -> Result<String, MessageParser.Failure> {
        var utf8 = Substring(target).utf8
        guard let first = utf8.first else { return .failure(bad("empty request target")) }
        if first != UInt8(ascii: "/") {
            if target == "*" && method == "OPTIONS" { return .success(target) }
            // absolute-form: drop the scheme and authority (the Host header is not forwarded anyway).
            let lower = target.prefix(8).lowercased()
            let schemeLength = lower.hasPrefix("http://") ? 7 : lower.hasPrefix("https://") ? 8 : 0
            guard schemeLength > 0 else { return .failure(bad("request target \(target.prefix(64).debugDescription) is neither origin-form nor absolute-form")) }
            utf8 = utf8.dropFirst(schemeLength)
            let pathStart = utf8.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? utf8.endIndex
            guard pathStart > utf8.startIndex else { return .failure(bad("absolute-form target without a host")) }
            utf8 = utf8[pathStart...]
            if utf8.first != UInt8(ascii: "/") {
                return .success(resolveDots("/" + String(Substring(utf8))))
            }
        }
        guard mayHaveDots(utf8) else {
            // The usual case: the target as it came, without a copy.
            return .success(first == UInt8(ascii: "/") ? target : String(Substring(utf8)))
        }
        return .success(resolveDots(String(Substring(utf8))))
    }

    private static func bad(_ text: String) -> MessageParser.Failure {
        MessageParser.Failure(name: "BAD_TARGET", description: text)
    }

    /// Whether the path (before `?`) has a segment that may be dots: `/.` or `/%2e`.
    private static func mayHaveDots(_ utf8: Substring.UTF8View) -> Bool {
        var previous: UInt8 = 0
        for c in utf8 {
            if c == UInt8(ascii: "?") || c == UInt8(ascii: "#") { return false }
            if previous == UInt8(ascii: "/") && (c == UInt8(ascii: ".") || c == UInt8(ascii: "%")) { return true }
            previous = c
        }
        return false
    }

    /// `path` (starting with `/`, maybe with `?query`) with dot segments removed.
    static func resolveDots(_ target: String) -> String {
        let queryStart = target.firstIndex { $0 == "?" || $0 == "#" } ?? target.endIndex
        let path = target[..<queryStart]
        let rest = target[queryStart...]
        var out: [Substring] = []
        var endsWithSlash = false
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        for (n, segment) in segments.enumerated() {
            let last = n == segments.count - 1
            switch dots(segment) {
            case 1:
                endsWithSlash = last
            case 2:
                if !out.isEmpty { out.removeLast() }
                endsWithSlash = last
            default:
                out.append(segment)
                endsWithSlash = false
            }
        }
        var result = "/" + out.joined(separator: "/")
        if endsWithSlash && !out.isEmpty { result += "/" }
        return result + rest
    }

    /// 1 for `.`, 2 for `..` (each dot maybe written `%2e`), else 0.
    private static func dots(_ segment: Substring) -> Int {
        var count = 0
        var rest = segment.utf8[...]
        while let c = rest.first {
            if c == UInt8(ascii: ".") {
                rest = rest.dropFirst()
            } else if c == UInt8(ascii: "%"), rest.count >= 3, rest.dropFirst().first == UInt8(ascii: "2"),
                      rest.dropFirst(2).first == UInt8(ascii: "e") || rest.dropFirst(2).first == UInt8(ascii: "E") {
                rest = rest.dropFirst(3)
            } else {
                return 0
            }
            count += 1
            if count > 2 { return 0 }
        }
        return count
    }
}

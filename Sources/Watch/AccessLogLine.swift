import Driver
import Gateway
import Wire

/// One request as an access-log line tells it (agentgateway's JSON lines; ours add
/// `provider`, `group` and `attempts`).
public struct LoggedRequest: Sendable, Hashable {
    /// From a `kubectl logs --prefix` prefix (`[pod/NAME/container]`), else nil.
    public var replica: String?
    /// The line's own `time`, as written.
    public var time: String?
    public var status: Int?
    public var endpoint: String?
    public var route: String?
    /// Our gateway's `provider`; agentgateway names only the `endpoint`.
    public var provider: String?
    /// 0-based, from our `group` (written 1-based).
    public var group: Int?
    /// Seconds, from `duration` (`12ms`, `1.5s`, `2m30s`).
    public var latency: Double?
    public var model: String?
    public var tokens: Int?
    /// Our `attempts` field: the `x-failover-attempts` value.
    public var attempts: [FailoverAttempts.Entry]
    public var error: String?

    public init(replica: String? = nil, time: String? = nil, status: Int? = nil, endpoint: String? = nil, route: String? = nil,
                provider: String? = nil, group: Int? = nil, latency: Double? = nil, model: String? = nil, tokens: Int? = nil,
                attempts: [FailoverAttempts.Entry] = [], error: String? = nil) {
        self.replica = replica
        self.time = time
        self.status = status
        self.endpoint = endpoint
        self.route = route
        self.provider = provider
        self.group = group
        self.latency = latency
        self.model = model
        self.tokens = tokens
        self.attempts = attempts
        self.error = error
    }

    /// Who answered: our `provider`, else agentgateway's `endpoint`.
    public var answeredBy: String? { provider ?? endpoint }
}

/// What one line of an access log is.
public enum AccessLogItem: Sendable, Hashable {
    case request(LoggedRequest)
    /// Not JSON, not an object, another `scope`, too long: counted, not shown.
    case skipped(SkipReason)

    public enum SkipReason: String, Sendable, Hashable {
        case notJSON = "not JSON"
        case notRequest = "not a request line"
        case tooLong = "too long"
    }
}

/// Reads one access-log line. Pure and total: every input gives an item, none traps.
public enum AccessLogParser {
    /// Longer lines are skipped (a request line is a few hundred bytes; a response body
    /// logged whole can be more, but not this).
    public static let maxLineBytes = 256 * 1024
    static let maxField = 512

    public static func parse(_ text: String) -> AccessLogItem {
        parse(bytes: Array(text.utf8)[...])
    }

    public static func parse(bytes line: ArraySlice<UInt8>) -> AccessLogItem {
        guard line.count <= maxLineBytes else { return .skipped(.tooLong) }
        var rest = line
        // Trailing CR of CRLF logs, leading spaces.
        while let last = rest.last, last == UInt8(ascii: "\r") || last == UInt8(ascii: " ") { rest.removeLast() }
        while let first = rest.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") { rest.removeFirst() }
        var replica: String?
        if rest.first == UInt8(ascii: "[") {
            // `kubectl logs --prefix`: `[pod/NAME/CONTAINER] {...}`.
            guard let close = rest.firstIndex(of: UInt8(ascii: "]")) else { return .skipped(.notJSON) }
            replica = podName(rest[rest.index(after: rest.startIndex)..<close])
            rest = rest[rest.index(after: close)...]
            while let first = rest.first, first == UInt8(ascii: " ") { rest.removeFirst() }
        }
        // Cheap test before the JSON reader: a request line is an object.
        guard rest.first == UInt8(ascii: "{") else { return .skipped(.notJSON) }
        let json: JSONValue
        do { json = try JSONValue.parse(bytes: Array(rest)) } catch { return .skipped(.notJSON) }
        guard case .object = json else { return .skipped(.notJSON) }
        guard let scope = json["scope"]?.string, scope == "request" else { return .skipped(.notRequest) }
        var r = LoggedRequest(replica: replica)
        r.time = text(field(json, "time"))
        r.status = field(json, "http.status")?.number.flatMap { $0.isFinite && $0 >= 0 && $0 <= 999 && $0.rounded() == $0 ? Checked.clampedInt($0) : nil }
        r.endpoint = text(field(json, "endpoint"))
        r.route = text(field(json, "route"))
        r.provider = text(field(json, "provider"))
        r.group = field(json, "group")?.number.flatMap { $0.isFinite && $0 >= 1 && $0 <= 64 ? Checked.clampedInt($0) - 1 : nil }
        if let d = text(field(json, "duration")) { r.latency = (try? GoDuration.parse(d))?.seconds }
        r.model = text(field(json, "gen_ai.response.model")) ?? text(field(json, "gen_ai.request.model"))
        let input = tokenCount(field(json, "gen_ai.usage.input_tokens"))
        let output = tokenCount(field(json, "gen_ai.usage.output_tokens"))
        if input != nil || output != nil { r.tokens = (input ?? 0) + (output ?? 0) }
        if let a = field(json, "attempts")?.string, a.utf8.count <= 4096 { r.attempts = FailoverAttempts.parse(a).entries }
        r.error = text(field(json, "error"))
        return .request(r)
    }

    /// A field given flat (`"http.status"`, as agentgateway writes) or nested (`{"http": {"status"}}`).
    static func field(_ json: JSONValue, _ dotted: String) -> JSONValue? {
        if let v = json[dotted] { return v }
        guard dotted.contains(".") else { return nil }
        var cur: JSONValue? = json
        for part in dotted.split(separator: ".") { cur = cur?[String(part)] }
        return cur
    }

    /// A string field, control characters dropped, cut to 512 characters.
    static func text(_ v: JSONValue?) -> String? {
        guard let s = v?.string else { return nil }
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars where u.value >= 0x20 && u.value != 0x7F {
            if out.count >= maxField { break }
            out.append(u)
        }
        return out.isEmpty ? nil : String(out)
    }

    /// Token counts: whole, 0 up to a billion (beyond is no count).
    static func tokenCount(_ v: JSONValue?) -> Int? {
        guard let n = v?.number, n.isFinite, n >= 0, n <= 1e9 else { return nil }
        return Checked.clampedInt(n)
    }

    /// `pod/NAME/container` (or `NAME/container`, or `NAME`) → NAME.
    static func podName(_ bytes: ArraySlice<UInt8>) -> String? {
        let parts = String(decoding: bytes, as: UTF8.self).split(separator: "/", omittingEmptySubsequences: true)
        let name: Substring?
        if parts.count >= 2, parts[0] == "pod" || parts[0] == "pods" { name = parts[1] } else { name = parts.first }
        guard let name else { return nil }
        return text(.string(String(name.prefix(128))))
    }
}

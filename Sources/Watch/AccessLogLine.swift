import Foundation
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
        // Foundation's reader (validating, depth-limited), and only the fields used are
        // looked at: converting whole lines cost more than reading them at 5,000 lines/s.
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: Data(rest)) } catch { return .skipped(.notJSON) }
        guard let json = object as? [String: Any] else { return .skipped(.notJSON) }
        guard let scope = json["scope"] as? String, scope == "request" else { return .skipped(.notRequest) }
        var r = LoggedRequest(replica: replica)
        r.time = text(field(json, "time"))
        r.status = number(field(json, "http.status")).flatMap { $0 >= 0 && $0 <= 999 && $0.rounded() == $0 ? Checked.clampedInt($0) : nil }
        r.endpoint = text(field(json, "endpoint"))
        r.route = text(field(json, "route"))
        r.provider = text(field(json, "provider"))
        r.group = number(field(json, "group")).flatMap { $0 >= 1 && $0 <= 64 ? Checked.clampedInt($0) - 1 : nil }
        if let d = text(field(json, "duration")) { r.latency = (try? GoDuration.parse(d))?.seconds }
        r.model = text(field(json, "gen_ai.response.model")) ?? text(field(json, "gen_ai.request.model"))
        let input = tokenCount(field(json, "gen_ai.usage.input_tokens"))
        let output = tokenCount(field(json, "gen_ai.usage.output_tokens"))
        if input != nil || output != nil { r.tokens = (input ?? 0) + (output ?? 0) }
        if let a = field(json, "attempts") as? String, a.utf8.count <= 4096 { r.attempts = FailoverAttempts.parse(a).entries }
        r.error = text(field(json, "error"))
        return .request(r)
    }

    /// A field given flat (`"http.status"`, as agentgateway writes) or nested (`{"http": {"status"}}`).
    static func field(_ json: [String: Any], _ dotted: String) -> Any? {
        if let v = json[dotted] { return v }
        // A byte test: `contains(".")` with a String argument is Foundation's range(of:),
        // which cost 15% of watch's CPU at 5,000 lines a second.
        guard dotted.utf8.contains(UInt8(ascii: ".")) else { return nil }
        var cur: Any? = json
        for part in dotted.utf8.split(separator: UInt8(ascii: ".")) { cur = (cur as? [String: Any])?[String(decoding: part, as: UTF8.self)] }
        return cur
    }

    /// The class Foundation gives JSON's `true` and `false`: a number to `as?`, not to us.
    private static let booleanClass = ObjectIdentifier(type(of: NSNumber(value: true)))

    /// A finite JSON number (not a boolean).
    static func number(_ v: Any?) -> Double? {
        guard let n = v as? NSNumber, ObjectIdentifier(type(of: n)) != booleanClass else { return nil }
        let d = n.doubleValue
        return d.isFinite ? d : nil
    }

    /// A string field, control characters dropped, cut to 512 characters.
    static func text(_ v: Any?) -> String? {
        guard let s = v as? String else { return nil }
        if s.utf8.count <= maxField, s.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F }) { return s.isEmpty ? nil : s }
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars where u.value >= 0x20 && u.value != 0x7F {
            if out.count >= maxField { break }
            out.append(u)
        }
        return out.isEmpty ? nil : String(out)
    }

    /// Token counts: whole, 0 up to a billion (beyond is no count).
    static func tokenCount(_ v: Any?) -> Int? {
        guard let n = number(v), n >= 0, n <= 1e9 else { return nil }
        return Checked.clampedInt(n)
    }

    /// `pod/NAME/container` (or `NAME/container`, or `NAME`) → NAME.
    static func podName(_ bytes: ArraySlice<UInt8>) -> String? {
        let parts = String(decoding: bytes, as: UTF8.self).split(separator: "/", omittingEmptySubsequences: true)
        let name: Substring?
        if parts.count >= 2, parts[0] == "pod" || parts[0] == "pods" { name = parts[1] } else { name = parts.first }
        guard let name else { return nil }
        return text(String(name.prefix(128)))
    }
}

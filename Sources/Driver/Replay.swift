import CShims
/// One request to replay: from one of our records or from an agentgateway access-log line.
public struct ReplayEntry: Sendable, Equatable {
    /// Original time, ns (wall clock since 1970, or a run offset for records without one).
    public var time: Int64
    public var method: String
    /// A full URL (our records) or a path with query (access logs).
    public var target: String
    public var model: String?
    public var line: Int

    public init(time: Int64, method: String, target: String, model: String?, line: Int) {
        self.time = time
        self.method = method
        self.target = target
        self.model = model
        self.line = line
    }
}

/// What one JSON object of a replay file is.
public enum ReplayItem: Sendable, Equatable {
    case entry(ReplayEntry)
    /// Not a request line (another scope, another format): counted, not reported.
    case skipped
    /// A request line that cannot be used: reported with its line number.
    case malformed(String)
}

public enum ReplayParser {
    /// Reads an access-log field given flat (`"http.method"`) or nested (`{"http": {"method"}}`).
    static func field(_ json: JSONValue, _ dotted: String) -> JSONValue? {
        if let v = json[dotted] { return v }
        var cur: JSONValue? = json
        for part in dotted.split(separator: ".") { cur = cur?[String(part)] }
        return cur
    }

    /// Classifies one parsed JSON object of a replay file. What it gives is safe to send:
    /// the method is an HTTP token, the target origin-form (or an http(s) URL whose path is).
    public static func item(_ json: JSONValue, line: Int) -> ReplayItem {
        guard case .object = json else { return .skipped }
        if json["seq"] != nil, json["intended_offset_ns"] != nil {
            do {
                let r = try RequestRecord(json: json)
                let (sum, overflow) = r.runStartWall.addingReportingOverflow(Int64(r.intended))
                guard !overflow else { return .malformed("not a usable record: its start plus \"intended_offset_ns\" is out of range") }
                if let why = methodProblem(r.method) { return .malformed("not a usable record: \(why)") }
                if let why = urlProblem(r.url) { return .malformed("not a usable record: \(why)") }
                return .entry(ReplayEntry(time: r.runStartWall != 0 ? sum : Int64(r.intended), method: r.method, target: r.url,
                                          model: r.model, line: line))
            } catch {
                return .malformed("not a usable record: \(error)")
            }
        }
        guard let method = field(json, "http.method")?.string, let path = field(json, "http.path")?.string else {
            return .skipped
        }
        if let scope = json["scope"]?.string, scope != "request" { return .skipped }
        guard let timeText = json["time"]?.string else { return .malformed("access-log line without \"time\"") }
        guard let time = WallTime.parse(timeText) else {
            return .malformed("\"time\" is not an RFC 3339 time in \(WallTime.representableRange): \(shown(timeText))")
        }
        if let why = methodProblem(method) { return .malformed(why) }
        if let why = originFormProblem(path, what: "\"http.path\"") { return .malformed(why) }
        let model = field(json, "gen_ai.request.model")?.string
        return .entry(ReplayEntry(time: time, method: method, target: path, model: model, line: line))
    }

    /// Parses one line (or jq-style object) of a replay file: the fuzz entry. Never traps;
    /// text that is not JSON is `.malformed`, JSON that is not a request is `.skipped`.
    public static func parseLine(_ text: String, line: Int = 1) -> ReplayItem {
        let json: JSONValue
        do { json = try JSONValue.parse(text) } catch { return .malformed("malformed JSON (\(error))") }
        return item(json, line: line)
    }

    /// `parseLine` from bytes (the fuzz entry): never traps.
    public static func parseLine(bytes: [UInt8], line: Int = 1) -> ReplayItem {
        let json: JSONValue
        do { json = try JSONValue.parse(bytes: bytes) } catch { return .malformed("malformed JSON (\(error))") }
        return item(json, line: line)
    }

    /// Hostile text quoted in a message: at most 60 characters, control characters escaped.
    static func shown(_ text: String) -> String {
        let cut = text.unicodeScalars.count > 60 ? String(String.UnicodeScalarView(text.unicodeScalars.prefix(60))) + "..." : text
        return JSONValue.string(cut).serialized
    }

    static let maxMethodLength = 32
    static let maxTargetLength = 8192

    /// Why `method` cannot be sent: it must be an RFC 9110 token (no CR/LF, space, or `:`), short.
    public static func methodProblem(_ method: String) -> String? {
        guard !method.isEmpty, method.utf8.count <= maxMethodLength, method.utf8.allSatisfy(isTokenByte) else {
            return "\"http.method\" is not an HTTP method (token characters, at most \(maxMethodLength)): \(shown(method))"
        }
        return nil
    }

    /// Why `path` is not origin-form (`/path?query`, RFC 9112 3.2.1): absolute-form, spaces,
    /// control or non-ASCII bytes, a fragment, or bytes RFC 3986 leaves out.
    public static func originFormProblem(_ path: String, what: String) -> String? {
        let bytes = path.utf8
        guard bytes.first == UInt8(ascii: "/") else { return "\(what) is not origin-form (it must start with /): \(shown(path))" }
        guard bytes.count <= maxTargetLength else { return "\(what) is longer than \(maxTargetLength) bytes" }
        guard bytes.allSatisfy(isTargetByte) else {
            return "\(what) holds a byte a request target may not (space, control character, non-ASCII or #): \(shown(path))"
        }
        return nil
    }

    /// Why a record's URL cannot be replayed: `http://` or `https://`, an authority of
    /// visible characters, then an origin-form path (or none).
    public static func urlProblem(_ url: String) -> String? {
        let lower = url.lowercased()
        let afterScheme: Substring
        if lower.hasPrefix("http://") { afterScheme = url.dropFirst(7) } else if lower.hasPrefix("https://") { afterScheme = url.dropFirst(8) } else {
            return "\"url\" is not an http:// or https:// URL: \(shown(url))"
        }
        let slash = afterScheme.firstIndex(of: "/") ?? afterScheme.endIndex
        let authority = afterScheme[..<slash]
        guard !authority.isEmpty, authority.utf8.allSatisfy({ isTargetByte($0) && $0 != UInt8(ascii: "?") }) else {
            return "\"url\" has no usable host: \(shown(url))"
        }
        if slash == afterScheme.endIndex { return nil }
        return originFormProblem(String(afterScheme[slash...]), what: "the path of \"url\"")
    }

    /// tchar (RFC 9110 5.6.2).
    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
        default: return "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
    }

    /// Visible ASCII but `#` (a fragment is never sent). Characters RFC 3986 wants encoded
    /// but servers take as they are (`{`, `|`, ...) pass: they cannot change the request's framing.
    static func isTargetByte(_ b: UInt8) -> Bool {
        b > 0x20 && b < 0x7F && b != UInt8(ascii: "#")
    }

    /// Depth of unclosed `{`/`[` after `text`, outside strings (for JSON spread over lines, as jq prints it).
    static func depthChange(_ text: String, inString: inout Bool, escaped: inout Bool) -> Int {
        var depth = 0
        for b in text.utf8 {
            if inString {
                if escaped { escaped = false } else if b == 0x5C { escaped = true } else if b == 0x22 { inString = false }
                continue
            }
            switch b {
            case 0x22: inString = true
            case 0x7B, 0x5B: depth += 1
            case 0x7D, 0x5D: depth -= 1
            default: break
            }
        }
        return depth
    }
}

/// The pure timing of a replay: original gaps divided by the speed, long gaps cut to `maxGap`,
/// and with `loop` the next pass following the last request after a typical gap.
public struct ReplayTimer: Sendable, Equatable {
    public let speed: Double
    public let maxGap: Nanos?
    private var previous: Int64?
    private var offset: Nanos = 0
    private var passStart: Nanos = 0
    private var inPass = 0
    private var started = false

    public init(speed: Double = 1, maxGap: Nanos? = nil) {
        self.speed = speed > 0 ? speed : 1
        self.maxGap = maxGap
    }

    /// The replay offset of a request whose original time is `time` (ns).
    public mutating func schedule(_ time: Int64) -> Nanos {
        defer { previous = time; inPass += 1 }
        guard started else {
            started = true
            return 0
        }
        guard let prev = previous else { return offset } // first of a new pass
        // Times from a file may be so far apart that `time - prev` overflows: then in Double.
        let (diff, overflow) = time.subtractingReportingOverflow(prev)
        let gap = time > prev ? (overflow ? Double(time) - Double(prev) : Double(diff)) / speed : 0
        var g = gap >= 1.8e19 ? Nanos.max / 4 : Nanos(gap.rounded())
        if let maxGap { g = min(g, maxGap) }
        offset &+= g
        return offset
    }

    /// Starts another pass of the same file (`--loop`).
    public mutating func newPass() {
        guard started else { return }
        let passLength = offset - passStart
        let oneSecond = 1e9 / speed // a tiny --speed makes this huge: clamp before converting
        var gap = inPass > 1 ? passLength / Nanos(inPass - 1) : (oneSecond >= 1.8e19 ? Nanos.max / 4 : Nanos(oneSecond))
        if let maxGap { gap = min(gap, maxGap) }
        offset &+= gap
        passStart = offset
        previous = nil
        inPass = 0
    }
}

/// Counts and messages of a replay's input, shared with whoever prints them.
public final class ReplayDiagnostics: @unchecked Sendable {
    private let lock = SimpleLock()
    private var _entries = 0
    private var _skipped = 0
    private var _malformed = 0
    private let report: @Sendable (String) -> Void

    /// `report` receives each malformed line's message, `file:line: why`.
    public init(report: @escaping @Sendable (String) -> Void = { _ in }) { self.report = report }

    public var entries: Int { lock.withLock { _entries } }
    public var skipped: Int { lock.withLock { _skipped } }
    public var malformed: Int { lock.withLock { _malformed } }

    func entry() { lock.withLock { _entries += 1 } }
    func skip() { lock.withLock { _skipped += 1 } }
    /// Counts a malformed line and reports its message.
    public func bad(_ message: String) {
        lock.withLock { _malformed += 1 }
        report(message)
    }
}

/// Splits a file into JSON objects (one a line, or spread over lines as jq prints them),
/// reporting what is neither.
public final class JSONObjectReader {
    private let lines: LineReader
    public let path: String
    private let diagnostics: ReplayDiagnostics
    static let maxObjectLines = 10_000

    /// `limit` and `snapshotLimit` as in `LineReader`: a replay reads the file as it was when
    /// it started, never the lines its own requests append to it.
    public init(path: String, diagnostics: ReplayDiagnostics, limit: Int64? = nil,
                snapshotLimit: Bool = false) throws(LineReader.OpenError) {
        self.path = path
        lines = try LineReader(path: path, limit: limit, snapshotLimit: snapshotLimit)
        self.diagnostics = diagnostics
        lines.overlong = { [diagnostics] n in
            diagnostics.bad("\(path):\(n): line longer than \(LineReader.maxLineBytes >> 20) MiB; line skipped")
        }
    }

    /// Where the underlying reader stops, if anywhere.
    public var limit: Int64? { lines.limit }

    /// A line read ahead while collecting a spread-out object.
    private var pending: (String, Int)?

    private func nextLine() -> (String, Int)? {
        if let p = pending {
            pending = nil
            return p
        }
        guard let line = lines.next() else { return nil }
        return (line, lines.lineNumber)
    }

    /// The next object and the line it starts on; non-JSON lines are counted as skipped,
    /// malformed JSON is reported and skipped. An object whose first line leaves braces open
    /// (as `jq .` prints it) takes the following lines until they balance outside strings;
    /// a line starting with `{` at column 0 starts a new object, so one unclosed object
    /// does not swallow the rest. The text is then parsed by Foundation (`JSONValue.parse`).
    public func next() -> (JSONValue, Int)? {
        while let (line, start) = nextLine() {
            let trimmed = line.trimmed(" \t")
            if trimmed.isEmpty { continue }
            guard trimmed.first == "{" else {
                diagnostics.skip()
                continue
            }
            var text = trimmed
            var inString = false, escaped = false
            var depth = ReplayParser.depthChange(trimmed, inString: &inString, escaped: &escaped)
            if depth > 0 {
                var count = 1
                while depth > 0, count < Self.maxObjectLines, let (more, number) = nextLine() {
                    if more.hasPrefix("{") { // a new object at column 0: this one never closed
                        pending = (more, number)
                        break
                    }
                    text += "\n" + more
                    // A JSON string never spans lines: an unclosed quote ends with its line.
                    inString = false
                    escaped = false
                    depth += ReplayParser.depthChange(more, inString: &inString, escaped: &escaped)
                    count += 1
                }
            }
            do {
                return (try JSONValue.parse(text), start)
            } catch {
                diagnostics.bad("\(path):\(start): malformed JSON (\(error)); line skipped")
            }
        }
        return nil
    }
}

/// Turns entries into requests: the target's scheme and host with the entry's path, the
/// entry's method and model, and the flags' message, stream and headers.
public struct ReplayRequestBuilder: Sendable {
    public var target: String?
    public var message: String
    public var stream: Bool
    public var headers: [String]

    public init(target: String?, message: String = "What is 2+2?", stream: Bool = false, headers: [String] = []) {
        self.target = target
        self.message = message
        self.stream = stream
        self.headers = headers
    }

    /// The path and query of a URL (`/` if it has none).
    static func pathOf(_ url: String) -> String {
        guard let scheme = url.firstRange(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        guard let slash = rest.firstIndex(of: "/") else { return "/" }
        return String(rest[slash...])
    }

    public func url(for entry: ReplayEntry) -> String? {
        let isURL = entry.target.contains("://")
        guard let target, !target.isEmpty else { return isURL ? entry.target : nil }
        var base = target
        while base.hasSuffix("/") { base.removeLast() }
        var path = isURL ? Self.pathOf(entry.target) : entry.target
        if !path.hasPrefix("/") { path = "/" + path }
        return base + path
    }

    public func request(for entry: ReplayEntry) -> RequestSpec? {
        guard let url = url(for: entry) else { return nil }
        let method = entry.method.uppercased()
        if method == "GET" || method == "HEAD" || method == "DELETE" || method == "OPTIONS" {
            return RequestSpec(method: method, url: url, headers: headers, body: nil, model: entry.model)
        }
        var spec = RequestSpec.chat(url: url, model: entry.model ?? "", message: message, stream: stream, headers: headers)
        spec.method = method
        return spec
    }
}

/// A replay as the engine's feed: streams the file, loops if asked, never holds it in memory.
public final class ReplayFeed: ArrivalFeed {
    public let path: String
    private let builder: ReplayRequestBuilder
    private let loop: Bool
    private let diagnostics: ReplayDiagnostics
    private var reader: JSONObjectReader?
    private var timer: ReplayTimer
    private var entriesThisPass = 0
    private var pass = 0
    private var warnedNoTarget = false

    public init(path: String, builder: ReplayRequestBuilder, speed: Double, maxGap: Nanos?, loop: Bool,
                diagnostics: ReplayDiagnostics) throws(LineReader.OpenError) {
        self.path = path
        self.builder = builder
        self.loop = loop
        self.diagnostics = diagnostics
        timer = ReplayTimer(speed: speed, maxGap: maxGap)
        // Only what the file holds now: replaying a gateway's access log against that gateway
        // must not replay the lines the replay itself adds (it would chase its own tail).
        let first = try JSONObjectReader(path: path, diagnostics: diagnostics, snapshotLimit: true)
        reader = first
        sizeAtStart = first.limit
    }

    /// The file's size when the replay started; every pass reads up to it.
    private let sizeAtStart: Int64?

    public func next() -> (offset: Nanos, request: RequestSpec)? {
        while true {
            guard let reader else { return nil }
            guard let (json, line) = reader.next() else {
                // End of file: another pass, or the end.
                if loop, entriesThisPass > 0, let again = try? JSONObjectReader(path: path, diagnostics: ReplayDiagnostics(),
                                                                               limit: sizeAtStart) {
                    self.reader = again
                    timer.newPass()
                    entriesThisPass = 0
                    pass += 1
                    continue
                }
                self.reader = nil
                return nil
            }
            switch ReplayParser.item(json, line: line) {
            case .skipped:
                if pass == 0 { diagnostics.skip() }
            case let .malformed(why):
                if pass == 0 { diagnostics.bad("\(path):\(line): \(why); line skipped") }
            case let .entry(entry):
                guard let request = builder.request(for: entry) else {
                    if !warnedNoTarget {
                        warnedNoTarget = true
                        diagnostics.bad("\(path):\(line): access-log lines carry only a path; pass --target URL (lines skipped)")
                    }
                    continue
                }
                entriesThisPass += 1
                if pass == 0 { diagnostics.entry() }
                return (timer.schedule(entry.time), request)
            }
        }
    }
}

/// Reads a feed ahead on its own thread, so parsing a replay file (tens of microseconds a
/// line) never sits between the engine and a request that is due. The engine's thread only
/// takes parsed arrivals, a buffer at a time; the reader stays at most `capacity` ahead.
final class ReadAheadFeed: @unchecked Sendable {
    typealias Item = (offset: Nanos, request: RequestSpec)
    static let capacity = 4096
    /// How far ahead the reader gets before a run starts its clock.
    static let primeCount = 1024
    private let lock = Condition()
    // Guarded by `lock`.
    private var pending: [Item] = []
    private var finished = false
    private var cancelled = false
    // Engine thread only.
    private var local: [Item] = []
    private var index = 0

    init(_ make: @escaping @Sendable () -> any ArrivalFeed) {
        pending.reserveCapacity(Self.capacity)
        local.reserveCapacity(Self.capacity)
        startThread(name: "fl-replay-read") { [self] in
            fl_set_thread_name("fl-replay-read")
            var feed = make()
            var locked = false
            while let item = feed.next() {
                lock.lock()
                while pending.count >= Self.capacity && !cancelled { lock.wait() }
                if cancelled { locked = true; break }
                pending.append(item)
                // Wakes `next` (waiting for one) and `prime` (waiting for a head start).
                if pending.count == 1 || pending.count == Self.primeCount { lock.broadcast() }
                lock.unlock()
            }
            if !locked { lock.lock() }
            finished = true
            lock.broadcast()
            lock.unlock()
        }
    }

    /// Waits until the reader is `count` arrivals ahead (or done), so a run starts with a head start.
    func prime() {
        lock.lock()
        while pending.count < Self.primeCount && !finished { lock.wait() }
        lock.unlock()
    }

    /// The next arrival, waiting for the reader if it is behind; nil at the end of the feed.
    func next() -> Item? {
        if index < local.count {
            defer { index += 1 }
            return local[index]
        }
        lock.lock()
        while pending.isEmpty && !finished { lock.wait() }
        local.removeAll(keepingCapacity: true)
        swap(&local, &pending)
        lock.broadcast()
        lock.unlock()
        index = 0
        guard !local.isEmpty else { return nil }
        index = 1
        return local[0]
    }

    /// Stops the reader (the run ended before the feed did).
    func cancel() {
        lock.lock()
        cancelled = true
        lock.broadcast()
        lock.unlock()
    }
}

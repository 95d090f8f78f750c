import Wire

/// One provider's try within a request, from `x-failover-attempts: name=status,name=timeout,...`:
/// a status, or the gateway's word when there was no response (Wire's one reader).
public typealias Attempt = FailoverAttempts.Entry

/// Token counts from the response's `usage` (Wire's, which the scanner fills).
public typealias TokenUsage = Wire.TokenUsage

/// What happened to one request: written as one JSON line, read back by `report` and `replay`.
public struct RequestRecord: Sendable, Equatable {
    /// Order in which requests were scheduled, from 0.
    public var seq: UInt64
    /// Wall clock (ns since 1970) at offset 0 of the run.
    public var runStartWall: Int64
    /// When the request should have started, from the run's start (monotonic).
    public var intended: Nanos
    /// When it was handed to libcurl, or nil if it never was (a late request left at the end).
    public var sent: Nanos?
    /// It could not start on time because every slot up to --max-in-flight was busy.
    public var late: Bool
    public var method: String
    public var url: String
    /// The `model` the request asked for, when the body named one.
    public var model: String?
    /// HTTP status, nil when no response arrived.
    public var status: Int?
    /// From send to the last byte.
    public var latency: Nanos?
    /// From the intended start to the last byte (corrected for coordinated omission).
    public var correctedLatency: Nanos?
    /// From send to the first response byte.
    public var ttfb: Nanos?
    /// Streamed responses (text/event-stream): from send to the first `data:` event with a
    /// non-empty `delta.content` (the role-only first chunk does not count). Nil otherwise.
    public var ttft: Nanos?
    /// Streamed responses: the gaps between content-bearing events (count, mean, max). Nil otherwise.
    public var interToken: InterTokenLatency?
    public var bytesIn: Int
    public var bytesOut: Int
    /// libcurl's own message for transport errors (refused, reset, timeout, DNS).
    public var error: String?
    /// The provider that answered.
    public var provider: String?
    public var attempts: [Attempt]?
    public var tokens: TokenUsage?
    /// The W3C trace id (32 hex digits) the request's `traceparent` carried (`drive --trace`).
    public var traceID: String?

    public init(seq: UInt64, runStartWall: Int64 = 0, intended: Nanos, sent: Nanos? = nil, late: Bool = false,
                method: String = "POST", url: String, model: String? = nil, status: Int? = nil,
                latency: Nanos? = nil, correctedLatency: Nanos? = nil, ttfb: Nanos? = nil,
                ttft: Nanos? = nil, interToken: InterTokenLatency? = nil,
                bytesIn: Int = 0, bytesOut: Int = 0, error: String? = nil, provider: String? = nil,
                attempts: [Attempt]? = nil, tokens: TokenUsage? = nil, traceID: String? = nil) {
        self.seq = seq
        self.runStartWall = runStartWall
        self.intended = intended
        self.sent = sent
        self.late = late
        self.method = method
        self.url = url
        self.model = model
        self.status = status
        self.latency = latency
        self.correctedLatency = correctedLatency
        self.ttfb = ttfb
        self.ttft = ttft
        self.interToken = interToken
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.error = error
        self.provider = provider
        self.attempts = attempts
        self.tokens = tokens
        self.traceID = traceID
    }

    /// When it ended, from the run's start: sent plus latency.
    public var finished: Nanos? {
        guard let sent, let latency else { return nil }
        return sent + latency
    }

    /// The record as one line of JSON (no newline). Field order is fixed so files diff well.
    public var jsonLine: String {
        var o = "{\"seq\":"
        o += String(seq)
        o += ",\"intended_at\":\"" + WallTime.format(runStartWall &+ Int64(clamping: intended)) + "\""
        o += ",\"intended_offset_ns\":" + String(intended)
        if let sent {
            o += ",\"sent_at\":\"" + WallTime.format(runStartWall &+ Int64(clamping: sent)) + "\""
            o += ",\"sent_offset_ns\":" + String(sent)
        } else {
            o += ",\"sent_at\":null,\"sent_offset_ns\":null"
        }
        o += ",\"late\":" + (late ? "true" : "false")
        o += ",\"method\":"
        JSONValue.writeString(method, into: &o)
        o += ",\"url\":"
        JSONValue.writeString(url, into: &o)
        o += ",\"model\":"
        Self.optionalString(model, &o)
        o += ",\"status\":" + (status.map(String.init) ?? "null")
        o += ",\"latency_ms\":" + Self.ms(latency)
        o += ",\"latency_corrected_ms\":" + Self.ms(correctedLatency)
        o += ",\"ttfb_ms\":" + Self.ms(ttfb)
        o += ",\"ttft_ms\":" + Self.ms(ttft)
        o += ",\"itl_ms\":"
        if let itl = interToken {
            o += "{\"events\":" + String(itl.events) + ",\"mean\":" + Self.ms(itl.mean) + ",\"max\":" + Self.ms(itl.max) + "}"
        } else {
            o += "null"
        }
        o += ",\"bytes_in\":" + String(bytesIn) + ",\"bytes_out\":" + String(bytesOut)
        o += ",\"error\":"
        Self.optionalString(error, &o)
        o += ",\"provider\":"
        Self.optionalString(provider, &o)
        o += ",\"attempts\":"
        if let attempts {
            o += "["
            for (i, a) in attempts.enumerated() {
                if i > 0 { o += "," }
                o += "{\"provider\":"
                JSONValue.writeString(a.provider, into: &o)
                // A try without a status keeps its word in "failure" (readers before it skip the entry).
                if let status = a.status {
                    o += ",\"status\":" + String(status) + "}"
                } else {
                    o += ",\"status\":null,\"failure\":"
                    JSONValue.writeString(a.failure ?? "error", into: &o)
                    o += "}"
                }
            }
            o += "]"
        } else {
            o += "null"
        }
        if let traceID {
            o += ",\"trace_id\":"
            JSONValue.writeString(traceID, into: &o)
        }
        o += ",\"tokens\":"
        if let tokens {
            o += "{\"prompt\":" + (tokens.prompt.map(String.init) ?? "null")
            o += ",\"completion\":" + (tokens.completion.map(String.init) ?? "null")
            o += ",\"total\":" + (tokens.total.map(String.init) ?? "null") + "}"
        } else {
            o += "null"
        }
        o += "}"
        return o
    }

    private static func optionalString(_ s: String?, _ o: inout String) {
        if let s { JSONValue.writeString(s, into: &o) } else { o += "null" }
    }

    private static func ms(_ ns: Nanos?) -> String {
        guard let ns else { return "null" }
        // Six decimals keep nanoseconds exact, so a record round-trips.
        let whole = ns / 1_000_000, frac = String(ns % 1_000_000)
        return String(whole) + "." + String(repeating: "0", count: 6 - frac.count) + frac
    }

    /// Why a line is not a record.
    public struct DecodeError: Error, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Reads a record back from its JSON object.
    public init(json: JSONValue) throws(DecodeError) {
        guard case .object = json else { throw DecodeError(message: "not a JSON object") }
        guard let seq = json["seq"]?.int, seq >= 0 else { throw DecodeError(message: "missing or invalid \"seq\"") }
        guard let intended = json["intended_offset_ns"]?.int, intended >= 0 else {
            throw DecodeError(message: "missing or invalid \"intended_offset_ns\"")
        }
        guard let url = json["url"]?.string else { throw DecodeError(message: "missing \"url\"") }
        guard Nanos(intended) <= Self.maxNanos else { throw DecodeError(message: "\"intended_offset_ns\" out of range (more than \(Self.maxNanos) ns)") }
        func nanos(_ key: String) throws(DecodeError) -> Nanos? {
            try Self.milliseconds(json[key], key)
        }
        func optString(_ key: String) -> String? { json[key]?.string }
        func nanos(in object: JSONValue, _ key: String) throws(DecodeError) -> Nanos? {
            try Self.milliseconds(object[key], "itl_ms.\(key)")
        }
        var sent: Nanos?
        if let v = json["sent_offset_ns"], !v.isNull {
            guard let n = v.int, n >= 0, Nanos(n) <= Self.maxNanos else {
                throw DecodeError(message: "\"sent_offset_ns\" is not a whole number of ns in 0...\(Self.maxNanos)")
            }
            sent = Nanos(n)
        }
        func count(_ key: String) throws(DecodeError) -> Int {
            guard let v = json[key], !v.isNull else { return 0 }
            guard let n = v.int, n >= 0 else { throw DecodeError(message: "\"\(key)\" is not a whole number >= 0") }
            return n
        }
        func tokenCount(_ t: JSONValue, _ key: String) throws(DecodeError) -> Int? {
            guard let v = t[key], !v.isNull else { return nil }
            guard let n = v.int, n >= 0, n <= Self.maxCount else {
                throw DecodeError(message: "\"tokens.\(key)\" is not a whole number in 0...\(Self.maxCount)")
            }
            return n
        }
        var tokens: TokenUsage?
        if let t = json["tokens"], case .object = t {
            tokens = TokenUsage(prompt: try tokenCount(t, "prompt"), completion: try tokenCount(t, "completion"), total: try tokenCount(t, "total"))
        }
        var status: Int?
        if let v = json["status"], !v.isNull {
            guard let n = v.int, (0...999).contains(n) else { throw DecodeError(message: "\"status\" is not a status (0...999)") }
            status = n
        }
        var interToken: InterTokenLatency?
        if let itl = json["itl_ms"], !itl.isNull {
            guard case .object = itl, let events = itl["events"]?.int, events >= 0, events <= Self.maxCount else {
                throw DecodeError(message: "invalid \"itl_ms\"")
            }
            interToken = InterTokenLatency(events: events, mean: try nanos(in: itl, "mean"), max: try nanos(in: itl, "max"))
        }
        var wall: Int64 = 0
        if let text = json["intended_at"]?.string {
            guard let w = WallTime.parse(text) else {
                throw DecodeError(message: "\"intended_at\" is not an RFC 3339 time in \(WallTime.representableRange)")
            }
            wall = w
        }
        // intended_at is the run's start (whole microseconds) plus the offset, cut to microseconds.
        let (start, overflow) = wall.subtractingReportingOverflow(Int64(intended / 1000) * 1000)
        guard !overflow else { throw DecodeError(message: "\"intended_at\" minus \"intended_offset_ns\" is out of range") }
        self.init(
            seq: UInt64(seq),
            runStartWall: wall == 0 ? 0 : start,
            intended: Nanos(intended),
            sent: sent,
            late: json["late"]?.bool ?? false,
            method: optString("method") ?? "POST",
            url: url,
            model: optString("model"),
            status: status,
            latency: try nanos("latency_ms"),
            correctedLatency: try nanos("latency_corrected_ms"),
            ttfb: try nanos("ttfb_ms"),
            ttft: try nanos("ttft_ms"),
            interToken: interToken,
            bytesIn: try count("bytes_in"),
            bytesOut: try count("bytes_out"),
            error: optString("error"),
            provider: optString("provider"),
            attempts: try Self.attempts(json["attempts"]),
            tokens: tokens,
            traceID: try Self.traceID(json["trace_id"])
        )
    }

    /// A `trace_id`: 32 lowercase hex digits (what `traceparent` carries), or absent.
    static func traceID(_ value: JSONValue?) throws(DecodeError) -> String? {
        guard let value, !value.isNull else { return nil }
        guard let s = value.string, s.utf8.count == 32, s.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
            throw DecodeError(message: "\"trace_id\" is not 32 lowercase hex digits")
        }
        return s
    }

    /// The longest time a record may hold (about 31 years): sums of a few such values
    /// (sent + latency, start + offset) stay far inside 64 bits.
    public static let maxNanos: Nanos = 1_000_000_000_000_000_000
    /// The largest token or event count a record may hold: sums over billions of records stay inside 64 bits.
    public static let maxCount = 1_000_000_000_000

    /// A `*_ms` field: null, or milliseconds in 0...maxNanos/1e6; anything else (1e308, -1, "x") is an error.
    static func milliseconds(_ v: JSONValue?, _ key: String) throws(DecodeError) -> Nanos? {
        guard let v, !v.isNull else { return nil }
        guard let n = v.number, n.isFinite, n >= 0, n <= Double(maxNanos) / 1e6 else {
            throw DecodeError(message: "\"\(key)\" is not a number of milliseconds in 0...\(maxNanos / 1_000_000)")
        }
        return Nanos((n * 1e6).rounded())
    }

    /// The `attempts` array: `{"provider", "status"}`, or `{"provider", "status": null, "failure": word}`.
    static func attempts(_ v: JSONValue?) throws(DecodeError) -> [Attempt]? {
        guard let v, !v.isNull else { return nil }
        guard let items = v.array else { throw DecodeError(message: "\"attempts\" is not an array") }
        var out: [Attempt] = []
        for a in items.prefix(FailoverAttempts.maxEntries) {
            guard let p = a["provider"]?.string else { throw DecodeError(message: "an attempt without \"provider\"") }
            if let s = a["status"], !s.isNull {
                guard let n = s.int, (100...999).contains(n) else { throw DecodeError(message: "an attempt's \"status\" is not a status (100...999)") }
                out.append(Attempt(provider: p, status: n))
            } else {
                // Words as the header has them; a missing one is the gateway's fallback, `error`.
                let word = a["failure"]?.string ?? "error"
                let parsed = FailoverAttempts.parse("x=" + word).entries
                guard parsed.count == 1 else { throw DecodeError(message: "an attempt's \"failure\" is not a word: \(word.prefix(40))") }
                out.append(Attempt(provider: p, outcome: parsed[0].outcome))
            }
        }
        return out
    }

    /// Parses one line of a records file from its bytes (the fuzz entry): never traps.
    public init(bytes: [UInt8]) throws(DecodeError) {
        let json: JSONValue
        do { json = try JSONValue.parse(bytes: bytes) } catch { throw DecodeError(message: "invalid JSON: \(error)") }
        try self.init(json: json)
    }

    /// Parses one line of a records file.
    public init(line: String) throws(DecodeError) {
        let json: JSONValue
        do { json = try JSONValue.parse(line) } catch { throw DecodeError(message: "invalid JSON: \(error)") }
        try self.init(json: json)
    }
}

/// What a response says about who answered: the `x-failover-attempts` header first,
/// otherwise the body's `model`; token usage from `usage`. Works on plain JSON and on
/// server-sent events (`data: {...}` lines, the last `usage` wins).
public enum ResponseFacts {
    public static func extract(attemptsHeader: Substring?, body: [UInt8], isEventStream: Bool)
        -> (provider: String?, attempts: [Attempt]?, tokens: TokenUsage?) {
        var provider: String?
        var attempts: [Attempt]?
        if let header = attemptsHeader {
            let parsed = FailoverAttempts.parse(header).entries
            if !parsed.isEmpty {
                attempts = parsed
                provider = parsed.last?.provider
            }
        }
        var tokens: TokenUsage?
        var model: String?
        func take(_ bytes: UnsafeBufferPointer<UInt8>) {
            var parser = ModelUsageScanner(bytes: bytes)
            guard let (m, u) = try? parser.modelAndUsage() else { return }
            if model == nil, let m, !m.isEmpty { model = m }
            if let u { tokens = u }
        }
        if !body.isEmpty {
            body.withUnsafeBufferPointer { buf in
                if isEventStream {
                    // Each `data:` payload that is a JSON object.
                    SSE.forEachData(in: buf) { payload in
                        if payload.first == 0x7B { take(payload) }
                    }
                } else {
                    take(buf)
                }
            }
        }
        if provider == nil { provider = model }
        return (provider, attempts, tokens)
    }
}

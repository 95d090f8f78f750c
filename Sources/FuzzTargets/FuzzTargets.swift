import Driver
import Foundation
import Gateway
import Lab
import Upstreams
import Watch
import Wire

/// One parser fed hostile bytes. `run` must never trap; it returns a description when a
/// property the parser promises does not hold (the fuzzer then stops on it as a finding).
public struct FuzzTarget: Sendable {
    public let name: String
    public let summary: String
    public let run: @Sendable (_ bytes: [UInt8]) -> String?
}

/// Every fuzz target of the project, by name. `scripts/fuzz` runs them under libFuzzer;
/// the `FuzzTests` suite runs their committed corpus (`fuzz/corpus/NAME/`) in every test run.
public enum FuzzTargets {
    public static let all: [FuzzTarget] = [
        FuzzTarget(name: "rate-limit-hint", summary: "429 reset hints from header lines", run: rateLimitHint),
        FuzzTarget(name: "go-duration", summary: "Go/Gateway API durations", run: goDuration),
        FuzzTarget(name: "cel", summary: "the unhealthyCondition CEL subset", run: cel),
        FuzzTarget(name: "stand-in-behavior", summary: "stand-in behaviour text (admin API, Scenario, --stand-in)", run: standInBehavior),
        FuzzTarget(name: "mock-openai", summary: "the mock OpenAI's request parse and answer", run: mockOpenAI),
        FuzzTarget(name: "expectation", summary: "--expect expressions", run: expectation),
        FuzzTarget(name: "units", summary: "driver durations, rates and speeds", run: units),
        FuzzTarget(name: "plan-yaml", summary: "drive --plan files", run: planYAML),
        FuzzTarget(name: "lab-yaml", summary: "lab files: manifests and the Scenario", run: labYAML),
        FuzzTarget(name: "record-line", summary: "one line of a --record file", run: recordLine),
        FuzzTarget(name: "record-line-fast", summary: "report's byte-level reader of our own record lines, against the general reader", run: recordLineFast),
        FuzzTarget(name: "replay-line", summary: "one line of a replay file (records or agentgateway access log)", run: replayLine),
        FuzzTarget(name: "attempts-header", summary: "x-failover-attempts as the driver reads it", run: attemptsHeader),
        FuzzTarget(name: "http-request", summary: "client bytes through the gateway's parser, head checks and header forwarding", run: httpRequest),
        FuzzTarget(name: "http-response", summary: "upstream bytes through the gateway's response parser", run: httpResponse),
        FuzzTarget(name: "model-splice", summary: "the pinned model spliced into a client's JSON body", run: modelSplice),
        FuzzTarget(name: "config-dump", summary: "an admin port's /config_dump as watch reads it", run: configDump),
        FuzzTarget(name: "watch-log-line", summary: "one access-log line as watch reads it (kubectl --prefix too)", run: watchLogLine),
        FuzzTarget(name: "prometheus-text", summary: "Prometheus text as watch scrapes it", run: prometheusText),
        FuzzTarget(name: "traceparent", summary: "a client's W3C traceparent header and the OTEL_* trace settings", run: traceParent),
        FuzzTarget(name: "otlp-answer", summary: "a trace collector's answer head as the exporter reads it", run: otlpAnswer),
        FuzzTarget(name: "stream-usage", summary: "a streamed answer's usage read as its events pass, in pieces", run: streamUsage),
    ]

    public static func named(_ name: String) -> FuzzTarget? {
        all.first { $0.name == name }
    }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    // MARK: Gateway

    /// Lines `name: value`; the first line, when it is a number, is "now" in Unix seconds.
    static func rateLimitHint(_ bytes: [UInt8]) -> String? {
        var headers: [(String, String)] = []
        for line in text(bytes).split(separator: "\n").prefix(64) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
        }
        guard let delay = RateLimitHint.resetDelay(headers: headers, now: Date(timeIntervalSince1970: 1_790_000_000)) else { return nil }
        if delay < .zero { return "negative reset delay \(delay) from \(headers)" }
        return nil
    }

    /// An upstream's event stream read for its usage as its events pass. The first two bytes
    /// choose where the rest is cut into reads. Never more than one event's worth (the limit)
    /// is held between reads; and when no event is longer than the limit, the pieces read
    /// the same model and token counts as the whole stream in one read.
    static func streamUsage(_ bytes: [UInt8]) -> String? {
        guard bytes.count >= 2 else { return nil }
        let body = Array(bytes[2...])
        let step = Int(bytes[0]) + 1
        let offset = Int(bytes[1])
        let cuts = stride(from: offset % step + 1, to: body.count, by: step).map { $0 }
        let limit = WireFuzzEntry.streamUsageLimit
        let pieces = WireFuzzEntry.streamUsage(body, cuts: cuts)
        if pieces.mostHeld > limit { return "held \(pieces.mostHeld) bytes between reads, over \(limit)" }
        let whole = WireFuzzEntry.streamUsage(body, cuts: [])
        if whole.mostHeld > limit { return "held \(whole.mostHeld) bytes after one read, over \(limit)" }
        // Events end at a blank line (LF LF, or LF CR LF): is any longer than the limit?
        var longest = 0
        var start = 0
        var i = 1
        while i < body.count {
            if body[i] == 0x0A && (body[i - 1] == 0x0A || (i >= 2 && body[i - 1] == 0x0D && body[i - 2] == 0x0A)) {
                longest = max(longest, i + 1 - start)
                start = i + 1
            }
            i += 1
        }
        longest = max(longest, body.count - start)
        guard longest <= limit else { return nil }
        if pieces.model != whole.model || pieces.input != whole.input || pieces.output != whole.output {
            return "in pieces of \(step): \(String(describing: pieces)); whole: \(String(describing: whole))"
        }
        return nil
    }

    /// A collector's answer as the trace exporter reads it: the end of its head, then the
    /// head. A status is a real one, a length is never negative, and a kept connection
    /// always knows how much body to read.
    static func otlpAnswer(_ bytes: [UInt8]) -> String? {
        let end = OTLPAnswerHead.endOfHead(bytes, from: 0)
        if let end, end < 4 || end > bytes.count || bytes[(end - 4)..<end].elementsEqual([13, 10, 13, 10]) == false {
            return "end of head \(end) is not just past a blank line"
        }
        let head = OTLPAnswerHead(bytes[..<(end ?? bytes.count)])
        if let status = head.status, !(100...599).contains(status) { return "status \(status)" }
        if let length = head.contentLength, length < 0 { return "content-length \(length)" }
        if head.keepAlive && head.contentLength == nil { return "kept alive without a length" }
        if head.status == nil && head.keepAlive { return "kept alive without a status" }
        return nil
    }

    /// A `traceparent` value: what is accepted comes back out unchanged (lowercase, version
    /// 00, 55 bytes) when it was version 00, but for flags other than `sampled`, which go
    /// out as zero (W3C trace context: unknown flags are not passed on). The same bytes as
    /// OTEL_* values must not trap.
    static func traceParent(_ bytes: [UInt8]) -> String? {
        if let p = TraceParent(header: bytes) {
            if !p.traceID.isValid || !p.spanID.isValid { return "zero id accepted from \(text(bytes).debugDescription)" }
            var expected = bytes
            if expected.count == 55 { expected[53] = 0x30; expected[54] = p.sampled ? 0x31 : 0x30 }
            if bytes.count == 55 && bytes.starts(with: Array("00-".utf8)) && Array(p.header.utf8) != expected {
                return "\(text(bytes).debugDescription) read back as \(p.header)"
            }
        }
        let value = text(bytes)
        for name in ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_TRACES_SAMPLER_ARG", "OTEL_EXPORTER_OTLP_TIMEOUT"] {
            var env = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces", name: value]
            if name == "OTEL_TRACES_SAMPLER_ARG" { env["OTEL_TRACES_SAMPLER"] = "traceidratio" }
            if name == "OTEL_EXPORTER_OTLP_ENDPOINT" { env.removeValue(forKey: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") }
            if let options = try? TracingOptions.fromEnvironment(env, flagEndpoint: nil) {
                for (k, v) in options.headers where (k + v).utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
                    return "control bytes accepted in header \(k.debugDescription)"
                }
                if let e = options.endpoint, (e.host + e.path).utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F }) {
                    return "endpoint \(e) has spaces or control bytes"
                }
            }
        }
        return nil
    }

    static func goDuration(_ bytes: [UInt8]) -> String? {
        guard let d = try? GoDuration.parse(text(bytes)) else { return nil }
        if d < .zero { return "negative duration \(d) from \(text(bytes).debugDescription)" }
        return nil
    }

    static func cel(_ bytes: [UInt8]) -> String? {
        guard let condition = try? UnhealthyCondition.parse(text(bytes)) else { return nil }
        for code in [0, 200, 429, 500, 503, 599, Int.max, Int.min] { _ = condition.evaluate(code: code) }
        // What it prints must read back as the same condition.
        guard let again = try? UnhealthyCondition.parse(condition.description) else {
            return "\(condition.description.debugDescription) does not parse again"
        }
        if again != condition { return "\(condition.description.debugDescription) reads back as \(again)" }
        return nil
    }

    /// Client bytes as the gateway reads them. Properties: the same requests whatever the
    /// read sizes; no framing or hop-by-hop header is ever forwarded; targets are
    /// origin-form with no dot segments left.
    static func httpRequest(_ bytes: [UInt8]) -> String? {
        let whole: [WireFuzzEntry.Request]
        do { whole = try WireFuzzEntry.parseRequests(bytes) } catch { return nil }
        for size in [1, 7] {
            guard let cut = try? WireFuzzEntry.parseRequests(bytes, readSize: size) else {
                return "refused when read \(size) bytes at a time, accepted whole"
            }
            if cut.map(\.target) != whole.map(\.target) || cut.map(\.body) != whole.map(\.body) {
                return "different requests when read \(size) bytes at a time"
            }
        }
        let framing: Set<String> = ["content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade", "host", "proxy-connection"]
        for request in whole {
            for header in request.forwardedHeaders where framing.contains(header.name.lowercased()) {
                return "forwarded the client's \(header.name)"
            }
            if !request.target.hasPrefix("/") { return "target \(request.target.debugDescription) is not origin-form" }
            let path = request.target.split(separator: "?", maxSplits: 1).first ?? ""
            if path.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0 == ".." || $0 == "." }) {
                return "target \(request.target.debugDescription) keeps a dot segment"
            }
        }
        return nil
    }

    static func httpResponse(_ bytes: [UInt8]) -> String? {
        guard let statuses = try? WireFuzzEntry.parseResponses(bytes) else { return nil }
        if let bad = statuses.first(where: { !(100...599).contains($0) }) { return "accepted status \(bad)" }
        return nil
    }

    /// After the splice, every reading of `model` gives the pinned one: Foundation's
    /// decoder (which keeps the first of duplicate keys) and a last-key reading of our own.
    static func modelSplice(_ bytes: [UInt8]) -> String? {
        let pinned = "pinned-model"
        guard case .spliced(let out) = ModelSplice.apply(bytes, model: pinned) else { return nil }
        // Only bodies Foundation takes as JSON are forwarded; the property is about those.
        guard (try? JSONSerialization.jsonObject(with: Data(bytes))) is [String: Any] else { return nil }
        struct First: Decodable { var model: String? }
        let first = try? JSONDecoder().decode(First.self, from: Data(out))
        if first?.model != pinned { return "first-key reading gives \(String(describing: first?.model))" }
        let last = lastTopLevelValue(of: "model", in: out)
        if last != pinned { return "last-key reading gives \(String(describing: last))" }
        return nil
    }

    /// The last top-level member whose key, unescaped, is `key`, decoded as a string: an
    /// independent walk (depth and strings only; keys and values decoded by Foundation).
    static func lastTopLevelValue(of key: String, in bytes: [UInt8]) -> String? {
        var depth = 0
        var i = 0
        var found: String?
        func stringEnd(_ start: Int) -> Int? {
            var j = start + 1
            while j < bytes.count {
                if bytes[j] == UInt8(ascii: "\\") { j += 2; continue }
                if bytes[j] == UInt8(ascii: "\"") { return j + 1 }
                j += 1
            }
            return nil
        }
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                guard let end = stringEnd(i) else { return found }
                if depth == 1 {
                    var j = end
                    while j < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[j]) { j += 1 }
                    if j < bytes.count, bytes[j] == UInt8(ascii: ":"),
                       let name = (try? JSONSerialization.jsonObject(with: Data(bytes[i..<end]), options: .fragmentsAllowed)) as? String,
                       name == key {
                        // The value: up to the next top-level comma or the closing brace.
                        var k = j + 1
                        var d = 0
                        while k < bytes.count {
                            let b = bytes[k]
                            if b == UInt8(ascii: "\"") { guard let e = stringEnd(k) else { break }; k = e; continue }
                            if b == UInt8(ascii: "{") || b == UInt8(ascii: "[") { d += 1 }
                            if b == UInt8(ascii: "}") || b == UInt8(ascii: "]") { if d == 0 { break }; d -= 1 }
                            if b == UInt8(ascii: ","), d == 0 { break }
                            k += 1
                        }
                        found = (try? JSONSerialization.jsonObject(with: Data(bytes[(j + 1)..<k]), options: .fragmentsAllowed)) as? String
                        i = k
                        continue
                    }
                }
                i = end
                continue
            }
            if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") { depth += 1 }
            if c == UInt8(ascii: "}") || c == UInt8(ascii: "]") { depth -= 1 }
            i += 1
        }
        return found
    }

    // MARK: Upstreams

    static func standInBehavior(_ bytes: [UInt8]) -> String? {
        guard let setting = try? StandInSetting.parse(text(bytes)) else { return nil }
        _ = setting.description
        _ = setting.behavior?.shortName
        if let shape = setting.shape {
            // The shaping arithmetic on whatever the text set: it must not trap either.
            var rng = SeededRandom(seed: UInt64(bytes.count))
            _ = shape.firstTokenNanos(tokenDelayNanos: .max)
            _ = shape.interTokenNanos(tokenDelayNanos: .max, using: &rng)
            _ = shape.outputTokens(requested: ModelShape.mostTokens, sentence: 3, using: &rng)
            // Its description reads back to the same shape.
            guard (try? ModelShape.parse(shape.description)) == shape else { return "shape \(shape) does not read back" }
        }
        return nil
    }

    static func mockOpenAI(_ bytes: [UInt8]) -> String? {
        let prompt = text(bytes)
        _ = MockOpenAI.reply(to: prompt)
        _ = MockOpenAI.tokenCount(prompt)
        if let request = MockOpenAI.parse(Data(bytes)) {
            let body = MockOpenAI.completion(for: request, id: "chatcmpl-fuzz", created: 0)
            if (try? JSONSerialization.jsonObject(with: Data(body.utf8))) == nil {
                return "the completion is not JSON: \(body.prefix(200))"
            }
            _ = MockOpenAI.streamEvents(for: request, id: "chatcmpl-fuzz", created: 0)
        }
        return nil
    }

    // MARK: Driver

    static func expectation(_ bytes: [UInt8]) -> String? {
        _ = try? Expectation(parsing: text(bytes))
        return nil
    }

    static func units(_ bytes: [UInt8]) -> String? {
        let s = text(bytes)
        _ = try? Units.duration(s)
        if let r = try? Units.rate(s), !(r.isFinite && r >= 0) { return "rate \(r) from \(s.debugDescription)" }
        if let v = Units.parseSpeed(s), !(v.isFinite && v > 0) { return "speed \(v) from \(s.debugDescription)" }
        return nil
    }

    static func planYAML(_ bytes: [UInt8]) -> String? {
        _ = try? PlanFile.parse(text(bytes), path: "fuzz.yaml")
        return nil
    }

    static func labYAML(_ bytes: [UInt8]) -> String? {
        // With the Lab's checks: a Scenario's steps and traffic go through the plan, expectation
        // and behaviour readers as `check` and `test` read them.
        _ = try? ManifestLoader.load(sources: [(file: "fuzz.yaml", text: text(bytes))], checks: LabScript.diagnostics)
        return nil
    }

    static func recordLine(_ bytes: [UInt8]) -> String? {
        _ = try? RequestRecord(bytes: bytes)
        return nil
    }

    /// The fast reader never traps, and whatever it accepts the general reader reads the same.
    static func recordLineFast(_ bytes: [UInt8]) -> String? {
        guard let fast = RequestRecord.fastRead(bytes) else { return nil }
        guard let general = try? RequestRecord(bytes: bytes) else {
            return "the fast reader took a line the general reader refuses: \(text(bytes).debugDescription)"
        }
        if fast != general { return "the readers disagree on \(text(bytes).debugDescription):\n fast    \(fast)\n general \(general)" }
        // Written out again by our writer, the line is read the same by both.
        let again = fast.jsonLine
        if let back = RequestRecord.fastRead(Array(again.utf8)), back != (try? RequestRecord(line: again)) {
            return "the readers disagree on our own line \(again)"
        }
        return nil
    }

    static func replayLine(_ bytes: [UInt8]) -> String? {
        guard case .entry(let entry) = ReplayParser.parseLine(bytes: bytes) else { return nil }
        // What replay sends goes onto the wire as request text: a token method and a
        // target with no spaces or control bytes, or it must not be an entry at all.
        let tchar = Set("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
        if entry.method.isEmpty || !entry.method.utf8.allSatisfy(tchar.contains) {
            return "replay would send the method \(entry.method.debugDescription)"
        }
        if entry.target.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) {
            return "replay would send the target \(entry.target.debugDescription)"
        }
        let builder = ReplayRequestBuilder(target: "http://127.0.0.1:9")
        _ = builder.request(for: entry)
        return nil
    }

    /// Whatever it reads, written again and read back, gives the same entries.
    static func attemptsHeader(_ bytes: [UInt8]) -> String? {
        let parsed = FailoverAttempts.parse(bytes: bytes)
        let again = FailoverAttempts.parse(FailoverAttempts.value(parsed.entries))
        if again.entries != parsed.entries { return "\(parsed.entries) reads back as \(again.entries)" }
        return nil
    }

    // MARK: Watch

    /// The dump's reading keeps its promises: states and numbers in range, bounded sizes.
    static func configDump(_ bytes: [UInt8]) -> String? {
        guard case .success(let dump) = ConfigDumpParser.parse(bytes: bytes) else { return nil }
        var state = WatchState()
        _ = state.apply(.dump(replica: "r", at: 1, dump))
        for b in dump.backends {
            for p in b.groups.joined() {
                if let h = p.health, !(0...1).contains(h) { return "health \(h) outside 0...1" }
                if let l = p.latency, !(l >= 0 && l.isFinite) { return "latency \(l)" }
                for n in [p.inFlight, p.totalRequests, p.consecutiveFailures, p.timesEjected] { if let n, n < 0 { return "negative count \(n)" } }
                if case .evicted(let r?) = p.state, !(r >= 0 && r.isFinite) { return "remaining \(r)" }
                if p.name.isEmpty || p.name.unicodeScalars.contains(where: { $0.value < 0x20 }) { return "name \(p.name.debugDescription)" }
            }
        }
        return nil
    }

    /// Lines split by newline (the first may be a `[pod/NAME/c]` prefix), through the state.
    static func watchLogLine(_ bytes: [UInt8]) -> String? {
        var state = WatchState(assumeRetryAfter: 60)
        var splitter = LineSplitter(maxLine: 4096)
        var at = 0.0
        var failure: String?
        bytes.withUnsafeBytes { raw in
            splitter.feed(raw) { line in
                at += 0.5
                switch AccessLogParser.parse(bytes: line) {
                case .request(let r):
                    if let s = r.status, !(0...999).contains(s) { failure = "status \(s)" }
                    if let l = r.latency, !(l >= 0 && l.isFinite) { failure = "latency \(l)" }
                    for o in state.apply(.request(replica: r.replica ?? "r", at: at, r)) { _ = WatchLines.json(o); _ = WatchLines.headless(o) }
                case .skipped(let why):
                    _ = state.apply(.skipped(replica: "r", at: at, why))
                }
            }
        }
        _ = state.tick(now: at + 120)
        _ = WatchLines.summary(state)
        return failure
    }

    static func prometheusText(_ bytes: [UInt8]) -> String? {
        let c = PrometheusText.requestCounts(text(bytes))
        for (key, v) in c.counts where !(v >= 0 && v.isFinite) { return "\(key): \(v)" }
        return nil
    }
}

import Foundation
import Wire

/// What a stand-in does with each request; switchable while it runs.
public enum StandInBehavior: Sendable, Hashable, CustomStringConvertible {
    /// Answers as OpenAI would.
    case healthy
    /// Always 429 with this `retry-after` (seconds), the lab's http-429 server.
    case always429(retryAfter: Int)
    /// A token bucket: `rate` requests a second, bursts of `burst`; over it, 429 with `x-ratelimit-*` headers.
    case rateLimited(rate: Double, burst: Int)
    /// Answers `status` (a 5xx) to this share of requests (0...1), the rest healthy.
    case serverErrors(status: Int, share: Double)
    /// Healthy, after this many milliseconds (plus up to `jitterMs` more, uniformly).
    case slow(delayMs: Int, jitterMs: Int)
    /// Reads the request and never answers.
    case hang
    /// Closes every connection at once: as close to refusing as a live listener gets.
    case down

    public var description: String {
        switch self {
        case .healthy: return "healthy"
        case .always429(let retryAfter): return "429 (retry-after \(retryAfter))"
        case .rateLimited(let rate, let burst): return "rate-limited \(rate)/s burst \(burst)"
        case .serverErrors(let status, let share): return "\(status) x \(Int(share * 100))%"
        case .slow(let delay, let jitter): return jitter > 0 ? "slow \(delay)±\(jitter)ms" : "slow \(delay)ms"
        case .hang: return "hang"
        case .down: return "down"
        }
    }

    /// The short name the dashboard cycles through.
    public var shortName: String {
        switch self {
        case .healthy: return "healthy"
        case .always429: return "429"
        case .rateLimited: return "rate-limited"
        case .serverErrors: return "5xx"
        case .slow: return "slow"
        case .hang: return "hang"
        case .down: return "down"
        }
    }
}

extension StandInBehavior {
    /// A behaviour text that could not be read.
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public let text: String
        public let reason: String
        public var description: String {
            "invalid stand-in behavior \"\(text)\": \(reason) (expected healthy, 429 [retry-after=S], rate-limited R/s [burst=N], 5xx|503 [P%], slow MSms [jitter=MSms], hang or down; then, for the mock OpenAI, ttft D, tokens N|A-B|max_tokens, rate R/s, jitter P% or model default)"
        }
    }

    /// The longest `slow` delay or jitter, in milliseconds (one hour); `hang` never answers.
    public static let longestDelayMs = 3_600_000
    /// The highest `rate-limited` rate (requests a second) and burst.
    public static let highestRate = 1_000_000.0
    public static let largestBurst = 1_000_000

    /// Reads the forms lab files and the admin API use: `healthy`, `429 retry-after=60`,
    /// `rate-limited 5/s burst=10`, `503 50%`, `5xx`, `slow 200ms jitter=50ms`, `hang`, `down`.
    /// The text is a user's or an admin caller's: every number is checked, and anything
    /// else is a `ParseError` saying what was wrong (public for the fuzz target).
    public static func parse(_ text: String) throws(ParseError) -> StandInBehavior {
        // Bounded before anything else: a behaviour is a few words.
        guard text.utf8.count <= 200 else { throw ParseError(text: String(text.prefix(40)) + "...", reason: "longer than 200 characters") }
        let words = text.lowercased().split(whereSeparator: { $0.isWhitespace }).map(String.init)
        guard let head = words.first else { throw ParseError(text: text, reason: "empty") }
        var options: [String: String] = [:]
        var positional: [String] = []
        for word in words.dropFirst() {
            if let eq = word.firstIndex(of: "=") {
                options[String(word[..<eq])] = String(word[word.index(after: eq)...])
            } else {
                positional.append(word)
            }
        }
        /// Refuses options and extra words the behaviour does not take, instead of ignoring them.
        func expect(options known: [String], positional most: Int) throws(ParseError) {
            if let unknown = options.keys.sorted().first(where: { !known.contains($0) }) {
                let allowed = known.isEmpty ? "it takes none" : "it takes \(known.joined(separator: ", "))"
                throw ParseError(text: text, reason: "unknown option \(unknown)= for \(head); \(allowed)")
            }
            if positional.count > most { throw ParseError(text: text, reason: "unexpected \"\(positional[most])\" after \(head)") }
        }
        /// `250ms`, `1.5s` or a bare number of milliseconds, checked to 0...longestDelayMs.
        func milliseconds(_ value: String?, what: String) throws(ParseError) -> Int? {
            guard let value else { return nil }
            let isMs = value.hasSuffix("ms")
            let isS = !isMs && value.hasSuffix("s")
            let digits = isMs ? String(value.dropLast(2)) : isS ? String(value.dropLast()) : value
            guard let number = Double(digits), number.isFinite, number >= 0 else {
                throw ParseError(text: text, reason: "\(what) \(value) is not a duration (like 200ms or 1.5s)")
            }
            let ms = isS ? number * 1000 : number
            guard ms <= Double(longestDelayMs) else {
                throw ParseError(text: text, reason: "\(what) \(value) is longer than \(longestDelayMs / 60_000) minutes; use hang for no answer")
            }
            return Int(ms.rounded())  // checked: 0 <= ms <= longestDelayMs above
        }
        switch head {
        case "healthy":
            try expect(options: [], positional: 0)
            return .healthy
        case "429":
            try expect(options: ["retry-after"], positional: 1)
            let seconds = options["retry-after"] ?? positional.first ?? "60"
            guard let retryAfter = Int(seconds), retryAfter >= 0 else {
                throw ParseError(text: text, reason: "retry-after must be whole seconds (0 to \(Int.max)), found \(seconds)")
            }
            return .always429(retryAfter: retryAfter)
        case "rate-limited":
            try expect(options: ["burst"], positional: 1)
            let rateWord = positional.first ?? "1/s"
            let rateText = rateWord.hasSuffix("/s") ? String(rateWord.dropLast(2)) : rateWord
            guard let rate = Double(rateText), rate.isFinite, rate > 0, rate <= highestRate else {
                throw ParseError(text: text, reason: "rate must be requests a second above 0 and at most \(Int(highestRate)), like 5/s; found \(rateWord)")
            }
            let burstText = options["burst"] ?? String(max(1, Int(rate)))
            guard let burst = Int(burstText), (1...largestBurst).contains(burst) else {
                throw ParseError(text: text, reason: "burst must be a whole number from 1 to \(largestBurst), found \(burstText)")
            }
            return .rateLimited(rate: rate, burst: burst)
        case _ where head == "5xx" || head.allSatisfy(\.isASCII) && Int(head).map({ (500...599).contains($0) }) == true:
            try expect(options: [], positional: 1)
            let status = Int(head) ?? 500
            let shareWord = positional.first ?? "100%"
            let shareText = shareWord.hasSuffix("%") ? String(shareWord.dropLast()) : shareWord
            guard let percent = Double(shareText), (0...100).contains(percent) else {
                throw ParseError(text: text, reason: "share must be a percentage from 0% to 100%, found \(shareWord)")
            }
            return .serverErrors(status: status, share: percent / 100)
        case "slow":
            try expect(options: ["jitter"], positional: 1)
            guard let delay = try milliseconds(positional.first ?? "500ms", what: "delay") else { throw ParseError(text: text, reason: "missing delay") }
            return .slow(delayMs: delay, jitterMs: try milliseconds(options["jitter"], what: "jitter") ?? 0)
        case "hang":
            try expect(options: [], positional: 0)
            return .hang
        case "down":
            try expect(options: [], positional: 0)
            return .down
        default:
            throw ParseError(text: text, reason: "unknown behavior \(head)")
        }
    }
}

/// What one `--stand-in NAME=...`, admin or Scenario `behavior` text sets: a behaviour, a
/// model shape, or both, as in `503 50% ttft 300ms tokens 200`. The shape starts at the
/// first of its words (`ttft`, `tokens`, `rate`, `jitter`) or at `model`; `model default`
/// puts back today's answer.
public struct StandInSetting: Sendable, Hashable {
    public var behavior: StandInBehavior?
    public var shape: ModelShape?

    public init(behavior: StandInBehavior? = nil, shape: ModelShape? = nil) {
        self.behavior = behavior
        self.shape = shape
    }

    /// Reads a setting; errors are the behaviour's or the shape's, with what was wrong.
    public static func parse(_ text: String) throws(StandInBehavior.ParseError) -> StandInSetting {
        guard text.utf8.count <= 200 else { throw .init(text: String(text.prefix(40)) + "...", reason: "longer than 200 characters") }
        let words = text.split(whereSeparator: { $0.isWhitespace })
        guard let start = words.firstIndex(where: { ModelShape.keys.contains($0.lowercased()) || $0.lowercased() == "model" }) else {
            return StandInSetting(behavior: try StandInBehavior.parse(text))
        }
        let behaviorWords = words[..<start]
        var shapeWords = words[start...]
        if shapeWords.first?.lowercased() == "model" { shapeWords = shapeWords.dropFirst() }
        var setting = StandInSetting()
        if !behaviorWords.isEmpty { setting.behavior = try StandInBehavior.parse(behaviorWords.joined(separator: " ")) }
        do {
            setting.shape = try ModelShape.parse(shapeWords.isEmpty ? "default" : shapeWords.joined(separator: " "))
        } catch {
            throw .init(text: text, reason: error.reason)
        }
        return setting
    }

    public var description: String {
        [behavior?.description, shape.map { "model " + $0.description }].compactMap { $0 }.joined(separator: ", ")
    }
}

/// The admin API's `"model"` value: the text form, or `{"ttft": "300ms", "tokens": "50-200"
/// (or 200), "rate": "50/s" (or 50), "jitter": "10%" (or 10)}`. A caller's JSON: checked.
public enum ModelShapeJSON {
    public enum Read {
        case success(ModelShape)
        case failure(String)
    }

    public static func read(_ value: Any) -> Read {
        if let text = value as? String {
            do { return .success(try ModelShape.parse(text)) } catch { return .failure(error.description) }
        }
        guard let object = value as? [String: Any] else {
            return .failure("model must be a text like \"ttft 300ms tokens 200 rate 50/s\" or an object with ttft, tokens, rate, jitter")
        }
        if let unknown = object.keys.sorted().first(where: { !ModelShape.keys.contains($0) }) {
            return .failure("model: unknown key \(unknown); it takes ttft, tokens, rate, jitter")
        }
        var words: [String] = []
        for key in ["ttft", "tokens", "rate", "jitter"] {
            guard let v = object[key] else { continue }
            // Numbers are written back as text: `Double.description` of any finite value is one word.
            let text: String
            if let s = v as? String, !s.contains(where: \.isWhitespace) {
                text = s
            } else if let n = v as? NSNumber, String(cString: n.objCType) != "c" {  // "c": JSON true/false (`is Bool` holds for 0 and 1 too)
                let d = n.doubleValue
                text = d == d.rounded() && abs(d) < 1e15 ? String(Checked.clampedInt(d)) : d.description
            } else {
                return .failure("model.\(key) must be a string or a number, like \"300ms\", 200, \"50/s\", \"10%\"")
            }
            words += [key, text]
        }
        do { return .success(try ModelShape.parse(words.isEmpty ? "default" : words.joined(separator: " "))) } catch { return .failure(error.description) }
    }
}

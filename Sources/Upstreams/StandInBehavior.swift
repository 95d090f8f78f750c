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
            "invalid stand-in behavior \"\(text)\": \(reason) (expected healthy, 429 [retry-after=S], rate-limited R/s [burst=N], 5xx|503 [P%], slow MSms [jitter=MSms], hang or down)"
        }
    }

    /// Reads the forms lab files and the admin API use: `healthy`, `429 retry-after=60`,
    /// `rate-limited 5/s burst=10`, `503 50%`, `5xx`, `slow 200ms jitter=50ms`, `hang`, `down`.
    public static func parse(_ text: String) throws(ParseError) -> StandInBehavior {
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
        func milliseconds(_ value: String?) throws(ParseError) -> Int? {
            guard let value else { return nil }
            let digits = value.hasSuffix("ms") ? String(value.dropLast(2)) : value.hasSuffix("s") ? String(value.dropLast()) : value
            guard let number = Double(digits), number >= 0 else { throw ParseError(text: text, reason: "\(value) is not a duration") }
            return Int(value.hasSuffix("ms") || !value.hasSuffix("s") ? number : number * 1000)
        }
        switch head {
        case "healthy":
            return .healthy
        case "429":
            let seconds = options["retry-after"] ?? positional.first ?? "60"
            guard let retryAfter = Int(seconds), retryAfter >= 0 else { throw ParseError(text: text, reason: "retry-after must be whole seconds") }
            return .always429(retryAfter: retryAfter)
        case "rate-limited":
            let rateText = (positional.first ?? "1/s").replacingOccurrences(of: "/s", with: "")
            guard let rate = Double(rateText), rate > 0 else { throw ParseError(text: text, reason: "rate must be requests a second, like 5/s") }
            guard let burst = Int(options["burst"] ?? String(max(1, Int(rate)))), burst >= 1 else { throw ParseError(text: text, reason: "burst must be a whole number") }
            return .rateLimited(rate: rate, burst: burst)
        case _ where head == "5xx" || Int(head).map({ (500...599).contains($0) }) == true:
            let status = Int(head) ?? 500
            let shareText = (positional.first ?? "100%").replacingOccurrences(of: "%", with: "")
            guard let percent = Double(shareText), (0...100).contains(percent) else { throw ParseError(text: text, reason: "share must be a percentage") }
            return .serverErrors(status: status, share: percent / 100)
        case "slow":
            guard let delay = try milliseconds(positional.first ?? "500ms") else { throw ParseError(text: text, reason: "missing delay") }
            return .slow(delayMs: delay, jitterMs: try milliseconds(options["jitter"]) ?? 0)
        case "hang":
            return .hang
        case "down":
            return .down
        default:
            throw ParseError(text: text, reason: "unknown behavior \(head)")
        }
    }
}

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

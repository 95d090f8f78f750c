/// How the mock OpenAI paces and sizes an answer, like a model would: time to first token,
/// tokens a second with jitter, output length. In Wire because both the Scenario reader
/// (Gateway, which reports file:line) and the stand-in (Upstreams) read the same text.
///
/// Text form (words in pairs, any order, each at most once):
/// `ttft 300ms tokens 200 rate 50/s jitter 10%`, `tokens 50-200`, `tokens max_tokens`,
/// or `default` for today's answer. A knob left out keeps today's behaviour: the first
/// token after one token delay, the fixed sentence, the stand-in's `tokenDelay` between tokens.
public struct ModelShape: Sendable, Hashable, CustomStringConvertible {
    /// How many tokens an answer has.
    public enum Length: Sendable, Hashable {
        /// Exactly this many (cut to the request's `max_tokens` when it asks for fewer).
        case fixed(Int)
        /// Uniformly drawn from this range, then cut like `fixed`.
        case range(Int, Int)
        /// The request's `max_tokens` / `max_completion_tokens` (capped at `mostTokens`);
        /// a request without one gets the fixed sentence.
        case maxTokens
    }

    /// Delay before the first content token, counted from the answer's start (after any `latency`/`slow`).
    public var ttftNanos: Int64?
    public var length: Length?
    /// Tokens a second.
    public var rate: Double?
    /// Each inter-token delay is drawn uniformly from mean × (1 ± jitterPercent/100); 0...100
    /// (kept as the percentage given, so the text form reads back exactly).
    public var jitterPercent: Double

    public init(ttftNanos: Int64? = nil, length: Length? = nil, rate: Double? = nil, jitterPercent: Double = 0) {
        self.ttftNanos = ttftNanos
        self.length = length
        self.rate = rate
        self.jitterPercent = jitterPercent
    }

    /// The most tokens one answer has (a client's `max_tokens` is capped here).
    public static let mostTokens = 100_000
    /// The highest and lowest token rates (tokens a second).
    public static let highestRate = 100_000.0
    public static let lowestRate = 0.001
    /// The longest time to first token: one hour, as the stand-ins' other delays.
    public static let longestTTFTNanos: Int64 = 3_600_000_000_000

    /// True when nothing is set: the answer is exactly today's.
    public var isDefault: Bool { self == ModelShape() }

    public var description: String {
        if isDefault { return "default" }
        var words: [String] = []
        if let ttftNanos { words.append("ttft \(Self.format(nanos: ttftNanos))") }
        switch length {
        case .fixed(let n)?: words.append("tokens \(n)")
        case .range(let a, let b)?: words.append("tokens \(a)-\(b)")
        case .maxTokens?: words.append("tokens max_tokens")
        case nil: break
        }
        if let rate { words.append("rate \(Self.format(rate))/s") }
        if jitterPercent > 0 { words.append("jitter \(Self.format(jitterPercent))%") }
        return words.joined(separator: " ")
    }

    static func format(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String(x)  // checked: integral and below 1e15
    }

    static func format(nanos: Int64) -> String {
        nanos % 1_000_000 == 0 ? "\(nanos / 1_000_000)ms" : "\(Double(nanos) / 1e6)ms"
    }

    // MARK: Parsing

    public struct ParseError: Error, CustomStringConvertible, Sendable, Equatable {
        public let text: String
        public let reason: String
        public var description: String {
            "invalid model shape \"\(text)\": \(reason) (expected words like ttft 300ms, tokens 200 | 50-200 | max_tokens, rate 50/s, jitter 10%, or default)"
        }
    }

    /// The words that start a shape inside a longer stand-in setting.
    public static let keys: Set<String> = ["ttft", "tokens", "rate", "jitter"]

    /// Reads the text form. Every number is a user's: checked, with a reason when refused.
    public static func parse(_ text: String) throws(ParseError) -> ModelShape {
        guard text.utf8.count <= 200 else { throw ParseError(text: String(text.prefix(40)) + "...", reason: "longer than 200 characters") }
        let words = text.lowercased().split(whereSeparator: { $0.isWhitespace }).map(String.init)
        if words == ["default"] { return ModelShape() }
        guard !words.isEmpty else { throw ParseError(text: text, reason: "empty") }
        var shape = ModelShape()
        var seen: Set<String> = []
        var i = 0
        while i < words.count {
            let key = words[i]
            guard keys.contains(key) else { throw ParseError(text: text, reason: "unknown word \"\(key)\"") }
            guard i + 1 < words.count else { throw ParseError(text: text, reason: "\(key) needs a value") }
            guard seen.insert(key).inserted else { throw ParseError(text: text, reason: "\(key) given twice") }
            let value = words[i + 1]
            do {
                switch key {
                case "ttft": shape.ttftNanos = try ttft(value)
                case "tokens": shape.length = try length(value)
                case "rate": shape.rate = try rate(value)
                default: shape.jitterPercent = try jitter(value)
                }
            } catch {
                throw ParseError(text: text, reason: error.reason)
            }
            i += 2
        }
        return shape
    }

    /// One value refused, without the whole text (the Scenario reader adds file:line).
    public struct ValueError: Error, Sendable, Equatable {
        public let reason: String
    }

    /// `300ms`, `1.5s` or a bare number of milliseconds, at most an hour.
    public static func ttft(_ value: String) throws(ValueError) -> Int64 {
        let isMs = value.hasSuffix("ms")
        let isS = !isMs && value.hasSuffix("s")
        let digits = isMs ? String(value.dropLast(2)) : isS ? String(value.dropLast()) : value
        guard let number = Double(digits), number.isFinite, number >= 0 else {
            throw ValueError(reason: "ttft \(value) is not a duration (like 300ms or 1.5s)")
        }
        let seconds = isS ? number : number / 1000
        guard let nanos = Checked.nanoseconds(seconds: seconds), nanos <= longestTTFTNanos else {
            throw ValueError(reason: "ttft \(value) is longer than an hour")
        }
        return nanos
    }

    /// `200`, `50-200` or `max_tokens` (also `max`), each count 1...mostTokens.
    public static func length(_ value: String) throws(ValueError) -> Length {
        if value == "max_tokens" || value == "max" || value == "max_completion_tokens" { return .maxTokens }
        func count(_ s: Substring) throws(ValueError) -> Int {
            guard s.allSatisfy(\.isASCII), let n = Int(s), n >= 1 else {
                throw ValueError(reason: "tokens \(value): give a whole number of tokens from 1, a range like 50-200, or max_tokens")
            }
            guard n <= mostTokens else { throw ValueError(reason: "tokens \(value): at most \(mostTokens) tokens an answer") }
            return n
        }
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        switch parts.count {
        case 1: return .fixed(try count(parts[0]))
        case 2:
            let (a, b) = (try count(parts[0]), try count(parts[1]))
            guard a <= b else { throw ValueError(reason: "tokens \(value): the range's low end is above its high end") }
            return a == b ? .fixed(a) : .range(a, b)
        default: throw ValueError(reason: "tokens \(value): a range is two numbers, like 50-200")
        }
    }

    /// `50/s` or `50`: tokens a second, lowestRate...highestRate.
    public static func rate(_ value: String) throws(ValueError) -> Double {
        let text = value.hasSuffix("/s") ? String(value.dropLast(2)) : value
        guard let r = Double(text), r.isFinite else { throw ValueError(reason: "rate \(value) is not tokens a second (like 50/s)") }
        guard r >= lowestRate, r <= highestRate else {
            throw ValueError(reason: "rate \(value) must be from \(lowestRate)/s to \(Int(highestRate))/s")  // checked: a constant
        }
        return r
    }

    /// `10%` (or `10`): a percentage 0...100 of the mean inter-token delay, as given.
    public static func jitter(_ value: String) throws(ValueError) -> Double {
        let text = value.hasSuffix("%") ? String(value.dropLast()) : value
        guard let p = Double(text), p.isFinite, p >= 0, p <= 100 else {
            throw ValueError(reason: "jitter \(value) must be a percentage from 0% to 100%")
        }
        return p
    }

    // MARK: Shaping (pure)

    /// Time to the first content token: `ttft`, else one inter-token delay (today's pacing).
    public func firstTokenNanos(tokenDelayNanos: Int64) -> Int64 {
        ttftNanos ?? meanDelayNanos(tokenDelayNanos: tokenDelayNanos)
    }

    /// The mean gap between tokens: 1/rate, else the stand-in's token delay.
    public func meanDelayNanos(tokenDelayNanos: Int64) -> Int64 {
        guard let rate else { return max(0, tokenDelayNanos) }
        // rate >= lowestRate: at most 1000 s, well inside Int64 nanoseconds.
        return Checked.nanoseconds(seconds: 1 / rate) ?? Self.longestTTFTNanos
    }

    /// One gap between tokens, drawn from mean × (1 ± jitter); never negative.
    public func interTokenNanos<G: RandomNumberGenerator>(tokenDelayNanos: Int64, using rng: inout G) -> Int64 {
        let mean = meanDelayNanos(tokenDelayNanos: tokenDelayNanos)
        guard jitterPercent > 0, mean > 0 else { return mean }
        let u = Double.random(in: -1...1, using: &rng)
        let d = Double(mean) * (1 + jitterPercent / 100 * u)
        return Int64(Checked.clampedInt(d, 0...Int(Self.longestTTFTNanos * 2)))
    }

    /// The answer's token count and whether the request's limit cut it (`finish_reason: length`).
    /// `requested` is the request's `max_tokens` (already capped); `sentence` the fixed reply's length.
    public func outputTokens<G: RandomNumberGenerator>(requested: Int?, sentence: Int, using rng: inout G) -> (count: Int, cut: Bool) {
        let want: Int
        switch length {
        case nil: want = sentence
        case .fixed(let n)?: want = n
        case .range(let a, let b)?: want = Int.random(in: a...b, using: &rng)
        case .maxTokens?: return (requested.map { min(max($0, 1), Self.mostTokens) } ?? sentence, false)
        }
        if let requested, requested >= 1, requested < want { return (requested, true) }
        return (want, false)
    }

    /// A client's `max_tokens` as a count: capped at `mostTokens`; nil when absent, not a number or below 1.
    public static func requestedTokens(_ value: Double?) -> Int? {
        guard let value, value.isFinite, value >= 1 else { return nil }
        return Checked.clampedInt(value, 1...mostTokens)
    }
}

/// A small, fast, seedable generator (SplitMix64), so runs, jitter and tests repeat exactly
/// for a seed: the driver's pacers and the mock's token timing use this one.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

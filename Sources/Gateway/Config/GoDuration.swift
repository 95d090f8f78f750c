import Wire
/// Parses Gateway API / Go style durations: `120s`, `100ms`, `1m30s`, `2h`, `1.5s`.
/// The text comes from lab files, upstream headers and the admin API: every number is
/// checked, and a total beyond Go's own range (2562047h, Int64 nanoseconds) is an error,
/// never a trap.
public enum GoDuration {
    /// Why a duration string was rejected.
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public let input: String
        public let reason: String
        public var description: String { "invalid duration \"\(input)\": \(reason) (expected forms like 120s, 100ms, 1m30s, 2h)" }
    }

    private static let units: [(String, Double)] = [
        ("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("μs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600),
    ]

    /// The longest duration Go (and this parser) accepts: Int64 nanoseconds.
    public static let maximum = Duration.nanoseconds(Int64.max)

    /// Parses `text`; a bare `0` is zero. Negative durations are rejected.
    public static func parse(_ text: String) throws(ParseError) -> Duration {
        let s = text.trimmingCharacters(in: .whitespaces)
        if s.isEmpty { throw ParseError(input: text, reason: "empty") }
        if s == "0" { return .zero }
        // Long inputs are no duration anyone means; bounding them keeps the parse cheap.
        if s.utf8.count > 64 { throw ParseError(input: String(text.prefix(64)) + "...", reason: "longer than 64 characters") }
        var seconds = 0.0
        var rest = Substring(s)
        while !rest.isEmpty {
            // ASCII digits only: `isNumber` would also take "½" or Arabic-Indic digits.
            let number = rest.prefix { ("0"..."9").contains($0) || $0 == "." }
            guard !number.isEmpty, let value = Double(number), value.isFinite else {
                throw ParseError(input: text, reason: "expected a number at \"\(rest)\"")
            }
            rest = rest.dropFirst(number.count)
            let unitText = rest.prefix { !("0"..."9").contains($0) && $0 != "." }
            guard let unit = units.first(where: { $0.0 == unitText }) else {
                let shown = unitText.isEmpty ? "nothing" : "\"\(unitText)\""
                throw ParseError(input: text, reason: "unknown unit \(shown) after \(number)")
            }
            rest = rest.dropFirst(unitText.count)
            seconds += value * unit.1
        }
        guard let duration = Checked.duration(seconds: seconds) else {
            throw ParseError(input: text, reason: "out of range (the longest is 2562047h)")
        }
        return duration
    }
}

import Foundation

extension Duration {
    /// The duration in seconds as a Double.
    public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }

    /// Builds a duration from (possibly fractional) seconds, saturating: NaN and negative
    /// values give zero, values past Int64 nanoseconds give the largest such duration.
    public static func seconds(double value: Double) -> Duration {
        if let duration = Checked.duration(seconds: value) { return duration }
        return value > 0 ? GoDuration.maximum : .zero
    }

    /// Short human form used in logs and on screen: `2ms`, `1372ms`, `60s`, `2m30s`.
    public var compactDescription: String {
        let s = seconds
        // Past what Int holds (in milliseconds) the count is shown as a Double rather than trapping.
        guard s.magnitude < 9.2e15 else { return String(format: "%.0fs", s) }
        if s < 1 { return "\(Int((s * 1000).rounded()))ms" }  // checked: |s| < 9.2e15 above
        if s < 60 { return s == s.rounded() ? "\(Int(s))s" : String(format: "%.1fs", s) }
        let whole = Int(s.rounded())  // checked: |s| < 9.2e15 above
        return whole % 60 == 0 ? "\(whole / 60)m" : "\(whole / 60)m\(whole % 60)s"
    }
}

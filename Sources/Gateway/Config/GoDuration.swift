/// Parses Gateway API / Go style durations: `120s`, `100ms`, `1m30s`, `2h`, `1.5s`.
public enum GoDuration {
    /// Why a duration string was rejected.
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public let input: String
        public let reason: String
        public var description: String { "invalid duration \"\(input)\": \(reason) (expected forms like 120s, 100ms, 1m30s, 2h)" }
    }

    private static let units: [(String, Double)] = [
        ("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600),
    ]

    /// Parses `text`; a bare `0` is zero. Negative durations are rejected.
    public static func parse(_ text: String) throws(ParseError) -> Duration {
        let s = text.trimmingCharacters(in: .whitespaces)
        if s.isEmpty { throw ParseError(input: text, reason: "empty") }
        if s == "0" { return .zero }
        var seconds = 0.0
        var rest = Substring(s)
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else {
                throw ParseError(input: text, reason: "expected a number at \"\(rest)\"")
            }
            rest = rest.dropFirst(number.count)
            let unitText = rest.prefix { !$0.isNumber && $0 != "." }
            guard let unit = units.first(where: { $0.0 == unitText }) else {
                let shown = unitText.isEmpty ? "nothing" : "\"\(unitText)\""
                throw ParseError(input: text, reason: "unknown unit \(shown) after \(number)")
            }
            rest = rest.dropFirst(unitText.count)
            seconds += value * unit.1
        }
        return .nanoseconds(Int64((seconds * 1e9).rounded()))
    }
}

import Foundation

extension Duration {
    /// The duration in seconds as a Double.
    public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }

    /// Builds a duration from (possibly fractional) seconds.
    public static func seconds(double value: Double) -> Duration {
        .nanoseconds(Int64((value * 1e9).rounded()))
    }

    /// Short human form used in logs and on screen: `2ms`, `1372ms`, `60s`, `2m30s`.
    public var compactDescription: String {
        let s = seconds
        if s < 1 { return "\(Int((s * 1000).rounded()))ms" }
        if s < 60 { return s == s.rounded() ? "\(Int(s))s" : String(format: "%.1fs", s) }
        let whole = Int(s.rounded())
        return whole % 60 == 0 ? "\(whole / 60)m" : "\(whole / 60)m\(whole % 60)s"
    }
}

/// Nanoseconds, the driver's one unit of time (monotonic offsets and durations).
public typealias Nanos = UInt64

/// Parsing and printing of the units a user types: durations, rates, speeds.
public enum Units {
    /// The longest duration a user may give (a year and a day): sums and products of a plan's
    /// durations then stay far inside 64-bit nanoseconds.
    public static let maxDuration: Nanos = 366 * 86_400 * 1_000_000_000
    /// The highest rate a user may give, per second (far beyond what one engine sends).
    public static let maxRate: Double = 10_000_000
    /// The most requests in flight (--concurrency, --max-in-flight): each is a libcurl handle.
    public static let maxConcurrency = 100_000

    /// Why a unit text was refused.
    public struct UnitError: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// Parses `30s`, `500ms`, `1m30s`, `2h`, `250us`, `10ns`; a bare number means seconds.
    /// Nil for anything else, negative, or longer than `maxDuration`.
    public static func parseDuration(_ text: String) -> Nanos? { try? duration(text) }

    /// `parseDuration` with the reason: the fuzz and flag entry. Never traps.
    public static func duration(_ text: String) throws(UnitError) -> Nanos {
        let s = text.trimmed()
        let shown = s.count > 40 ? String(s.prefix(40)) + "..." : s
        guard !s.isEmpty else { throw UnitError(description: "empty; write a duration such as 30s, 500ms or 2m") }
        var total: Double
        if let seconds = Double(s) {
            guard seconds.isFinite, seconds >= 0 else { throw UnitError(description: "'\(shown)' is not a duration >= 0") }
            total = seconds * 1e9
        } else {
            total = 0
            var rest = Substring(s)
            while !rest.isEmpty {
                let numberEnd = rest.firstIndex(where: { !($0.isASCII && ($0.isNumber || $0 == ".")) }) ?? rest.endIndex
                guard numberEnd != rest.startIndex, let value = Double(rest[rest.startIndex..<numberEnd]) else {
                    throw UnitError(description: "'\(shown)' is not a duration; write 30s, 500ms, 1m30s or 2h")
                }
                rest = rest[numberEnd...]
                let unitEnd = rest.firstIndex(where: { $0.isASCII && ($0.isNumber || $0 == ".") }) ?? rest.endIndex
                let unit = rest[rest.startIndex..<unitEnd]
                rest = rest[unitEnd...]
                guard let scale = durationScale(unit) else {
                    throw UnitError(description: "'\(shown)': unknown unit '\(unit.prefix(20))'; use ns, us, ms, s, m, h")
                }
                total += value * scale
            }
        }
        // Checked as a Double before any conversion: 1e300 or 99999999999h is an error, not a trap.
        guard total.isFinite, total >= 0, total <= Double(maxDuration) else {
            throw UnitError(description: "'\(shown)' is longer than the longest allowed, 366 days")
        }
        return Nanos(total.rounded())
    }

    private static func durationScale(_ unit: Substring) -> Double? {
        switch unit {
        case "ns": return 1
        case "us", "µs": return 1e3
        case "ms": return 1e6
        case "s", "sec": return 1e9
        case "m", "min": return 60e9
        case "h": return 3600e9
        default: return nil
        }
    }

    /// Parses a rate per second: `200/s`, `200`, `12000/m`, `3/ms`, `100/min`, `1000/h`.
    /// Nil for anything else, negative, or above `maxRate`.
    public static func parseRate(_ text: String) -> Double? { try? rate(text) }

    /// `parseRate` with the reason: the fuzz and flag entry. Never traps.
    public static func rate(_ text: String) throws(UnitError) -> Double {
        let s = text.trimmed()
        let shown = s.count > 40 ? String(s.prefix(40)) + "..." : s
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let value = Double(parts[0].trimmed(" ")), value >= 0, value.isFinite else {
            throw UnitError(description: "'\(shown)' is not a rate; write 200/s, 200 or 12000/m")
        }
        var perSecond = value
        if parts.count == 2 {
            let unit = parts[1].trimmed(" ")
            let per: Double
            switch unit {
            case "s", "sec", "1s": per = 1
            case "ms": per = 1e-3
            case "m", "min": per = 60
            case "h": per = 3600
            default:
                guard let ns = parseDuration(unit), ns > 0 else {
                    throw UnitError(description: "'\(shown)': '\(unit.prefix(20))' is not a time unit (s, ms, m, h, 10s)")
                }
                per = Double(ns) / 1e9
            }
            perSecond = value / per
        }
        guard perSecond.isFinite, perSecond <= maxRate else {
            throw UnitError(description: "'\(shown)' is above the highest rate allowed, \(Int(maxRate))/s")
        }
        return perSecond
    }

    /// Parses a replay speed: `2x`, `0.5x`, `2`.
    public static func parseSpeed(_ text: String) -> Double? {
        var s = text.trimmed()
        if s.hasSuffix("x") || s.hasSuffix("X") { s.removeLast() }
        // Bounded so gaps divided or multiplied by it stay convertible to nanoseconds.
        guard let v = Double(s), v >= 1e-6, v <= 1e6 else { return nil }
        return v
    }

    /// Prints a duration in nanoseconds with a unit a person reads at a glance: `850us`, `12.3ms`, `4.20s`.
    public static func formatDuration(_ ns: Nanos) -> String {
        let v = Double(ns)
        if ns < 1_000 { return "\(ns)ns" }
        if ns < 1_000_000 { return fixed(v / 1e3, v < 1e4 ? 2 : 1) + "us" }
        if ns < 1_000_000_000 { return fixed(v / 1e6, v < 1e7 ? 2 : 1) + "ms" }
        if ns < 600_000_000_000 { return fixed(v / 1e9, 2) + "s" }
        return fixed(v / 60e9, 1) + "m"
    }

    /// A double with a fixed number of decimals, without Foundation's formatters.
    public static func fixed(_ value: Double, _ decimals: Int) -> String {
        guard value.isFinite else { return value.isNaN ? "nan" : (value > 0 ? "inf" : "-inf") }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let negative = value < 0
        let rounded = (abs(value) * scale).rounded()
        guard rounded < 9e18 else { return "\(value)" }
        let whole = UInt64(rounded)
        let intPart = whole / UInt64(scale)
        var out = negative && whole != 0 ? "-" : ""
        out += String(intPart)
        if decimals > 0 {
            let frac = String(whole % UInt64(scale))
            out += "." + String(repeating: "0", count: decimals - frac.count) + frac
        }
        return out
    }
}

extension StringProtocol {
    func trimmed(_ set: String = " \t") -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}

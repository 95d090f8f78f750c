/// Nanoseconds, the driver's one unit of time (monotonic offsets and durations).
public typealias Nanos = UInt64

/// Parsing and printing of the units a user types: durations, rates, speeds.
public enum Units {
    /// Parses `30s`, `500ms`, `1m30s`, `2h`, `250us`, `10ns`; a bare number means seconds.
    public static func parseDuration(_ text: String) -> Nanos? {
        let s = text.trimmed()
        guard !s.isEmpty else { return nil }
        if let seconds = Double(s), seconds >= 0, seconds.isFinite { return Nanos(seconds * 1e9) }
        var total: Double = 0
        var rest = Substring(s)
        while !rest.isEmpty {
            let numberEnd = rest.firstIndex(where: { !($0.isNumber || $0 == ".") }) ?? rest.endIndex
            guard numberEnd != rest.startIndex, let value = Double(rest[rest.startIndex..<numberEnd]) else { return nil }
            rest = rest[numberEnd...]
            let unitEnd = rest.firstIndex(where: { $0.isNumber || $0 == "." }) ?? rest.endIndex
            let unit = rest[rest.startIndex..<unitEnd]
            rest = rest[unitEnd...]
            guard let scale = durationScale(unit) else { return nil }
            total += value * scale
        }
        guard total.isFinite, total >= 0, total < 1e19 else { return nil }
        return Nanos(total)
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
    public static func parseRate(_ text: String) -> Double? {
        let s = text.trimmed()
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2,
              let value = Double(parts[0].trimmed(" ")), value >= 0, value.isFinite
        else { return nil }
        if parts.count == 1 { return value }
        let unit = parts[1].trimmed(" ")
        let per: Double
        switch unit {
        case "s", "sec", "1s": per = 1
        case "ms": per = 1e-3
        case "m", "min": per = 60
        case "h": per = 3600
        default:
            guard let ns = parseDuration(unit), ns > 0 else { return nil }
            per = Double(ns) / 1e9
        }
        return value / per
    }

    /// Parses a replay speed: `2x`, `0.5x`, `2`.
    public static func parseSpeed(_ text: String) -> Double? {
        var s = text.trimmed()
        if s.hasSuffix("x") || s.hasSuffix("X") { s.removeLast() }
        guard let v = Double(s), v > 0, v.isFinite else { return nil }
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

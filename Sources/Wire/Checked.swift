/// Conversions of numbers that came from outside (a client, an upstream, a file, a flag):
/// each returns nil (or clamps) where Swift's own conversion would trap. The input rule
/// (docs/CONTRIBUTING.md) sends every such conversion here; scripts/check-input-rule checks.
public enum Checked {
    /// `Int(x)` rounded toward zero, or nil when `x` is not finite or does not fit.
    @inlinable
    public static func int(_ x: Double) -> Int? {
        guard x.isFinite, x > -9.223372036854775e18, x < 9.223372036854775e18 else { return nil }
        return Int(x)  // checked: range tested above
    }

    /// `Int64(x)` rounded toward zero, or nil when `x` is not finite or does not fit.
    @inlinable
    public static func int64(_ x: Double) -> Int64? {
        guard x.isFinite, x > -9.223372036854775e18, x < 9.223372036854775e18 else { return nil }
        return Int64(x)  // checked: range tested above
    }

    /// `x` rounded to the nearest Int, clamped into `range`; NaN gives the lower bound.
    @inlinable
    public static func clampedInt(_ x: Double, _ range: ClosedRange<Int> = Int.min...Int.max) -> Int {
        guard !x.isNaN else { return range.lowerBound }
        let r = x.rounded()
        if r <= Double(range.lowerBound) { return range.lowerBound }
        if r >= Double(range.upperBound) { return range.upperBound }
        return Int(r)  // checked: strictly inside an Int range
    }

    /// A duration of `seconds`, or nil when negative or not finite; clamped to `max`.
    @inlinable
    public static func duration(seconds: Double, max: Duration = .seconds(100 * 365 * 86_400)) -> Duration? {
        guard seconds.isFinite, seconds >= 0 else { return nil }
        let (maxSeconds, _) = max.components
        if seconds >= Double(maxSeconds) { return max }
        let whole = Int64(seconds)  // checked: 0 <= seconds < maxSeconds
        let nanos = Int64(((seconds - Double(whole)) * 1e9).rounded())  // checked: in 0...1e9
        return .seconds(whole) + .nanoseconds(nanos)
    }

    /// Whole nanoseconds of `seconds`, or nil when negative, not finite or beyond Int64.
    @inlinable
    public static func nanoseconds(seconds: Double) -> Int64? {
        guard seconds.isFinite, seconds >= 0, seconds < 9.2e9 else { return nil }
        return Int64((seconds * 1e9).rounded())  // checked: below 9.2e18
    }
}

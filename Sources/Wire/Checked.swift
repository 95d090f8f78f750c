/// Conversions of numbers that came from outside (a client, an upstream, a file, a flag):
/// each returns nil (or clamps) where Swift's own conversion would trap. The input rule
/// (docs/CONTRIBUTING.md) sends every such conversion here; scripts/check-input-rule checks.
public enum Checked {
    /// `x` rounded to the nearest Int, clamped into `range`; NaN gives the lower bound.
    @inlinable
    public static func clampedInt(_ x: Double, _ range: ClosedRange<Int> = Int.min...Int.max) -> Int {
        guard !x.isNaN else { return range.lowerBound }
        let r = x.rounded()
        if r <= Double(range.lowerBound) { return range.lowerBound }
        if r >= Double(range.upperBound) { return range.upperBound }
        return Int(r)  // checked: strictly inside an Int range
    }

    /// A duration of `seconds` when finite, not negative and within Int64 nanoseconds
    /// (about 292 years); nil otherwise. The checked way to turn an outside number into a `Duration`.
    @inlinable
    public static func duration(seconds: Double) -> Duration? {
        guard seconds.isFinite, seconds >= 0 else { return nil }
        let nanoseconds = (seconds * 1e9).rounded()
        // 2^63 is exactly representable; anything at or above it does not fit Int64.
        guard nanoseconds < 9_223_372_036_854_775_808.0 else { return nil }
        return .nanoseconds(Int64(nanoseconds))  // checked: range tested above
    }

    /// Whole nanoseconds of `seconds`, or nil when negative, not finite or beyond Int64.
    @inlinable
    public static func nanoseconds(seconds: Double) -> Int64? {
        guard seconds.isFinite, seconds >= 0, seconds < 9.2e9 else { return nil }
        return Int64((seconds * 1e9).rounded())  // checked: below 9.2e18
    }
}

import Foundation
import Wire

/// Reads how long an upstream asks us to back off, from a 429's headers.
/// First found wins: `Retry-After` (seconds or HTTP-date), `retry-after-ms`,
/// `x-ratelimit-reset` (seconds under 30 days, else a Unix time), then the smaller of
/// `x-ratelimit-reset-requests` / `-tokens` (`6m0s`, `1.5s`, or bare seconds).
///
/// The headers are an upstream's bytes: a value that is not a finite, non-negative number
/// (NaN, `inf`, `-5`, `1e400`) is ignored as if absent, and a finite one longer than
/// `ceiling` is cut to it. The balancer then clamps evictions to `--max-eviction`; the
/// ceiling only keeps every hint far inside `Duration`'s range, while still telling a
/// year-long quota reset from a per-minute rate limit.
public enum RateLimitHint {
    static let thirtyDays = 30.0 * 86_400
    /// The longest hint kept: 366 days (31,622,400 s).
    public static let ceiling = Duration.seconds(366 * 86_400)
    static let ceilingSeconds = 366.0 * 86_400

    /// `headers` are (name, value) pairs with any case; `now` is the wall clock, for dates.
    public static func resetDelay(headers: [(String, String)], now: Date) -> Duration? {
        func value(_ name: String) -> String? {
            headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1.trimmingCharacters(in: .whitespaces)
        }
        if let text = value("retry-after") {
            if let seconds = Double(text) {
                if let hint = clamped(seconds: seconds) { return hint }
            } else if let date = parseHTTPDate(text), let hint = clamped(seconds: max(0, date.timeIntervalSince(now))) {
                return hint
            }
        }
        if let text = value("retry-after-ms"), let ms = Double(text), let hint = clamped(seconds: ms / 1000) {
            return hint
        }
        if let text = value("x-ratelimit-reset"), let number = Double(text), number.isFinite, number >= 0 {
            let seconds = number < thirtyDays ? number : max(0, number - now.timeIntervalSince1970)
            if let hint = clamped(seconds: seconds) { return hint }
        }
        let resets = ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"].compactMap { name -> Duration? in
            guard let text = value(name) else { return nil }
            if let seconds = Double(text) { return clamped(seconds: seconds) }
            return (try? GoDuration.parse(text)).map { min($0, ceiling) }
        }
        return resets.min()
    }

    /// Seconds as a hint: nil when not finite or negative, else at most `ceiling`.
    static func clamped(seconds: Double) -> Duration? {
        guard seconds.isFinite, seconds >= 0 else { return nil }
        return Checked.duration(seconds: min(seconds, ceilingSeconds))
    }

    /// RFC 9110 dates: IMF-fixdate, plus the obsolete RFC 850 and asctime forms.
    static func parseHTTPDate(_ text: String) -> Date? {
        // A date is under 40 characters; longer text is not worth a formatter's time.
        guard text.utf8.count <= 64 else { return nil }
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = format
            if let date = formatter.date(from: text) { return date }
        }
        return nil
    }
}

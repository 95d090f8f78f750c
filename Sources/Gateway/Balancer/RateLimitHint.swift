import Foundation

/// Reads how long an upstream asks us to back off, from a 429's headers.
/// First found wins: `Retry-After` (seconds or HTTP-date), `retry-after-ms`,
/// `x-ratelimit-reset` (seconds under 30 days, else a Unix time), then the smaller of
/// `x-ratelimit-reset-requests` / `-tokens` (`6m0s`, `1.5s`, or bare seconds).
public enum RateLimitHint {
    static let thirtyDays = 30.0 * 86_400

    /// `headers` are (name, value) pairs with any case; `now` is the wall clock, for dates.
    public static func resetDelay(headers: [(String, String)], now: Date) -> Duration? {
        func value(_ name: String) -> String? {
            headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1.trimmingCharacters(in: .whitespaces)
        }
        if let text = value("retry-after") {
            if let seconds = Double(text), seconds >= 0 { return .seconds(double: seconds) }
            if let date = parseHTTPDate(text) { return .seconds(double: max(0, date.timeIntervalSince(now))) }
        }
        if let text = value("retry-after-ms"), let ms = Double(text), ms >= 0 {
            return .seconds(double: ms / 1000)
        }
        if let text = value("x-ratelimit-reset"), let number = Double(text), number >= 0 {
            if number < thirtyDays { return .seconds(double: number) }
            return .seconds(double: max(0, number - now.timeIntervalSince1970))
        }
        let resets = ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"].compactMap { name -> Duration? in
            guard let text = value(name) else { return nil }
            if let seconds = Double(text), seconds >= 0 { return .seconds(double: seconds) }
            return try? GoDuration.parse(text)
        }
        return resets.min()
    }

    /// RFC 9110 dates: IMF-fixdate, plus the obsolete RFC 850 and asctime forms.
    static func parseHTTPDate(_ text: String) -> Date? {
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

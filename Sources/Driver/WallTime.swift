/// Wall-clock timestamps as RFC 3339 text (UTC, microseconds), without Foundation's formatters.
public enum WallTime {
    /// Formats nanoseconds since 1970 as `2026-11-20T10:00:00.123456Z`.
    public static func format(_ ns: Int64) -> String {
        // Floor division without `ns - 999_999_999`, which overflows near Int64.min.
        var secs = ns / 1_000_000_000, subsecond = ns % 1_000_000_000
        if subsecond < 0 { secs -= 1; subsecond += 1_000_000_000 }
        let micros = subsecond / 1000
        var days = secs / 86400, rem = secs % 86400
        if rem < 0 { days -= 1; rem += 86400 }
        let (y, m, d) = civil(fromDays: &days)
        return pad(y, 4) + "-" + pad(m, 2) + "-" + pad(d, 2) + "T" + pad(rem / 3600, 2) + ":"
            + pad(rem / 60 % 60, 2) + ":" + pad(rem % 60, 2) + "." + pad(micros, 6) + "Z"
    }

    /// Parses RFC 3339 / ISO 8601 timestamps: `2025-06-10T12:00:00Z`, with up to 9 fractional
    /// digits, a space for `T`, and `Z` or a `+hh:mm` / `-hh:mm` offset. Returns ns since 1970.
    public static func parse(_ text: String) -> Int64? {
        var text = text
        return text.withUTF8 { parse(bytes: $0) }
    }

    /// `parse` on bytes (the records' fast reader has them, and no String to spare).
    public static func parse(bytes b: UnsafeBufferPointer<UInt8>) -> Int64? {
        var i = 0
        func num(_ n: Int) -> Int64? {
            guard i + n <= b.count else { return nil }
            var v: Int64 = 0
            for k in 0..<n {
                let c = b[i + k]
                guard c >= 0x30, c <= 0x39 else { return nil }
                v = v * 10 + Int64(c - 0x30)
            }
            i += n
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }
        guard let y = num(4), expect(0x2D), let mo = num(2), expect(0x2D), let d = num(2) else { return nil }
        guard i < b.count, b[i] == 0x54 || b[i] == 0x74 || b[i] == 0x20 else { return nil }
        i += 1
        guard let h = num(2), expect(0x3A), let mi = num(2), expect(0x3A), let s = num(2) else { return nil }
        guard (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 61 else { return nil }
        var frac: Int64 = 0
        if i < b.count, b[i] == 0x2E || b[i] == 0x2C {
            i += 1
            var digits = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                if digits < 9 { frac = frac * 10 + Int64(b[i] - 0x30) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            for _ in min(digits, 9)..<9 { frac *= 10 }
        }
        var offset: Int64 = 0
        if i < b.count {
            if b[i] == 0x5A || b[i] == 0x7A {
                i += 1
            } else if b[i] == 0x2B || b[i] == 0x2D {
                let sign: Int64 = b[i] == 0x2B ? 1 : -1
                i += 1
                guard let oh = num(2) else { return nil }
                _ = expect(0x3A)
                guard let om = num(2) else { return nil }
                offset = sign * (oh * 3600 + om * 60)
            } else {
                return nil
            }
        }
        guard i == b.count else { return nil }
        let days = days(fromCivil: y, mo, d)
        // Nanoseconds since 1970 in 64 bits reach from 1677 to 2262: outside that, nil, not a trap.
        let seconds = days * 86400 + h * 3600 + mi * 60 + s - offset
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return nil }
        let (ns, overflow2) = whole.addingReportingOverflow(frac)
        return overflow2 ? nil : ns
    }

    /// The range `parse` can give, as text for error messages.
    public static let representableRange = "1677-09-21T00:12:43Z ... 2262-04-11T23:47:16Z"

    private static func pad(_ v: Int64, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    // Howard Hinnant's days_from_civil / civil_from_days.
    static func days(fromCivil y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func civil(fromDays days: inout Int64) -> (Int64, Int64, Int64) {
        let z = days + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}

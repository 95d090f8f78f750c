import Histogram

/// One figure of two runs side by side: `change` is B minus A (nil when either is missing).
public struct ComparisonRow: Sendable, Equatable {
    public enum Unit: String, Sendable { case perSecond = "/s", percent = "%", ms, count = "" }
    public var figure: String
    public var unit: Unit
    public var a: Double?
    public var b: Double?

    public init(figure: String, unit: Unit, a: Double?, b: Double?) {
        self.figure = figure
        self.unit = unit
        self.a = a
        self.b = b
    }

    /// Whether a rise is good (rate, 2xx share), bad (latency, errors, 4xx/5xx) or neither (a provider's share).
    public var higherIsBetter: Bool? {
        if figure == "rate" || figure == "throughput" || figure == "requests" { return true }
        if figure.hasPrefix("status 2") { return true }
        if figure.hasPrefix("status ") || figure == "errors" { return false }
        if unit == .ms { return false }
        return nil
    }

    /// `better`, `worse` or empty, for the HTML table's colours.
    public var verdict: String {
        guard let c = change, c != 0, let up = higherIsBetter else { return "" }
        return (c > 0) == up ? "better" : "worse"
    }

    public var change: Double? { a.flatMap { a in b.map { $0 - a } } }
    /// The change relative to A (nil when A is 0 or missing).
    public var relative: Double? { a.flatMap { a in a == 0 ? nil : change.map { $0 / a } } }

    /// The value as the text and HTML tables show it.
    public func format(_ v: Double?) -> String {
        guard let v else { return "-" }
        switch unit {
        case .perSecond: return Units.fixed(v, 1) + "/s"
        case .percent: return Units.fixed(v, 2) + "%"
        case .ms: return Units.fixed(v, 3) + "ms"
        case .count: return Units.fixed(v, 0)
        }
    }

    /// The change with its sign: `+12.0/s (+6.0%)`, `-0.50% points`, `=` when equal.
    public var changeText: String {
        guard let c = change else { return "-" }
        if c == 0 { return "=" }
        var t = (c > 0 ? "+" : "") + format(c)
        if unit == .percent { t += " pts" }
        if unit != .percent, let r = relative { t += " (" + (r > 0 ? "+" : "") + Units.fixed(r * 100, 1) + "%)" }
        return t
    }
}

/// Two runs' figures compared, pure: rate, status shares, corrected and from-send percentiles,
/// and per provider its share and latency.
public enum ReportComparison {
    public static func rows(_ a: Report, _ b: Report) -> [ComparisonRow] {
        var out: [ComparisonRow] = [
            ComparisonRow(figure: "requests", unit: .count, a: Double(a.requests), b: Double(b.requests)),
            ComparisonRow(figure: "rate", unit: .perSecond, a: a.achievedRate, b: b.achievedRate),
            ComparisonRow(figure: "throughput", unit: .perSecond, a: a.throughput, b: b.throughput),
            ComparisonRow(figure: "errors", unit: .percent, a: share(a.errors, a.requests), b: share(b.errors, b.requests)),
        ]
        let codes = Set(a.statusCounts.keys).union(b.statusCounts.keys).sorted()
        for c in codes {
            out.append(ComparisonRow(figure: "status " + (c == 0 ? "error" : String(c)), unit: .percent,
                                     a: share(a.statusCounts[c] ?? 0, a.requests), b: share(b.statusCounts[c] ?? 0, b.requests)))
        }
        for (name, sa, sb) in [("corrected", a.corrected, b.corrected), ("from send", a.uncorrected, b.uncorrected)] {
            for (q, pick) in [("p50", \LatencySummary.p50), ("p99", \LatencySummary.p99), ("p99.9", \LatencySummary.p999)] {
                out.append(ComparisonRow(figure: name + " " + q, unit: .ms, a: sa.map { Double($0[keyPath: pick]) / 1e6 },
                                         b: sb.map { Double($0[keyPath: pick]) / 1e6 }))
            }
        }
        var names: [String] = a.providers.map(\.provider)
        for p in b.providers where !names.contains(p.provider) { names.append(p.provider) }
        for n in names {
            let pa = a.providers.first { $0.provider == n }, pb = b.providers.first { $0.provider == n }
            out.append(ComparisonRow(figure: "provider " + n + " share", unit: .percent,
                                     a: share(pa?.served ?? 0, a.requests), b: share(pb?.served ?? 0, b.requests)))
            out.append(ComparisonRow(figure: "provider " + n + " p50", unit: .ms,
                                     a: pa?.latency.map { Double($0.p50) / 1e6 }, b: pb?.latency.map { Double($0.p50) / 1e6 }))
            out.append(ComparisonRow(figure: "provider " + n + " p99", unit: .ms,
                                     a: pa?.latency.map { Double($0.p99) / 1e6 }, b: pb?.latency.map { Double($0.p99) / 1e6 }))
        }
        return out
    }

    static func share(_ n: UInt64, _ of: UInt64) -> Double? { of == 0 ? nil : Double(n) / Double(of) * 100 }

    public static func text(_ rows: [ComparisonRow], a: String, b: String) -> String {
        var o = "A  " + a + "\nB  " + b + "\n\n"
        let w = Swift.max(12, (rows.map(\.figure.count).max() ?? 0) + 2)
        o += pad("figure", w) + pad("A", 14, left: true) + pad("B", 14, left: true) + "  change\n"
        for r in rows {
            o += pad(r.figure, w) + pad(r.format(r.a), 14, left: true) + pad(r.format(r.b), 14, left: true) + "  " + r.changeText + "\n"
        }
        return o
    }

    public static func json(_ rows: [ComparisonRow], a: String, b: String) -> JSONValue {
        func num(_ v: Double?) -> JSONValue { v.map { .number(($0 * 1e6).rounded() / 1e6) } ?? .null }
        return .object([
            ("a", .string(a)), ("b", .string(b)),
            ("figures", .array(rows.map { r in
                .object([("figure", .string(r.figure)), ("unit", .string(r.unit.rawValue)), ("a", num(r.a)), ("b", num(r.b)),
                         ("change", num(r.change)), ("relative", num(r.relative))])
            })),
        ])
    }

    /// The comparison page: the table, then both runs' curves on shared charts.
    public static func html(_ rows: [ComparisonRow], a: (name: String, series: TimeSeries, corrected: Histogram<UInt64>),
                            b: (name: String, series: TimeSeries, corrected: Histogram<UInt64>)) -> String {
        var o = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>failover-lab comparison</title><style>"
        o += HTMLReport.css + "</style></head><body>\n<h1>failover-lab comparison</h1>\n"
        o += "<p>A: " + htmlEscape(a.name) + "<br>B: " + htmlEscape(b.name) + "</p>\n"
        o += "<table id=\"comparison\"><tr><th>figure</th><th>A</th><th>B</th><th>change</th></tr>"
        for r in rows {
            let cls = r.verdict
            o += "<tr data-figure=\"" + htmlEscape(r.figure) + "\"><td>" + htmlEscape(r.figure) + "</td><td>" + htmlEscape(r.format(r.a))
                + "</td><td>" + htmlEscape(r.format(r.b)) + "</td><td class=\"" + cls + "\">" + htmlEscape(r.changeText) + "</td></tr>"
        }
        o += "</table>\n"
        let pa = a.series.points(), pb = b.series.points()
        o += "<h2>Requests per second (A blue, B orange)</h2>\n" + rateChart([("A", pa), ("B", pb)])
        o += "<h2>Latency over time (from send, p50 dashed, p99 solid)</h2>\n" + HTMLReport.latencyChart([("A", pa), ("B", pb)])
        o += "<h2>Corrected latency distribution</h2>\n"
        o += HTMLReport.percentileChart([("A", HTMLReport.palette[0], Chart.percentileCurve(a.corrected)),
                                         ("B", HTMLReport.palette[1], Chart.percentileCurve(b.corrected))])
        return o + "</body></html>\n"
    }

    static func rateChart(_ runs: [(String, [TimeSeries.Point])]) -> String {
        let f = Chart.Frame()
        let xEnd = runs.compactMap { $0.1.last.map { $0.start + $0.width } }.max() ?? 1
        let x = Chart.Axis(0, xEnd)
        let top = runs.flatMap { $0.1.map { Double($0.count) / $0.width } }.max() ?? 1
        let y = Chart.Axis(0, Swift.max(1, top * 1.1))
        var o = HTMLReport.svgOpen("rate-compare", f)
        o += HTMLReport.axes(f, x, y, xLabel: "seconds from start", yLabel: "req/s")
        for (k, (name, pts)) in runs.enumerated() {
            o += "<g class=\"series\" data-run=\"" + htmlEscape(name) + "\"><polyline stroke=\"\(HTMLReport.palette[k % HTMLReport.palette.count])\" points=\""
                + Chart.polyline(HTMLReport.steps(pts) { Double($0.count) / $0.width }, f, x, y) + "\"/></g>"
        }
        o += HTMLReport.legend(runs.enumerated().map { ($0.element.0, HTMLReport.palette[$0.offset % HTMLReport.palette.count]) }, f)
        return o + "</svg>\n"
    }
}

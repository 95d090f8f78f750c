import Foundation
import Histogram

/// Latency in coarse log bins: 8 bins per power of two of microseconds (about 9 % wide), so a
/// time bucket carries its latency distribution in a fixed 320 counters and buckets merge by adding.
public enum LogBins {
    public static let perOctave = 8
    public static let count = 40 * perOctave

    /// The bin of a latency in nanoseconds (below 1 us counts as 1 us; above 2^40 us as the last bin).
    @inline(__always) public static func index(_ ns: Nanos) -> Int {
        let us = Swift.min(Swift.max(ns / 1000, 1), (1 << 40) - 1)
        let e = 63 - us.leadingZeroBitCount
        let sub = e >= 3 ? Int((us >> UInt64(e - 3)) & 7) : Int((us << UInt64(3 - e)) & 7)
        return e * perOctave + sub
    }

    /// The middle of a bin, in milliseconds.
    public static func valueMs(_ index: Int) -> Double {
        let e = index / perOctave, sub = index % perOctave
        let octave = Double(Int(1) << e)
        let low = octave * (1 + Double(sub) / 8)
        let width = octave / 8
        return (low + width / 2) / 1000
    }

    /// The bin value at a percentile (0...100) of the counts, nil when they are all 0.
    public static func percentileMs(_ bins: [UInt64], _ p: Double) -> Double? {
        let total = bins.reduce(0, &+)
        guard total > 0 else { return nil }
        let target = Swift.max(1, (Double(total) * p / 100).rounded(.up))
        var seen = 0.0
        for (i, n) in bins.enumerated() where n > 0 {
            seen += Double(n)
            if seen >= target { return valueMs(i) }
        }
        return valueMs(bins.lastIndex { $0 > 0 } ?? 0)
    }
}

/// A run's figures over time in buckets: requests served per provider, status classes and the
/// latency from send. Its memory is bounded (at most `maxBuckets`): when a record falls past the
/// last bucket, the width doubles and neighbours merge, so a run of any length keeps the same size.
public struct TimeSeries: Sendable {
    public static let maxBuckets = 2048
    /// Status classes: 0 is "no response" (transport error), 1...5 are 1xx...5xx, 6 any other code.
    public static let statusClasses = 7

    public struct Bucket: Sendable, Equatable {
        public var served: [UInt64] = []
        public var status = [UInt64](repeating: 0, count: TimeSeries.statusClasses)
        public var latency: [UInt64] = []
        public var count: UInt64 = 0

        mutating func merge(_ o: Bucket) {
            count &+= o.count
            if served.count < o.served.count { served += [UInt64](repeating: 0, count: o.served.count - served.count) }
            for (i, n) in o.served.enumerated() { served[i] &+= n }
            for (i, n) in o.status.enumerated() { status[i] &+= n }
            if !o.latency.isEmpty {
                if latency.isEmpty { latency = [UInt64](repeating: 0, count: LogBins.count) }
                for (i, n) in o.latency.enumerated() where n > 0 { latency[i] &+= n }
            }
        }
    }

    public private(set) var width: Nanos
    public private(set) var buckets: [Bucket] = []
    /// Providers in order of first appearance.
    public private(set) var providers: [String] = []
    var providerIndex: [String: Int] = [:]
    var lastProvider = -1

    /// `width`: the first bucket width (10 ms shows a short test's switch; long runs widen).
    public init(width: Nanos = 10_000_000) { self.width = Swift.max(1, width) }

    public static func statusClass(_ status: Int?) -> Int {
        guard let s = status else { return 0 }
        return (100...599).contains(s) ? s / 100 : 6
    }

    public mutating func add(_ r: RequestRecord) {
        let t = r.sent ?? r.intended
        var i = t / width
        while i >= UInt64(Self.maxBuckets) {
            widen()
            i = t / width
        }
        let index = Int(i)  // below maxBuckets
        if index >= buckets.count { buckets += [Bucket](repeating: Bucket(), count: index + 1 - buckets.count) }
        buckets[index].count &+= 1
        buckets[index].status[Self.statusClass(r.status)] &+= 1
        if let p = r.provider {
            let slot: Int
            if lastProvider >= 0, providers[lastProvider] == p {
                slot = lastProvider
            } else if let known = providerIndex[p] {
                slot = known
            } else {
                slot = providers.count
                providers.append(p)
                providerIndex[p] = slot
            }
            lastProvider = slot
            if buckets[index].served.count <= slot {
                buckets[index].served += [UInt64](repeating: 0, count: slot + 1 - buckets[index].served.count)
            }
            buckets[index].served[slot] &+= 1
        }
        if let l = r.latency, r.status != nil || r.error != nil {
            if buckets[index].latency.isEmpty { buckets[index].latency = [UInt64](repeating: 0, count: LogBins.count) }
            buckets[index].latency[LogBins.index(l)] &+= 1
        }
    }

    /// Doubles the width: bucket i takes old buckets 2i and 2i+1.
    mutating func widen() {
        var merged: [Bucket] = []
        merged.reserveCapacity((buckets.count + 1) / 2)
        var k = 0
        while k < buckets.count {
            var b = buckets[k]
            if k + 1 < buckets.count { b.merge(buckets[k + 1]) }
            merged.append(b)
            k += 2
        }
        buckets = merged
        let (w, overflow) = width.multipliedReportingOverflow(by: 2)
        width = overflow ? .max : w
    }

    /// One point of a chart: a span of time and what happened in it, rates per second.
    public struct Point: Sendable, Equatable {
        /// Start and width in seconds from the run's start.
        public var start: Double
        public var width: Double
        public var count: UInt64
        /// Requests per second served by each provider (indexed like `providers`).
        public var servedRate: [Double]
        /// Responses per second by status class (see `statusClasses`).
        public var statusRate: [Double]
        public var p50: Double?
        public var p99: Double?
    }

    /// At most `maxPoints` points: consecutive buckets merged so a chart stays small whatever the run.
    public func points(maxPoints: Int = 240) -> [Point] {
        guard !buckets.isEmpty else { return [] }
        let per = Swift.max(1, (buckets.count + Swift.max(1, maxPoints) - 1) / Swift.max(1, maxPoints))
        var out: [Point] = []
        var k = 0
        while k < buckets.count {
            var b = Bucket()
            let end = Swift.min(buckets.count, k + per)
            for j in k..<end { b.merge(buckets[j]) }
            // Every point spans `per` buckets, the last too: a run ending early in it shows a lower
            // rate there rather than a spike from dividing by a sliver.
            let secs = Double(width) / 1e9 * Double(per)
            var served = b.served.map { Double($0) / secs }
            if served.count < providers.count { served += [Double](repeating: 0, count: providers.count - served.count) }
            out.append(Point(start: Double(width) / 1e9 * Double(k), width: secs, count: b.count, servedRate: served,
                             statusRate: b.status.map { Double($0) / secs },
                             p50: LogBins.percentileMs(b.latency, 50), p99: LogBins.percentileMs(b.latency, 99)))
            k = end
        }
        return out
    }
}

/// A stretch of time a provider was out of the rotation, as the failover timeline shows it: from a
/// change away from it after a failure to the next change back to it (open when it never came back).
public struct EvictionWindow: Sendable, Equatable {
    public var provider: String
    public var start: Nanos
    public var end: Nanos?
    /// The status or failure word that preceded the change.
    public var cause: String

    public init(provider: String, start: Nanos, end: Nanos?, cause: String) {
        self.provider = provider
        self.start = start
        self.end = end
        self.cause = cause
    }

    /// The windows of a timeline. A change after a success (round robin within a group) is no eviction.
    public static func windows(_ timeline: [FailoverChange]) -> [EvictionWindow] {
        var out: [EvictionWindow] = []
        var open: [String: Int] = [:]
        for c in timeline {
            if let i = open.removeValue(forKey: c.to) { out[i].end = c.at }
            guard let from = c.from, from != c.to else { continue }
            let failed: Bool
            if c.precededByFailure != nil {
                failed = true
            } else if let s = c.precededBy {
                failed = s >= 400 || s < 100
            } else {
                failed = true  // the previous request had no response
            }
            guard failed, open[from] == nil else { continue }
            open[from] = out.count
            out.append(EvictionWindow(provider: from, start: c.at, end: nil,
                                      cause: c.precededBy.map(String.init) ?? c.precededByFailure ?? "error"))
        }
        return out
    }
}

/// SVG chart geometry, pure: axes map values to pixels, series become point lists.
public enum Chart {
    public struct Axis: Sendable, Equatable {
        public var lo: Double
        public var hi: Double
        public var log: Bool

        public init(_ lo: Double, _ hi: Double, log: Bool = false) {
            self.log = log
            let l = log ? Swift.max(lo, 1e-9) : lo
            self.lo = l.isFinite ? l : 0
            let h = hi.isFinite ? hi : self.lo + 1
            self.hi = h > self.lo ? h : self.lo + (log ? self.lo * 9 + 1 : 1)
        }

        /// Where `v` falls between lo (0) and hi (1), clamped.
        public func fraction(_ v: Double) -> Double {
            guard v.isFinite else { return v > 0 ? 1 : 0 }
            let f = log ? (Foundation.log10(Swift.max(v, lo)) - Foundation.log10(lo)) / (Foundation.log10(hi) - Foundation.log10(lo))
                        : (v - lo) / (hi - lo)
            return Swift.min(1, Swift.max(0, f))
        }
    }

    /// The plot area of a chart in pixels.
    public struct Frame: Sendable, Equatable {
        public var width = 960.0, height = 240.0
        public var left = 64.0, right = 16.0, top = 28.0, bottom = 40.0
        public init() {}
        public func x(_ v: Double, _ a: Axis) -> Double { left + a.fraction(v) * (width - left - right) }
        public func y(_ v: Double, _ a: Axis) -> Double { height - bottom - a.fraction(v) * (height - top - bottom) }
    }

    /// Round tick values between lo and hi (1, 2 or 5 times a power of ten apart).
    public static func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        guard lo.isFinite, hi.isFinite, hi > lo, count > 0 else { return [lo.isFinite ? lo : 0] }
        let raw = (hi - lo) / Double(count)
        let mag = pow(10, floor(log10(raw)))
        let mult = [1.0, 2, 5, 10].first { $0 * mag >= raw } ?? 10
        // Below 1, divide by the power of ten's inverse (6 / 10 is 0.6; 6 * 0.1 is not).
        let inv = mag < 1 ? (1 / mag).rounded() : 1
        let unit = mag < 1 ? mult : mult * mag
        let step = unit / inv
        var out: [Double] = []
        var n = ceil(lo / step)
        while n * step <= hi + step * 1e-9 && out.count < 40 {
            out.append(n * unit / inv + 0)
            n += 1
        }
        return out
    }

    /// A number for a tick label: no more decimals than it needs.
    public static func label(_ v: Double) -> String {
        if v == v.rounded() && abs(v) < 1e15 { return Units.fixed(v, 0) }
        if abs(v) >= 10 { return Units.fixed(v, 1) }
        return abs(v) >= 0.1 ? Units.fixed(v, 2) : Units.fixed(v, 4)
    }

    /// A point list for `<polyline points=...>`.
    public static func polyline(_ pts: [(Double, Double)], _ f: Frame, _ x: Axis, _ y: Axis) -> String {
        var o = ""
        o.reserveCapacity(pts.count * 12)
        for (i, p) in pts.enumerated() {
            if i > 0 { o += " " }
            o += Units.fixed(f.x(p.0, x), 1) + "," + Units.fixed(f.y(p.1, y), 1)
        }
        return o
    }

    /// Layers stacked from the bottom: layer k's upper edge is the sum of layers 0...k.
    public static func stack(_ layers: [[Double]]) -> [[Double]] {
        var out: [[Double]] = []
        var sum: [Double] = []
        for l in layers {
            if sum.count < l.count { sum += [Double](repeating: 0, count: l.count - sum.count) }
            for (i, v) in l.enumerated() { sum[i] += v }
            out.append(sum)
        }
        return out
    }

    /// The percentile axis of an HdrHistogram plot: x = 1 / (1 - p), log scaled.
    public static func percentileX(_ p: Double) -> Double { 1 / Swift.max(1e-7, 1 - p / 100) }

    /// (percentile, ms) pairs of a histogram in microseconds, from 0 % to the max, tenths of a decade
    /// apart on the percentile axis, stopping where the histogram has no more values to tell apart.
    public static func percentileCurve(_ h: Histogram<UInt64>) -> [(Double, Double)] {
        guard h.totalCount > 0 else { return [] }
        var out: [(Double, Double)] = []
        for i in 0...60 {
            let x = pow(10, Double(i) / 10)
            let p = 100 * (1 - 1 / x)
            if x > Double(h.totalCount) { break }
            out.append((p, Double(h.valueAtPercentile(p)) / 1000))
        }
        out.append((100 * (1 - 1 / Swift.max(2, Double(h.totalCount))), Double(h.max) / 1000))
        return out
    }
}

/// Escapes text for HTML and XML, in text and in attribute values (names in records and
/// labs are outside bytes): the five specials, newlines and tabs as references (so an
/// attribute keeps them), and what XML 1.0 cannot carry (other control characters, lone
/// surrogates, U+FFFE/U+FFFF) replaced. The HTML report and `test --junit` both use it.
public func htmlEscape(_ s: String) -> String {
    var o = ""
    o.reserveCapacity(s.utf8.count)
    for c in s.unicodeScalars {
        switch c {
        case "&": o += "&amp;"
        case "<": o += "&lt;"
        case ">": o += "&gt;"
        case "\"": o += "&quot;"
        case "'": o += "&#39;"
        case "\n": o += "&#10;"
        case "\t": o += "&#9;"
        default:
            let v = c.value
            if v < 0x20 || (0xD800...0xDFFF).contains(v) || v == 0xFFFE || v == 0xFFFF {
                o += "\u{FFFD}"
            } else {
                o.unicodeScalars.append(c)
            }
        }
    }
    return o
}

/// The HTML report: one self-contained page (inline CSS and SVG, no script, nothing fetched).
public struct HTMLReport {
    public var title: String
    public var files: [String]
    public var report: Report
    public var series: TimeSeries
    public var corrected: Histogram<UInt64>
    public var fromSend: Histogram<UInt64>
    /// Expectations as checked: text, holds, measured.
    public var expectations: [(String, Bool, String)]
    /// Failover group (0-based) of a provider, when known: providers of a group share its colour.
    public var groups: [String: Int]

    public init(title: String = "failover-lab report", files: [String], report: Report, series: TimeSeries,
                builder: ReportBuilder, expectations: [(String, Bool, String)] = [], groups: [String: Int] = [:]) {
        self.title = title
        self.files = files
        self.report = report
        self.series = series
        self.corrected = builder.corrected
        self.fromSend = builder.uncorrected
        self.expectations = expectations
        self.groups = groups
    }

    static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
    static let statusColors = ["#7f7f7f", "#9edae5", "#2ca02c", "#1f77b4", "#ff7f0e", "#d62728", "#9467bd"]
    static let statusNames = ["error", "1xx", "2xx", "3xx", "4xx", "5xx", "other"]

    /// Colour of each provider: its group's when known, else one of its own after the groups'.
    public static func colors(_ providers: [String], groups: [String: Int]) -> [String: String] {
        let groupCount = (groups.values.max() ?? -1) + 1
        var out: [String: String] = [:]
        var next = groupCount
        for p in providers {
            if let g = groups[p], g >= 0 {
                out[p] = palette[g % palette.count]
            } else {
                out[p] = palette[next % palette.count]
                next += 1
            }
        }
        return out
    }

    static let css = """
    body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff;max-width:1000px}
    h1{font-size:20px}h2{font-size:16px;margin-top:28px}
    table{border-collapse:collapse;font-variant-numeric:tabular-nums}td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #ddd}
    td:first-child,th:first-child,#timeline td,#timeline th,#expectations td{text-align:left}
    svg{display:block;background:#fafafa;border:1px solid #e4e4e4;max-width:100%;height:auto}
    .axis line{stroke:#ccc}.axis text,.legend text{font-size:11px;fill:#555}
    .series polyline{fill:none;stroke-width:1.6}.eviction{fill:#d62728;opacity:.13}
    .ok{color:#2a7d2a}.failed{color:#c62828;font-weight:bold}.worse{color:#c62828}.better{color:#2a7d2a}
    """

    /// The whole page.
    public var html: String {
        var o = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + htmlEscape(title) + "</title><style>"
        o += Self.css + "</style></head><body>\n<h1>" + htmlEscape(title) + "</h1>\n"
        o += parametersSection
        if !expectations.isEmpty { o += expectationSection }
        let pts = series.points()
        let colors = Self.colors(series.providers, groups: groups)
        let windows = EvictionWindow.windows(report.timeline)
        let end = Double(report.span) / 1e9
        o += "<h2>Served by (requests/s per provider; red bands: provider out after a failure)</h2>\n"
        o += Self.servedBy(pts, providers: series.providers, colors: colors, windows: windows, runEnd: end)
        o += "<h2>Status over time (responses/s by class, stacked)</h2>\n" + Self.statusChart(pts)
        o += "<h2>Latency over time (from send, p50 and p99)</h2>\n" + Self.latencyChart([("", pts)])
        o += "<h2>Latency distribution (HdrHistogram)</h2>\n"
        o += Self.percentileChart([("corrected", "#d62728", Chart.percentileCurve(corrected)),
                                   ("from send", "#1f77b4", Chart.percentileCurve(fromSend))])
        o += providerSection + timelineSection(windows)
        o += "</body></html>\n"
        return o
    }

    var parametersSection: String {
        let r = report
        var rows: [(String, String)] = [("files", files.joined(separator: ", "))]
        if let w = r.startWall { rows.append(("started", WallTime.format(w))) }
        rows += [("requests", "\(r.requests) (\(r.sent) sent, \(r.unsent) never sent, \(r.late) late)"),
                 ("span", Units.formatDuration(r.span)),
                 ("rate", Units.fixed(r.achievedRate, 1) + "/s sent, " + Units.fixed(r.throughput, 1) + "/s finished"),
                 ("errors", "\(r.errors)"),
                 ("status", r.statusCounts.sorted { $0.key < $1.key }.map { "\($0.key == 0 ? "error" : String($0.key)): \($0.value)" }.joined(separator: ", "))]
        for (name, s) in [("latency corrected", r.corrected), ("latency from send", r.uncorrected)] {
            guard let s else { continue }
            rows.append((name, "p50 " + Units.formatDuration(s.p50) + ", p99 " + Units.formatDuration(s.p99)
                         + ", p99.9 " + Units.formatDuration(s.p999) + ", max " + Units.formatDuration(s.max)))
        }
        if r.skippedLines > 0 { rows.append(("skipped lines", "\(r.skippedLines)")) }
        var o = "<h2>Run</h2>\n<table id=\"parameters\">"
        for (k, v) in rows { o += "<tr><td>" + htmlEscape(k) + "</td><td style=\"text-align:left\">" + htmlEscape(v) + "</td></tr>" }
        return o + "</table>\n"
    }

    var expectationSection: String {
        var o = "<h2>Expectations</h2>\n<table id=\"expectations\">"
        for (text, holds, measured) in expectations {
            o += "<tr class=\"expectation\" data-holds=\"\(holds)\"><td class=\"" + (holds ? "ok\">ok" : "failed\">FAILED") + "</td><td>"
                + htmlEscape(text) + "</td><td>measured " + htmlEscape(measured) + "</td></tr>"
        }
        return o + "</table>\n"
    }

    var providerSection: String {
        guard !report.providers.isEmpty else { return "" }
        var o = "<h2>Providers</h2>\n<table id=\"providers\"><tr><th>provider</th><th>served</th><th>share</th><th>attempts</th><th>failed</th><th>p50</th><th>p99</th><th>tokens</th><th>status</th></tr>"
        for p in report.providers {
            let codes = p.statusCounts.sorted { $0.key < $1.key }.map { "\($0.key)&times;\($0.value)" }.joined(separator: " ")
            let p50: String = p.latency.map { Units.formatDuration($0.p50) } ?? "-"
            let p99: String = p.latency.map { Units.formatDuration($0.p99) } ?? "-"
            let name = htmlEscape(p.provider)
            o += "<tr data-provider=\"\(name)\"><td>\(name)</td><td>\(p.served)</td><td>\(pct(p.served, report.requests))</td>"
            o += "<td>\(p.attempts)</td><td>\(p.failedAttempts)</td><td>\(p50)</td><td>\(p99)</td><td>\(p.tokens)</td><td>\(codes)</td></tr>"
        }
        return o + "</table>\n"
    }

    func timelineSection(_ windows: [EvictionWindow]) -> String {
        guard !report.timeline.isEmpty else { return "" }
        var o = "<h2>Failover timeline</h2>\n<table id=\"timeline\"><tr><th>at</th><th>change</th><th>after</th><th>request</th></tr>"
        let shown = 500
        for c in report.timeline.prefix(shown) {
            let when = "+" + Units.fixed(Double(c.at) / 1e9, 3) + "s" + (c.wall != 0 ? " " + WallTime.format(c.wall) : "")
            let change = c.from.map { $0 + " → " + c.to } ?? "first served by " + c.to
            let after = c.precededBy.map(String.init) ?? c.precededByFailure ?? ""
            o += "<tr><td>" + htmlEscape(when) + "</td><td>" + htmlEscape(change) + "</td><td>" + htmlEscape(after) + "</td><td>\(c.seq)</td></tr>"
        }
        o += "</table>\n"
        let more = UInt64(Swift.max(0, report.timeline.count - shown)) + report.timelineDropped
        if more > 0 { o += "<p>… \(more) more changes (report --json lists them)</p>\n" }
        if !windows.isEmpty {
            var parts: [String] = []
            for w in windows {
                let end: String = w.end.map { "to +" + Units.fixed(Double($0) / 1e9, 3) + "s" } ?? "to the end"
                parts.append("\(htmlEscape(w.provider)) from +\(Units.fixed(Double(w.start) / 1e9, 3))s \(end) (after \(htmlEscape(w.cause)))")
            }
            o += "<p id=\"evictions\">Out of rotation: " + parts.joined(separator: "; ") + "</p>\n"
        }
        return o
    }

    // MARK: charts

    static func axes(_ f: Chart.Frame, _ x: Chart.Axis, _ y: Chart.Axis, xLabel: String, yLabel: String,
                     xTicks: [(Double, String)]? = nil) -> String {
        var o = "<g class=\"axis\">"
        for t in Chart.ticks(y.lo, y.hi) {
            let py = Units.fixed(f.y(t, y), 1)
            o += "<line x1=\"\(Units.fixed(f.left, 1))\" x2=\"\(Units.fixed(f.width - f.right, 1))\" y1=\"\(py)\" y2=\"\(py)\"/>"
            o += "<text x=\"\(Units.fixed(f.left - 6, 1))\" y=\"\(py)\" text-anchor=\"end\" dominant-baseline=\"middle\">\(Chart.label(t))</text>"
        }
        let xt = xTicks ?? Chart.ticks(x.lo, x.hi, count: 8).map { ($0, Chart.label($0)) }
        for (t, text) in xt {
            let px = Units.fixed(f.x(t, x), 1)
            o += "<line x1=\"\(px)\" x2=\"\(px)\" y1=\"\(Units.fixed(f.top, 1))\" y2=\"\(Units.fixed(f.height - f.bottom, 1))\"/>"
            o += "<text x=\"\(px)\" y=\"\(Units.fixed(f.height - f.bottom + 14, 1))\" text-anchor=\"middle\">" + htmlEscape(text) + "</text>"
        }
        o += "<text x=\"\(Units.fixed((f.left + f.width - f.right) / 2, 1))\" y=\"\(Units.fixed(f.height - 6, 1))\" text-anchor=\"middle\">" + htmlEscape(xLabel) + "</text>"
        o += "<text x=\"8\" y=\"8\" dominant-baseline=\"hanging\">" + htmlEscape(yLabel) + "</text>"
        return o + "</g>"
    }

    static func legend(_ items: [(String, String)], _ f: Chart.Frame) -> String {
        var o = "<g class=\"legend\">"
        var x = f.left + 64
        for (name, color) in items {
            o += "<rect x=\"\(Units.fixed(x, 1))\" y=\"7\" width=\"10\" height=\"10\" fill=\"\(color)\"/>"
            o += "<text x=\"\(Units.fixed(x + 14, 1))\" y=\"16\">" + htmlEscape(name) + "</text>"
            x += 24 + Double(name.count) * 6.5
        }
        return o + "</g>"
    }

    static func svgOpen(_ id: String, _ f: Chart.Frame) -> String {
        "<svg id=\"\(id)\" viewBox=\"0 0 \(Units.fixed(f.width, 0)) \(Units.fixed(f.height, 0))\" width=\"\(Units.fixed(f.width, 0))\" height=\"\(Units.fixed(f.height, 0))\" role=\"img\">"
    }

    /// Points as steps of a rate: each point's value held over its bucket.
    static func steps(_ pts: [TimeSeries.Point], _ value: (TimeSeries.Point) -> Double) -> [(Double, Double)] {
        var out: [(Double, Double)] = []
        out.reserveCapacity(pts.count * 2)
        for p in pts {
            let v = value(p)
            out.append((p.start, v))
            out.append((p.start + p.width, v))
        }
        return out
    }

    static func servedBy(_ pts: [TimeSeries.Point], providers: [String], colors: [String: String],
                         windows: [EvictionWindow], runEnd: Double) -> String {
        let f = Chart.Frame()
        let xEnd = Swift.max(runEnd, pts.last.map { $0.start + $0.width } ?? 0)
        let x = Chart.Axis(0, xEnd)
        let top = pts.flatMap(\.servedRate).max() ?? 0
        let y = Chart.Axis(0, Swift.max(1, top * 1.1))
        var o = svgOpen("served-by", f)
        o += axes(f, x, y, xLabel: "seconds from start", yLabel: "req/s")
        for w in windows {
            let s = Double(w.start) / 1e9, e = w.end.map { Double($0) / 1e9 } ?? xEnd
            let x0 = f.x(s, x), x1 = Swift.max(f.x(e, x), x0 + 1)
            let name = htmlEscape(w.provider)
            o += "<rect class=\"eviction\" data-provider=\"\(name)\" data-start-s=\"\(Units.fixed(s, 3))\" data-end-s=\"\(Units.fixed(e, 3))\""
            o += " data-open=\"\(w.end == nil)\" x=\"\(Units.fixed(x0, 1))\" y=\"\(Units.fixed(f.top, 1))\" width=\"\(Units.fixed(x1 - x0, 1))\""
            o += " height=\"\(Units.fixed(f.height - f.top - f.bottom, 1))\"><title>\(name) out after \(htmlEscape(w.cause))</title></rect>"
        }
        for (k, p) in providers.enumerated() {
            let color = colors[p] ?? palette[k % palette.count]
            let line = steps(pts) { k < $0.servedRate.count ? $0.servedRate[k] : 0 }
            o += "<g class=\"series\" data-provider=\"" + htmlEscape(p) + "\"><polyline stroke=\"\(color)\" points=\""
                + Chart.polyline(line, f, x, y) + "\"/></g>"
        }
        o += legend(providers.enumerated().map { ($0.element, colors[$0.element] ?? palette[$0.offset % palette.count]) }, f)
        return o + "</svg>\n"
    }

    static func statusChart(_ pts: [TimeSeries.Point]) -> String {
        let f = Chart.Frame()
        let x = Chart.Axis(0, pts.last.map { $0.start + $0.width } ?? 1)
        let layers = (0..<TimeSeries.statusClasses).map { c in pts.map { c < $0.statusRate.count ? $0.statusRate[c] : 0 } }
        // 2xx at the bottom, then 3xx, 4xx, 5xx, errors and others on top.
        let order = [2, 3, 1, 4, 5, 0, 6].filter { c in layers[c].contains { $0 > 0 } }
        let stacked = Chart.stack(order.map { layers[$0] })
        let y = Chart.Axis(0, Swift.max(1, (stacked.last?.max() ?? 0) * 1.1))
        var o = svgOpen("status", f)
        o += axes(f, x, y, xLabel: "seconds from start", yLabel: "responses/s")
        for (k, c) in order.enumerated().reversed() {
            var poly: [(Double, Double)] = []
            for (i, p) in pts.enumerated() {
                poly.append((p.start, stacked[k][i]))
                poly.append((p.start + p.width, stacked[k][i]))
            }
            for (i, p) in pts.enumerated().reversed() {
                let below = k > 0 ? stacked[k - 1][i] : 0
                poly.append((p.start + p.width, below))
                poly.append((p.start, below))
            }
            o += "<g class=\"status-class\" data-class=\"\(statusNames[c])\"><polygon fill=\"\(statusColors[c])\" fill-opacity=\"0.85\" points=\""
                + Chart.polyline(poly, f, x, y) + "\"/></g>"
        }
        o += legend(order.map { (statusNames[$0], statusColors[$0]) }, f)
        return o + "</svg>\n"
    }

    /// p50 (dashed) and p99 lines of one or more runs (named for a comparison).
    static func latencyChart(_ runs: [(String, [TimeSeries.Point])]) -> String {
        let f = Chart.Frame()
        let xEnd = runs.compactMap { $0.1.last.map { $0.start + $0.width } }.max() ?? 1
        let x = Chart.Axis(0, xEnd)
        let top = runs.flatMap { $0.1.compactMap(\.p99) }.max() ?? 1
        let y = Chart.Axis(0, Swift.max(0.001, top * 1.1))
        var o = svgOpen(runs.count > 1 ? "latency-compare" : "latency", f)
        o += axes(f, x, y, xLabel: "seconds from start", yLabel: "ms")
        var items: [(String, String)] = []
        for (k, (name, pts)) in runs.enumerated() {
            let color = runs.count > 1 ? palette[k % palette.count] : "#d62728"
            for (q, dash) in [("p50", "5 3"), ("p99", "")] {
                let line = pts.compactMap { p -> (Double, Double)? in
                    (q == "p50" ? p.p50 : p.p99).map { (p.start + p.width / 2, $0) }
                }
                let stroke = runs.count > 1 || q == "p99" ? color : "#1f77b4"
                o += "<g class=\"series\" data-percentile=\"\(q)\" data-run=\"\(htmlEscape(name))\"><polyline stroke=\"\(stroke)\""
                o += (dash.isEmpty ? "" : " stroke-dasharray=\"\(dash)\"") + " points=\"" + Chart.polyline(line, f, x, y) + "\"/></g>"
                items.append(((name.isEmpty ? "" : name + " ") + q, stroke))
            }
        }
        o += legend(items, f)
        return o + "</svg>\n"
    }

    /// HdrHistogram-style: latency against percentile, the percentile axis log scaled (1/(1-p)).
    static func percentileChart(_ curves: [(String, String, [(Double, Double)])]) -> String {
        var f = Chart.Frame()
        f.height = 280
        let maxX = curves.flatMap { $0.2.map { Chart.percentileX($0.0) } }.max() ?? 10
        let x = Chart.Axis(1, Swift.max(10, maxX), log: true)
        let top = curves.flatMap { $0.2.map(\.1) }.max() ?? 1
        let y = Chart.Axis(0, Swift.max(0.001, top * 1.1))
        var ticks: [(Double, String)] = []
        for (p, text) in [(0.0, "0%"), (90, "90%"), (99, "99%"), (99.9, "99.9%"), (99.99, "99.99%"), (99.999, "99.999%"), (99.9999, "99.9999%")]
            where Chart.percentileX(p) <= x.hi * 1.0001 {
            ticks.append((Chart.percentileX(p), text))
        }
        var o = svgOpen("percentiles", f)
        o += axes(f, x, y, xLabel: "percentile", yLabel: "ms", xTicks: ticks)
        for (name, color, pts) in curves where !pts.isEmpty {
            o += "<g class=\"series\" data-histogram=\"" + htmlEscape(name) + "\"><polyline stroke=\"\(color)\" points=\""
                + Chart.polyline(pts.map { (Chart.percentileX($0.0), $0.1) }, f, x, y) + "\"/></g>"
        }
        o += legend(curves.map { ($0.0, $0.1) }, f)
        return o + "</svg>\n"
    }
}

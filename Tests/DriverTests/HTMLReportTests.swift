import Foundation
import Testing
@testable import Driver

/// A small failover run as records: http-429-provider answers the first request with 429, is out
/// of rotation while openai-provider serves 200s, then comes back at 1.5 s.
/// 150 requests, one every 20 ms.
func failoverRunRecords(latencyMs: UInt64 = 5, count: Int = 150, wall: Int64 = 1_795_769_622_000_000_000) -> [RequestRecord] {
    (0..<count).map { i in
        let t = UInt64(i) * 20_000_000
        let lat = (latencyMs + UInt64(i % 7)) * 1_000_000
        let provider: String, status: Int, attempts: [Attempt]
        if i == 0 {
            (provider, status, attempts) = ("http-429-provider", 429, [Attempt(provider: "http-429-provider", status: 429)])
        } else if i < 75 {
            (provider, status, attempts) = ("openai-provider", 200, [Attempt(provider: "openai-provider", status: 200)])
        } else {
            (provider, status, attempts) = ("http-429-provider", 200, [Attempt(provider: "http-429-provider", status: 200)])
        }
        return RequestRecord(seq: UInt64(i), runStartWall: wall, intended: t, sent: t + 100_000, url: "http://127.0.0.1:1/http-429",
                             status: status, latency: lat, correctedLatency: lat + 100_000, ttfb: lat / 2,
                             provider: provider, attempts: attempts)
    }
}

/// Report, builder and series of records, read back from their JSON lines as `report` does.
func reportParts(_ records: [RequestRecord]) throws -> (Report, ReportBuilder, TimeSeries) {
    var b = ReportBuilder()
    var s = TimeSeries()
    for r in records {
        let back = try RequestRecord(line: r.jsonLine)
        b.add(back)
        s.add(back)
    }
    return (b.build(), b, s)
}

/// Attribute values of `attr` on elements matching `tagPrefix` (e.g. `<rect class="eviction"`).
func attributeValues(_ html: String, element tagPrefix: String, _ attr: String) -> [String] {
    var out: [String] = []
    var rest = Substring(html)
    while let r = rest.range(of: tagPrefix) {
        let tagEnd = rest[r.upperBound...].firstIndex(of: ">") ?? rest.endIndex
        let tag = rest[r.lowerBound..<tagEnd]
        if let a = tag.range(of: " " + attr + "=\"") {
            out.append(String(tag[a.upperBound...].prefix { $0 != "\"" }))
        }
        rest = rest[tagEnd...]
    }
    return out
}

/// src= and href= values that would make a browser fetch something.
func externalReferences(_ html: String) -> [String] {
    var out: [String] = []
    for attr in ["src", "href", "xlink:href", "action"] {
        for quote in ["\"", "'"] {
            var rest = Substring(html.lowercased())
            while let r = rest.range(of: attr + "=" + quote) {
                let value = rest[r.upperBound...].prefix { String($0) != quote }
                if value.contains("://") || value.hasPrefix("//") { out.append(String(value)) }
                rest = rest[r.upperBound...]
            }
        }
    }
    if html.lowercased().contains("@import") || html.lowercased().contains("url(") { out.append("css url()/@import") }
    return out
}

@Suite struct HTMLReportTests {
    @Test func logBinsKeepLatencyWithinTenPercent() {
        for ms in [0.001, 0.5, 1, 3.3, 12, 250, 4000, 60000] {
            let i = LogBins.index(UInt64(ms * 1e6))
            let back = LogBins.valueMs(i)
            #expect(abs(back - ms) / ms < 0.1, "\(ms) ms came back as \(back)")
        }
        var bins = [UInt64](repeating: 0, count: LogBins.count)
        for ms in 1...100 { bins[LogBins.index(UInt64(ms) * 1_000_000)] += 1 }
        let p50 = LogBins.percentileMs(bins, 50)!, p99 = LogBins.percentileMs(bins, 99)!
        #expect(abs(p50 - 50) < 5 && abs(p99 - 99) < 9)
        #expect(LogBins.percentileMs([UInt64](repeating: 0, count: LogBins.count), 50) == nil)
        #expect(LogBins.index(.max) == LogBins.count - 1)
    }

    @Test func timeSeriesWidensAndKeepsEveryRequest() {
        var s = TimeSeries(width: 10_000_000)
        let n = 10_000
        for i in 0..<n {
            // 100 minutes: far past 2048 buckets of 10 ms, so the width must double several times.
            let t = UInt64(i) * 600_000_000
            s.add(RequestRecord(seq: UInt64(i), intended: t, sent: t, url: "u", status: i % 10 == 0 ? 503 : 200,
                                latency: 1_000_000, provider: i % 2 == 0 ? "a" : "b"))
        }
        #expect(s.buckets.count <= TimeSeries.maxBuckets)
        #expect(s.width > 10_000_000)
        #expect(s.buckets.reduce(0) { $0 + $1.count } == UInt64(n))
        #expect(s.providers == ["a", "b"])
        let pts = s.points(maxPoints: 100)
        #expect(pts.count <= 100 && pts.count > 50)
        let served = pts.reduce(0.0) { acc, p in acc + p.servedRate.reduce(0, +) * p.width }
        let fives = pts.reduce(0.0) { $0 + $1.statusRate[5] * $1.width }
        #expect(abs(served - Double(n)) < 1e-6 * Double(n))
        #expect(abs(fives - Double(n / 10)) < 1e-3)
        #expect(pts.allSatisfy { $0.p50 != nil && abs($0.p50! - 1) < 0.1 })
    }

    @Test func evictionWindowsFollowTheTimeline() throws {
        let (report, _, _) = try reportParts(failoverRunRecords())
        let w = EvictionWindow.windows(report.timeline)
        // Out from the first request after the 429 (sent at 20.1 ms) to its return (request 75, 1500.1 ms);
        // openai-provider's change back after a 200 is no eviction.
        #expect(w == [EvictionWindow(provider: "http-429-provider", start: 20_100_000, end: 1_500_100_000, cause: "429")])
        let open = EvictionWindow.windows([
            FailoverChange(at: 0, wall: 0, from: nil, to: "a", precededBy: nil, seq: 0),
            FailoverChange(at: 5, wall: 0, from: "a", to: "b", precededBy: nil, precededByFailure: "timeout", seq: 3),
            FailoverChange(at: 9, wall: 0, from: "b", to: "c", precededBy: 200, seq: 4),
        ])
        #expect(open == [EvictionWindow(provider: "a", start: 5, end: nil, cause: "timeout")])
    }

    @Test func chartGeometry() {
        let f = Chart.Frame()
        let x = Chart.Axis(0, 10)
        #expect(f.x(0, x) == f.left && f.x(10, x) == f.width - f.right && f.x(99, x) == f.width - f.right)
        let y = Chart.Axis(0, 100)
        #expect(f.y(0, y) == f.height - f.bottom && f.y(100, y) == f.top)
        let logX = Chart.Axis(1, 1000, log: true)
        #expect(abs(logX.fraction(10) - 1.0 / 3) < 1e-9 && abs(logX.fraction(100) - 2.0 / 3) < 1e-9)
        #expect(Chart.ticks(0, 10) == [0, 2, 4, 6, 8, 10])
        #expect(Chart.ticks(0, 0.9) == [0, 0.2, 0.4, 0.6, 0.8])
        #expect(Chart.stack([[1, 2], [3, 4], [0, 1]]) == [[1, 2], [4, 6], [4, 7]])
        #expect(Chart.percentileX(99) > 99.99 && Chart.percentileX(99) < 100.01)
        // Hostile numbers give a usable axis, never a trap.
        let bad = Chart.Axis(.nan, .infinity)
        #expect(bad.hi > bad.lo && bad.fraction(.nan) == 0)
        #expect(Chart.polyline([(0, 0), (10, 100)], f, x, y) == "64.0,200.0 944.0,28.0")
    }

    @Test func htmlHasOneSeriesPerProviderAndTheEvictionBand() throws {
        var records = failoverRunRecords()
        records[3].provider = "<script>alert(1)</script>"
        let (report, builder, series) = try reportParts(records)
        let page = HTMLReport(files: ["run.jsonl"], report: report, series: series, builder: builder,
                              expectations: [("status[429] <= 0", false, "1")], groups: ["openai-provider": 1]).html
        #expect(Set(attributeValues(page, element: "<g class=\"series\" data-provider", "data-provider"))
                == ["http-429-provider", "openai-provider", "&lt;script&gt;alert(1)&lt;/script&gt;"])
        #expect(!page.contains("<script"))
        #expect(attributeValues(page, element: "<rect class=\"eviction\"", "data-provider").contains("http-429-provider"))
        #expect(attributeValues(page, element: "<rect class=\"eviction\"", "data-start-s") == ["0.020"])
        #expect(attributeValues(page, element: "<rect class=\"eviction\"", "data-end-s") == ["1.500"])
        #expect(externalReferences(page).isEmpty)
        #expect(page.contains("id=\"percentiles\"") && page.contains("data-histogram=\"corrected\"") && page.contains("data-histogram=\"from send\""))
        #expect(page.contains("data-class=\"2xx\"") && page.contains("data-class=\"4xx\""))
        #expect(page.contains("class=\"expectation\" data-holds=\"false\""))
        #expect(page.contains("id=\"timeline\"") && page.contains("id=\"providers\""))
        // The group's colour: openai-provider is in group 2 (index 1), others after the groups.
        #expect(HTMLReport.colors(["x", "openai-provider"], groups: ["openai-provider": 1]) == ["openai-provider": HTMLReport.palette[1], "x": HTMLReport.palette[2]])
    }

    @Test func hostileTimesAndNamesGiveAPageNotATrap() throws {
        // Offsets at the record format's limit, a latency of years, a name with controls and quotes.
        let far = RequestRecord.maxNanos
        let records = [
            RequestRecord(seq: 0, intended: 0, sent: 0, url: "u", status: 200, latency: far, correctedLatency: far, provider: "a\u{1}\"b'"),
            RequestRecord(seq: 1, intended: far, sent: far, url: "u", status: 999, latency: 0, provider: "c"),
            RequestRecord(seq: 2, intended: far / 2, url: "u", error: "not sent"),
        ]
        let (report, builder, series) = try reportParts(records)
        #expect(series.buckets.count <= TimeSeries.maxBuckets)
        let page = HTMLReport(files: ["x"], report: report, series: series, builder: builder).html
        #expect(page.contains("data-provider=\"a\u{FFFD}&quot;b&#39;\""))
        // Units.fixed writes "nan" and "inf" for numbers that are not finite: none may reach a coordinate or label.
        for bad in ["nan", "inf"] {
            for around in [",\(bad)", "\(bad),", "\"\(bad)", "\(bad)\"", ">\(bad)", " \(bad) "] { #expect(!page.contains(around), "\(around)") }
        }
        let empty = HTMLReport(files: [], report: ReportBuilder().build(), series: TimeSeries(), builder: ReportBuilder()).html
        #expect(empty.contains("id=\"served-by\"") && empty.contains("id=\"percentiles\""))
    }

    @Test func aLongRunStaysSmall() throws {
        // 300,000 requests over 50 minutes with failovers every minute; the page's size depends on
        // the points (at most 240 per chart) and the timeline (at most 1000 changes), not the count.
        var b = ReportBuilder()
        var s = TimeSeries()
        for i in 0..<300_000 {
            let t = UInt64(i) * 10_000_000
            let minute = t / 60_000_000_000
            let r = RequestRecord(seq: UInt64(i), intended: t, sent: t, url: "u", status: i % 1000 == 0 ? 429 : 200,
                                  latency: UInt64(1 + i % 50) * 1_000_000, correctedLatency: UInt64(1 + i % 50) * 1_000_000,
                                  provider: minute % 2 == 0 ? "p\(i % 3)" : "q")
            b.add(r)
            s.add(r)
        }
        let page = HTMLReport(files: ["big.jsonl"], report: b.build(), series: s, builder: b).html
        #expect(page.utf8.count < 2_000_000, "\(page.utf8.count) bytes")
        #expect(attributeValues(page, element: "<g class=\"series\" data-provider", "data-provider").count == 4)
    }
}

@Suite struct ReportCompareTests {
    /// A: 100 requests at 100/s, 10 of them 429, 10 ms. B: 200 at 200/s, no 429, 20 ms.
    static func run(count: Int, gapMs: UInt64, latencyMs: UInt64, every429: Int?) -> [RequestRecord] {
        (0..<count).map { i in
            let t = UInt64(i) * gapMs * 1_000_000
            let is429 = every429.map { i % $0 == 0 } ?? false
            return RequestRecord(seq: UInt64(i), intended: t, sent: t, url: "u", status: is429 ? 429 : 200,
                                 latency: latencyMs * 1_000_000, correctedLatency: latencyMs * 1_000_000,
                                 provider: is429 ? "http-429-provider" : "openai-provider")
        }
    }

    @Test func showsKnownDifferencesWithTheirSigns() throws {
        let (a, ba, sa) = try reportParts(Self.run(count: 100, gapMs: 10, latencyMs: 10, every429: 10))
        let (b, bb, sb) = try reportParts(Self.run(count: 200, gapMs: 5, latencyMs: 20, every429: nil))
        let rows = ReportComparison.rows(a, b)
        func row(_ name: String) -> ComparisonRow { rows.first { $0.figure == name }! }
        #expect(abs(row("rate").a! - 100) < 0.5 && abs(row("rate").b! - 200) < 0.5 && row("rate").change! > 99)
        #expect(row("rate").changeText.hasPrefix("+100.0/s (+100.0%)"))
        #expect(row("status 429").a == 10 && row("status 429").b == 0 && row("status 429").changeText == "-10.00% pts")
        #expect(row("status 200").change == 10)
        #expect(abs(row("corrected p50").change! - 10) < 0.05 && row("corrected p50").changeText.hasPrefix("+"))
        #expect(row("provider http-429-provider share").b == 0 && row("provider http-429-provider p50").b == nil)
        #expect(row("provider http-429-provider p50").changeText == "-")
        #expect(row("requests").changeText == "+100 (+100.0%)")
        let same = ReportComparison.rows(a, a)
        #expect(same.allSatisfy { $0.change == nil || $0.change == 0 })
        #expect(same.first { $0.figure == "rate" }!.changeText == "=")

        let text = ReportComparison.text(rows, a: "a.jsonl", b: "b.jsonl")
        #expect(text.contains("status 429") && text.contains("-10.00% pts"))
        let json = ReportComparison.json(rows, a: "a.jsonl", b: "b.jsonl")
        let f429 = json["figures"]?.array?.first { $0["figure"]?.string == "status 429" }
        #expect(f429?["change"]?.number == -10 && f429?["a"]?.number == 10)
        let page = ReportComparison.html(rows, a: ("a.jsonl", sa, ba.corrected), b: ("b.jsonl", sb, bb.corrected))
        #expect(Set(attributeValues(page, element: "<g class=\"series\" data-run", "data-run")) == ["A", "B"])
        #expect(page.contains("<td class=\"better\">-10.00% pts</td>"))
        #expect(row("rate").verdict == "better" && row("corrected p99").verdict == "worse" && row("status 200").verdict == "better")
        #expect(row("provider openai-provider share").verdict == "")
        #expect(externalReferences(page).isEmpty)
    }
}

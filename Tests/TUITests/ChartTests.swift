import Foundation
import Testing
@testable import TUI

/// Chart geometry as pure functions: series to cells, axes, bands, windows, a box too narrow.
@Suite struct ChartGeometryTests {
    func chars(_ cells: [[Cell]]) -> [String] {
        cells.map { row in String(String.UnicodeScalarView(row.map(\.char))) }
    }

    @Test func spansCoverTheWindowOnceAtAnyWidth() {
        for (window, points) in [(60, 120), (60, 30), (10, 7), (600, 101), (10, 200), (30, 30)] {
            let spans = Charts.spans(window: window, end: 100, points: points)
            #expect(spans.count == points)
            #expect(spans.first?.lowerBound == 100 - window)
            #expect(spans.last?.upperBound == 100)
            for (a, b) in zip(spans, spans.dropFirst()) {
                // Next to each other or the same second (a second wider than a point), never a gap.
                #expect(b.lowerBound == a.upperBound || b == a, "window \(window), \(points) points: \(a) then \(b)")
            }
        }
        #expect(Charts.spans(window: 60, end: 100, points: 30)[0] == 40..<42)
        #expect(Charts.spans(window: 60, end: 100, points: 0).isEmpty)
        #expect(Charts.spans(window: 60, end: Int.min, points: 10).isEmpty)
        #expect(Charts.spans(window: Int.max, end: Int.max / 2 - 1, points: Int.max).count == 100_000)
    }

    @Test func stackedBrailleFillsDotsFromTheBottom() {
        // Two cells = four dot columns: full, full, empty, half.
        let s = ChartSeries(label: "a", role: .group1, values: [1, 1, 0, 0.5])
        let cells = Charts.plotCells([s], kind: .stacked, top: 1, columns: 2, rows: 1, dots: .braille)
        #expect(chars(cells) == ["⣿⢠"])
        #expect(cells[0][0].role == .group1)
        // Two rows: half fills exactly the bottom row.
        let two = Charts.plotCells([ChartSeries(label: "a", role: .group1, values: [0.5, 0.5])], kind: .stacked, top: 1, columns: 1, rows: 2, dots: .braille)
        #expect(chars(two) == [" ", "⣿"])
    }

    @Test func aStackShowsTheUpperSeriesWhereTheyShareACell() {
        let ok = ChartSeries(label: "2xx", role: .status2xx, values: [0.75, 0.75])
        let bad = ChartSeries(label: "5xx", role: .status5xx, values: [0.25, 0.25])
        let cells = Charts.plotCells([ok, bad], kind: .stacked, top: 1, columns: 1, rows: 2, dots: .braille)
        #expect(chars(cells) == ["⣿", "⣿"])
        #expect(cells[1][0].role == .status2xx)
        #expect(cells[0][0].role == .status5xx)  // 2 dots of 2xx, 2 of 5xx: the failure shows
        // A value too small for a dot still gets one.
        let tiny = ChartSeries(label: "5xx", role: .status5xx, values: [0.001, 0])
        let t = Charts.plotCells([ok, tiny], kind: .stacked, top: 1, columns: 1, rows: 1, dots: .braille)
        #expect(t[0][0].role == .status5xx)
    }

    @Test func linesAreJoinedAndGapsStayGaps() {
        // 0 then top in the next column: the second column is a vertical run of four dots.
        let line = ChartSeries(label: "p50", role: .latency, values: [0, 1, .nan, 1])
        let cells = Charts.plotCells([line], kind: .lines, top: 1, columns: 2, rows: 1, dots: .braille)
        // Cell 0: dot (0,3) and the run (1,0...3). Cell 1: nothing for NaN, one dot on top at x=1.
        #expect(chars(cells) == ["⣸⠈"])
        let ascii = Charts.plotCells([line, ChartSeries(label: "p99", role: .latencyP99, ascii: "*", values: [1, 1, 1, 1])],
                                     kind: .lines, top: 1, columns: 4, rows: 2, dots: .ascii)
        // p99 on top everywhere; p50's bottom dot, and its rise to the top in column 1.
        #expect(chars(ascii) == ["****", "##  "])
    }

    @Test func blocksDrawEighthsAndLinesAsAreas() {
        let s = ChartSeries(label: "a", role: .group1, values: [0.5, 1, 0.125])
        #expect(chars(Charts.plotCells([s], kind: .stacked, top: 1, columns: 3, rows: 1, dots: .block)) == ["▄█▁"])
        // p50 under p99: the bottom is p50's, the part above it p99's.
        let p50 = ChartSeries(label: "p50", role: .latency, values: [0.4])
        let p99 = ChartSeries(label: "p99", role: .latencyP99, values: [1])
        let cells = Charts.plotCells([p50, p99], kind: .lines, top: 1, columns: 1, rows: 2, dots: .block)
        #expect(cells[1][0].role == .latency)
        #expect(cells[0][0].role == .latencyP99)
    }

    @Test func axisLabelsAndTheirTop() {
        #expect(Charts.niceCeiling(1400) == 1500)
        #expect(Charts.niceCeiling(1001) == 1200)
        #expect(Charts.niceCeiling(2000) == 2000)
        #expect(Charts.niceCeiling(3.1) == 4)
        #expect(Charts.niceCeiling(0.0014) == 0.0015)
        #expect(Charts.niceCeiling(9) == 10)
        #expect(Charts.niceCeiling(0) == 1)
        #expect(Charts.niceCeiling(.nan) == 1)
        #expect(Charts.axisLabel(2000, unit: .rate) == "2k")
        #expect(Charts.axisLabel(2500, unit: .rate) == "2.5k")
        #expect(Charts.axisLabel(20, unit: .rate) == "20")
        #expect(Charts.axisLabel(0.25, unit: .rate) == "0.25")
        #expect(Charts.axisLabel(0.0025, unit: .latency) == "2.5ms")
        #expect(Charts.axisLabel(0.0005, unit: .latency, ascii: true) == "500us")
        #expect(Charts.axisLabel(1.5, unit: .latency) == "1.5s")
        #expect(Charts.axisLabel(.infinity, unit: .rate) == "0")
        let series = [ChartSeries(label: "a", role: .group1, values: [300, 700]), ChartSeries(label: "b", role: .group2, values: [900, 0])]
        #expect(Charts.top(series, kind: .stacked) == 1200)
        #expect(Charts.top(series, kind: .lines) == 1000)
    }

    @Test func timeAxisLabelsTheEdgesAndTicksThatFit() {
        let wide = Charts.timeAxis(window: 60, columns: 60)
        #expect(wide.map(\.text) == ["-1m", "-45s", "-30s", "-15s", "now"])
        #expect(wide.first?.column == 0)
        #expect(wide.last?.column == 57)
        let middle = wide.first { $0.text == "-30s" }!
        #expect(middle.column == 28)  // centred on column 30
        // Narrow: no label overlaps or touches another.
        let narrow = Charts.timeAxis(window: 600, columns: 14)
        for (a, b) in zip(narrow, narrow.dropFirst()) { #expect(a.column + a.text.count < b.column) }
        #expect(narrow.map(\.text).first == "-10m")
        #expect(narrow.map(\.text).last == "now")
        #expect(Charts.timeAxis(window: 120, columns: 80).map(\.text) == ["-2m", "-90s", "-1m", "-30s", "now"])
    }

    @Test func evictionBandsSitWhereTheirTimesAre() {
        // 60 columns for 60 s ending at second 100: one column a second, column 0 is second 40.
        let band = ChartBand(label: "p1 out", from: 70, to: 80)
        let cells = Charts.bandCells([band], window: 60, end: 100, columns: 60, glyphs: .unicode)
        let filled = cells.indices.filter { cells[$0].role == .evicted }
        #expect(filled == Array(30..<40))
        #expect(cells[30].role == .evicted)
        #expect(String(String.UnicodeScalarView(cells[30..<40].map(\.char))) == "━ p1 out ━")
        // Still open at now, or partly before the window: clipped to it.
        let early = Charts.bandCells([ChartBand(label: "x", from: 10, to: 45.5)], window: 60, end: 100, columns: 60, glyphs: .plain)
        #expect(early.indices.filter { early[$0].role == .evicted } == Array(0...5))
        #expect(early[0].char == "=")
        // Outside the window: nothing.
        #expect(Charts.bandCells([ChartBand(label: "x", from: 0, to: 30)], window: 60, end: 100, columns: 60, glyphs: .unicode).allSatisfy { $0.char == " " })
    }

    @Test func windowKeysStepFrom10sTo10m() {
        var state = DashboardState(model: SeedLab.start())
        #expect(state.chartWindow == 60)
        _ = state.handle(.char(">"))
        #expect(state.chartWindow == 120)
        _ = state.handle(.char("."))
        _ = state.handle(.char("."))
        _ = state.handle(.char("."))
        #expect(state.chartWindow == 600)
        for _ in 0..<10 { _ = state.handle(.char("<")) }
        #expect(state.chartWindow == 10)
        _ = state.handle(.char(","))
        #expect(state.chartWindow == 10)
        // The window reaches the picture: the time axis says it.
        let model = ChartLab.model()
        for window in Charts.windows {
            let screen = Dashboard.render(model, width: 120, height: 40, options: RenderOptions(chartWindow: window))
            #expect(screen.text.contains("Served by, req/s · \(Charts.duration(window))"))
            #expect(screen.text.contains("-\(Charts.duration(window))"))
        }
    }

    @Test func aChartTooNarrowSaysSo() {
        var screen = Screen(width: 30, height: 8)
        let spec = Charts.servedBy(ChartLab.model(), ChartFrame(model: ChartLab.model(), window: 60, points: 10), marker: "⣿", bandRows: 1)
        Charts.draw(&screen, spec, Rect(x: 0, y: 0, width: 18, height: 8), window: 60, end: 90, dots: .braille, glyphs: .unicode)
        #expect(screen.text.contains("too narrow"))
        #expect(screen.text.contains("needs"))
        #expect(screen.text.contains("\(Charts.minimumColumns + Charts.labelWidth + 3)"))
        #expect(!screen.text.unicodeScalars.contains { (0x2801...0x28FF).contains($0.value) })
        // One column more than the minimum draws.
        var wide = Screen(width: 30, height: 8)
        Charts.draw(&wide, spec, Rect(x: 0, y: 0, width: Charts.minimumColumns + Charts.labelWidth + 3, height: 8), window: 60, end: 90, dots: .braille, glyphs: .unicode)
        #expect(!wide.text.contains("too narrow"))
    }
}

/// What the model keeps for the charts: bounded, and right.
@Suite struct ChartModelTests {
    @Test func latencySketchQuantilesAreCloseAndBounded() throws {
        var sketch = LatencySketch()
        for i in 1...1000 { sketch.add(Double(i) / 10_000) }  // 0.1 ms ... 100 ms
        let p50 = try #require(sketch.quantile(0.5))
        let p99 = try #require(sketch.quantile(0.99))
        #expect(abs(p50 - 0.05) / 0.05 < 0.07)
        #expect(abs(p99 - 0.099) / 0.099 < 0.07)
        #expect(sketch.counts.count == LatencySketch.bucketCount)
        for v in [Double.nan, .infinity, -.infinity, -1, 0, 1e300, .leastNonzeroMagnitude] { sketch.add(v) }
        #expect(sketch.total == 1007)
        #expect(sketch.counts.count == LatencySketch.bucketCount)
        #expect(LatencySketch().quantile(0.5) == nil)
        var merged = LatencySketch()
        merged.merge(sketch)
        merged.merge(sketch)
        #expect(merged.total == 2014)
        #expect(merged.quantile(0.5) == sketch.quantile(0.5))
    }

    @Test func secondsKeepProvidersAndLatenciesForTenMinutesOnly() {
        var m = SeedLab.start()
        for s in 0..<700 {
            m.apply(.request(RequestEntry(at: Double(s) + 0.5, status: 200, provider: s < 350 ? "http-429-provider" : "openai-provider", group: 0, latency: 0.01)))
        }
        m.apply(.tick(now: 700.2))
        #expect(m.seconds.count == LabModel.secondsHistory)
        #expect(m.seconds.last?.providers == ["openai-provider": 1])
        #expect(m.seconds.last?.latencies.total == 1)
        let frame = ChartFrame(model: m, window: 600, points: 600)
        #expect(frame.end == 700)
        #expect(frame.average { Double($0.providers["http-429-provider"] ?? 0) }.reduce(0, +) == 250)
        #expect(frame.average { Double($0.providers["openai-provider"] ?? 0) }.reduce(0, +) == 350)
    }

    @Test func evictionWindowsFollowTheHealthEvents() {
        var m = ChartLab.model()
        #expect(m.evictions.count == 1)
        #expect(m.evictions[0].provider == "http-429-provider")
        #expect(m.evictions[0].from == 30.05)
        #expect(m.evictions[0].to == 60)
        // A failed probe and a new eviction while out: the same window stays open.
        m.apply(.health(HealthEvent(at: 91, provider: "openai-provider", group: 1, kind: .evicted(duration: 5, reason: "5xx", times: 1))))
        m.apply(.health(HealthEvent(at: 96, provider: "openai-provider", group: 1, kind: .probeFailed)))
        m.apply(.health(HealthEvent(at: 96, provider: "openai-provider", group: 1, kind: .evicted(duration: 10, reason: "5xx", times: 2))))
        #expect(m.evictions.count == 2)
        #expect(m.evictions[1].to == nil)
        m.apply(.health(HealthEvent(at: 106, provider: "openai-provider", group: 1, kind: .returned)))
        #expect(m.evictions[1].from == 91)
        #expect(m.evictions[1].to == 106)
        for i in 0..<400 {
            m.apply(.health(HealthEvent(at: 200 + Double(i), provider: "p\(i)", group: 0, kind: .evicted(duration: 1, reason: "x", times: 1))))
        }
        #expect(m.evictions.count == LabModel.evictionHistory)
    }

    @Test func theChartsShowTheFailoverAndTheBand() throws {
        let screen = Dashboard.render(ChartLab.model(), width: 160, height: 48, options: RenderOptions())
        let rows = screen.text.split(separator: "\n", omittingEmptySubsequences: false).map { Array(String($0).unicodeScalars) }
        let roles = screen.roleLayer.split(separator: "\n", omittingEmptySubsequences: false).map(Array.init)
        let top = try #require(rows.firstIndex { String(String.UnicodeScalarView($0)).contains("Served by") })
        let title = try #require(rows[top].indices.first { String(String.UnicodeScalarView(rows[top][$0...])).hasPrefix(" Served by") })
        let left = title - 1
        let right = try #require(rows[top].indices.first { $0 > left && rows[top][$0] == "┐" })
        let plotX = left + 1 + Charts.labelWidth + 1
        let bandRow = try #require(rows.indices.first { $0 > top && String(String.UnicodeScalarView(rows[$0])).contains("━ http-429-provider ━") })
        // The band covers the first half of the last minute (30 s to 60 s of 30 s to 90 s).
        let bandColumns = (plotX..<right).filter { roles[bandRow][$0] == Role.evicted.code }
        let band = try #require(bandColumns.min())...bandColumns.max()!
        let columns = right - plotX
        #expect(band.lowerBound == plotX)
        #expect(abs((band.upperBound - plotX + 1) - columns / 2) <= 1)
        // In the plot: group 2's colour above the band, group 1's after it, and not group 1 inside it.
        let plot = (top + 1)..<bandRow
        func has(_ role: Role, _ xs: ClosedRange<Int>) -> Bool { plot.contains { y in xs.contains { roles[y][$0] == role.code } } }
        #expect(has(.group2, band))
        #expect(!has(.group1, (band.lowerBound + 1)...(band.upperBound - 1)))
        #expect(has(.group1, (band.upperBound + 2)...(right - 1)))
        #expect(!has(.group2, (band.upperBound + 2)...(right - 1)))
    }
}

/// A fixed lab for the chart snapshots: 90 s at 10 requests/s. Group 1 serves until its 429
/// at 30 s; it is out until 60 s while group 2 serves (slower, a few 5xx); then it is back.
enum ChartLab {
    static func model() -> LabModel {
        var m = SeedLab.start()
        m.rate = 10
        for tenth in 0..<900 {
            let t = Double(tenth) / 10 + 0.05
            let out = t >= 30 && t < 60
            let provider = out && tenth != 300 ? "openai-provider" : "http-429-provider"
            var status = 200
            if tenth == 300 { status = 429 }
            if out && tenth % 23 == 0 { status = 503 }
            // Latency shapes a test can see: group 1 ~20-40 ms, group 2 ~150-400 ms with a slow tail.
            let wave = Double(tenth % 17) / 16
            let latency = out ? 0.15 + 0.25 * wave + (tenth % 50 == 0 ? 1.2 : 0) : 0.02 + 0.02 * wave
            let attempts = tenth == 300 ? [AttemptEntry(provider: "http-429-provider", status: 429)] : [AttemptEntry(provider: provider, status: status)]
            m.apply(.request(RequestEntry(at: t, status: status, provider: provider, group: provider == "openai-provider" ? 1 : 0, latency: latency, tokens: status == 200 ? 15 : nil, attempts: attempts)))
            if tenth == 300 {
                m.apply(.health(HealthEvent(at: 30.05, provider: "http-429-provider", group: 0, kind: .evicted(duration: 30, reason: "429 rate", times: 1))))
            }
            if tenth == 600 {
                m.apply(.health(HealthEvent(at: 60, provider: "http-429-provider", group: 0, kind: .returned)))
            }
        }
        m.apply(.tick(now: 90.4))
        return m
    }
}

/// The whole dashboard with the charts, for the fixed lab, at three sizes.
@Suite struct ChartSnapshotTests {
    @Test(arguments: [(80, 24, 60), (120, 40, 60), (200, 60, 120)])
    func dashboardWithCharts(size: (Int, Int, Int)) {
        let (width, height, window) = size
        let screen = Dashboard.render(ChartLab.model(), width: width, height: height, options: RenderOptions(chartWindow: window))
        #expect(screen.text.contains("Served by"))
        if height >= 40 {
            #expect(screen.text.contains("Latency"))
            #expect(screen.text.contains("Status, req/s"))
        }
        Snapshot.assert(screen, named: "charts-\(width)x\(height)")
    }

    @Test func blockAndASCIICharts() {
        let model = ChartLab.model()
        let block = Dashboard.render(model, width: 120, height: 40, options: RenderOptions(chartDots: .block))
        #expect(!block.text.unicodeScalars.contains { (0x2801...0x28FF).contains($0.value) })
        #expect(block.text.contains("█"))
        Snapshot.assert(block, named: "charts-120x40-block")
        let ascii = Dashboard.render(model, width: 120, height: 40, options: RenderOptions(glyphs: .plain, chartDots: .braille))
        #expect(ascii.text.unicodeScalars.allSatisfy { $0.isASCII })
        Snapshot.assert(ascii, named: "charts-120x40-ascii")
    }

    @Test func aChangedPanelFailsTheSnapshot() {
        let model = ChartLab.model()
        let before = Snapshot.render(Dashboard.render(model, width: 120, height: 40, options: RenderOptions()))
        #expect(Snapshot.difference(expected: before, actual: before) == nil)
        // One more request in the last whole second changes the charts (and the counts).
        var changed = model
        changed.apply(.request(RequestEntry(at: 89.5, status: 503, provider: "openai-provider", group: 1, latency: 3)))
        let after = Snapshot.render(Dashboard.render(changed, width: 120, height: 40, options: RenderOptions()))
        #expect(Snapshot.difference(expected: before, actual: after) != nil)
        // One cell's role alone is a difference too.
        var screen = Dashboard.render(model, width: 120, height: 40, options: RenderOptions())
        screen.paint(x: 100, y: 30, width: 1, role: .warning)
        let detail = Snapshot.difference(expected: before, actual: Snapshot.render(screen))
        #expect(detail?.contains("first difference at line") == true)
    }
}

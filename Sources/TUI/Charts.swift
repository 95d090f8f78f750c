import Foundation
import Wire

/// How a chart's dots become characters.
public enum ChartDots: String, Sendable, Hashable, CaseIterable {
    /// 2x4 dots a cell (U+2800...): the finest; needs a font with braille.
    case braille
    /// Eighth blocks (▁ to █): 1x8 a cell, filled from the bottom, so lines are drawn as areas.
    case block
    /// One character a cell: `--ascii` and terminals without UTF-8.
    case ascii

    public var perCell: (x: Int, y: Int) {
        switch self {
        case .braille: return (2, 4)
        case .block: return (1, 8)
        case .ascii: return (1, 1)
        }
    }

    /// Braille, unless the glyphs are ASCII.
    public static func `default`(for glyphs: Glyphs) -> ChartDots { glyphs.ascii ? .ascii : .braille }
}

/// Stacked: each point's values are piled from the bottom. Lines: each series its own line.
public enum ChartKind: Sendable, Hashable { case stacked, lines }

/// What the y axis counts, for its labels.
public enum ChartUnit: Sendable, Hashable { case rate, latency }

/// One series: a value a point (a dot column), oldest first. NaN is "no data": a gap in a line.
public struct ChartSeries: Sendable, Hashable {
    public var label: String
    public var role: Role
    public var attributes: CellAttributes
    /// The series' character when the chart is drawn in ASCII.
    public var ascii: Unicode.Scalar
    public var values: [Double]

    public init(label: String, role: Role, attributes: CellAttributes = [], ascii: Unicode.Scalar = "#", values: [Double]) {
        self.label = label
        self.role = role
        self.attributes = attributes
        self.ascii = ascii
        self.values = values
    }
}

/// A stretch of the time axis (seconds since the lab started), e.g. a provider's eviction.
public struct ChartBand: Sendable, Hashable {
    public var label: String
    public var from: Double
    public var to: Double
    public var role: Role

    public init(label: String, from: Double, to: Double, role: Role = .evicted) {
        self.label = label
        self.from = from
        self.to = to
        self.role = role
    }
}

/// Where a chart's parts go inside its box. Pure.
public struct ChartGeometry: Sendable, Hashable {
    /// The y labels' column and width; the axis line is right of them.
    public var labelX: Int
    public var labelWidth: Int
    public var plotX: Int
    public var columns: Int
    public var plotY: Int
    public var rows: Int
    /// Rows under the plot for eviction bands.
    public var bandY: Int
    public var bandRows: Int
    /// The bottom border, where the time axis is labelled.
    public var axisY: Int
}

/// The dashboard's charts: pure functions from series to cells, and the panels that use them.
public enum Charts {
    /// The windows `<` and `>` step through, in seconds (10 s to 10 min).
    public static let windows = [10, 30, 60, 120, 300, 600]
    public static let defaultWindow = 60
    /// Fewer plot columns than this draw a sentence instead of a chart.
    public static let minimumColumns = 12
    /// Room for the widest y label (`2.5ms`, `1.5k`).
    public static let labelWidth = 5

    // MARK: time

    /// The seconds each of `points` points covers, for a window of `window` seconds that ends
    /// (excluded) at second `end`. A point covers at least one second; a second may span several points.
    public static func spans(window: Int, end: Int, points: Int) -> [Range<Int>] {
        let w = min(max(1, window), 86_400), n = min(max(0, points), 100_000)
        // An `end` so far from zero that the window's start or a point's offset overflows has no spans.
        guard n > 0, end > Int.min / 2, end < Int.max / 2 else { return [] }
        let start = end - w
        return (0..<n).map { p in
            let lo = start + p * w / n
            return lo..<max(lo + 1, start + (p + 1) * w / n)
        }
    }

    /// `10s`, `90s`, `2m`, `10m`: a span of seconds as the charts label it.
    public static func duration(_ seconds: Int) -> String {
        seconds >= 60 && seconds % 60 == 0 ? "\(seconds / 60)m" : "\(seconds)s"
    }

    /// The labels of the time axis under `columns` plot columns: `-60s` at the left edge,
    /// `now` at the right, ticks between where they fit. Columns are from the plot's left edge.
    public static func timeAxis(window: Int, columns: Int) -> [(column: Int, text: String)] {
        guard columns > 0, window > 0 else { return [] }
        let step: Int
        switch window {
        case ...10: step = 5
        case ...30: step = 10
        case ...60: step = 15
        case ...120: step = 30
        case ...300: step = 60
        default: step = 120
        }
        var placed: [(column: Int, text: String)] = []
        func fits(_ column: Int, _ text: String) -> Bool {
            let n = text.unicodeScalars.count
            guard column >= 0, column + n <= columns else { return false }
            return placed.allSatisfy { column + n < $0.column || column > $0.column + $0.text.unicodeScalars.count }
        }
        let left = "-" + duration(window)
        if fits(0, left) { placed.append((0, left)) }
        if fits(columns - 3, "now") { placed.append((columns - 3, "now")) }
        var t = window - step
        while t > 0 {
            let text = "-" + duration(t)
            let center = ((window - t) * columns + window / 2) / window
            let column = center - text.unicodeScalars.count / 2
            if fits(column, text) { placed.append((column, text)) }
            t -= step
        }
        return placed.sorted { $0.column < $1.column }
    }

    // MARK: values

    /// The smallest of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten that is at least
    /// `v` (so 1,000 req/s with a little jitter gets 1.2k, not half an empty chart); 1 when there is nothing.
    public static func niceCeiling(_ v: Double) -> Double {
        guard v.isFinite, v > 0 else { return 1 }
        let e = Checked.clampedInt(log10(v).rounded(.down), -300...300)
        // Tenths times an exact power of ten (or divided by one): 1.2k is 1200, 1.5ms is 0.0015.
        func value(_ tenths: Double) -> Double { e >= 1 ? tenths * pow(10, Double(e - 1)) : tenths / pow(10, Double(1 - e)) }
        for tenths in [10.0, 12, 15, 20, 25, 30, 40, 50, 60, 80] where value(tenths) >= v * (1 - 1e-9) { return value(tenths) }
        return value(100)
    }

    /// A y label: `0`, `2.5`, `150`, `1.5k`, `2M`; latencies as `500µs`, `2.5ms`, `1.2s`.
    public static func axisLabel(_ v: Double, unit: ChartUnit, ascii: Bool = false) -> String {
        guard v.isFinite, v > 0 else { return "0" }
        func compact(_ x: Double) -> String {
            if x >= 10 || x == x.rounded() { return String(Checked.clampedInt(x.rounded())) }
            return (x * 10).rounded() == x * 10 ? Format.fixed(x, 1) : Format.fixed(x, 2)
        }
        switch unit {
        case .rate:
            if v >= 1_000_000 { return compact(v / 1_000_000) + "M" }
            if v >= 1000 { return compact(v / 1000) + "k" }
            return compact(v)
        case .latency:
            if v < 0.001 { return compact(v * 1_000_000) + (ascii ? "us" : "µs") }
            if v < 1 { return compact(v * 1000) + "ms" }
            return compact(v) + "s"
        }
    }

    /// The top of the y axis: what the tallest stack or the highest line reaches, made nice.
    public static func top(_ series: [ChartSeries], kind: ChartKind) -> Double {
        var highest = 0.0
        switch kind {
        case .stacked:
            let n = series.map(\.values.count).max() ?? 0
            for i in 0..<n {
                var sum = 0.0
                for s in series where i < s.values.count && s.values[i].isFinite && s.values[i] > 0 { sum += s.values[i] }
                highest = max(highest, sum)
            }
        case .lines:
            for s in series { for v in s.values where v.isFinite { highest = max(highest, v) } }
        }
        return niceCeiling(highest)
    }

    // MARK: cells

    /// The plot's cells, `rows` rows of `columns` cells, top row first. Each series has one
    /// value a dot column (`columns * dots.perCell.x` of them). A cell shows the role of the
    /// last series that has a dot in it, so a thin band on a stack (the 5xx on the 2xx) stays visible.
    public static func plotCells(_ series: [ChartSeries], kind: ChartKind, top: Double, columns: Int, rows: Int, dots: ChartDots) -> [[Cell]] {
        guard columns > 0, rows > 0 else { return [] }
        let (dx, dy) = dots.perCell
        let width = columns * dx, height = rows * dy
        // The owner of each dot (the series index), -1 for none; y counts from the bottom.
        var owner = [Int](repeating: -1, count: width * height)
        let scale = top.isFinite && top > 0 ? top : 1
        func level(_ v: Double, of span: Int) -> Int {
            guard v.isFinite, v > 0 else { return 0 }
            return Checked.clampedInt((v / scale * Double(span)).rounded(), 0...span)
        }
        switch kind {
        case .stacked:
            for x in 0..<width {
                var sum = 0.0, y0 = 0
                for (si, s) in series.enumerated() where x < s.values.count {
                    let v = s.values[x]
                    guard v.isFinite, v > 0, y0 < height else { continue }
                    sum += v
                    // A value that is there shows as at least one dot.
                    let y1 = max(level(sum, of: height), y0 + 1)
                    for y in y0..<min(y1, height) { owner[y * width + x] = si }
                    y0 = y1
                }
            }
        case .lines:
            // Blocks cannot draw a dot in mid-air: each line becomes the area under it, the last
            // series drawn first so the first (p50) lies on top of the others (p99).
            let order = dots == .block ? Array(series.indices.reversed()) : Array(series.indices)
            for si in order {
                let s = series[si]
                var previous: Int?
                for x in 0..<min(width, s.values.count) {
                    let v = s.values[x]
                    guard v.isFinite else { previous = nil; continue }
                    let y = min(height - 1, level(v, of: height - 1))
                    if dots == .block {
                        for yy in 0...y { owner[yy * width + x] = si }
                    } else {
                        // Joined to the previous point by a vertical run, so a jump stays one line.
                        let from = previous.map { min($0, y) } ?? y, to = previous.map { max($0, y) } ?? y
                        for yy in from...to { owner[yy * width + x] = si }
                    }
                    previous = y
                }
            }
        }
        // A block cell has one colour for up to two areas: the one with more of the cell
        // shows, so p50 stays visible under p99. Elsewhere the last series in the cell shows.
        let majority = dots == .block && kind == .lines
        var out: [[Cell]] = []
        out.reserveCapacity(rows)
        for row in 0..<rows {
            var line: [Cell] = []
            line.reserveCapacity(columns)
            let bottomDot = (rows - 1 - row) * dy
            for col in 0..<columns {
                var bits: UInt32 = 0, topFilled = -1, shown = -1
                var dotsOf = [Int](repeating: 0, count: majority ? series.count : 0)
                for cy in 0..<dy {  // from the cell's top
                    let y = bottomDot + dy - 1 - cy
                    for cx in 0..<dx {
                        let o = owner[y * width + col * dx + cx]
                        guard o >= 0 else { continue }
                        shown = max(shown, o)
                        if majority { dotsOf[o] += 1 }
                        topFilled = max(topFilled, dy - 1 - cy)
                        bits |= brailleBit(x: cx, y: cy)
                    }
                }
                if majority, let most = dotsOf.indices.max(by: { dotsOf[$0] < dotsOf[$1] }), dotsOf[most] > 0 { shown = most }
                guard shown >= 0 else { line.append(.blank); continue }
                let s = series[shown]
                let char: Unicode.Scalar
                switch dots {
                case .braille: char = Unicode.Scalar(0x2800 + bits) ?? "?"
                case .block: char = Glyphs.unicode.spark[min(7, max(0, topFilled))]
                case .ascii: char = s.ascii
                }
                line.append(Cell(char, role: s.role, attributes: s.attributes))
            }
            out.append(line)
        }
        return out
    }

    /// The bit of dot (x, y) in a braille cell, y from the top (Unicode's dot numbering).
    static func brailleBit(x: Int, y: Int) -> UInt32 {
        switch (x, y) {
        case (0, 3): return 0x40
        case (1, 3): return 0x80
        case (0, _): return 1 << UInt32(y)
        default: return 1 << UInt32(y + 3)
        }
    }

    /// One row of eviction bands under `columns` plot columns for the window ending at second
    /// `end`: a cell is in a band when its stretch of time overlaps the band. The label is
    /// written into the band when it fits.
    public static func bandCells(_ bands: [ChartBand], window: Int, end: Int, columns: Int, glyphs: Glyphs) -> [Cell] {
        guard columns > 0, columns <= 100_000, window > 0, end > Int.min / 2 else { return [] }
        var line = [Cell](repeating: .blank, count: columns)
        let start = Double(end - window)
        let perColumn = Double(window) / Double(columns)
        let bar: Unicode.Scalar = glyphs.ascii ? "=" : "━"
        for band in bands {
            guard band.to > start, band.from < Double(end) else { continue }
            var first: Int?, last = 0
            for c in 0..<columns {
                let lo = start + Double(c) * perColumn, hi = lo + perColumn
                guard band.from < hi && band.to > lo else { continue }
                line[c] = Cell(bar, role: band.role, attributes: .bold)
                if first == nil { first = c }
                last = c
            }
            // The label inside the band, with a space either side when there is room.
            guard let first else { continue }
            let n = band.label.unicodeScalars.count, room = last - first + 1
            // A name too long for the band is cut (a band of three columns gets none).
            guard room >= 5 else { continue }
            let text = room >= n + 4 ? " " + band.label + " " : room >= n + 2 ? band.label : String(String.UnicodeScalarView(band.label.unicodeScalars.prefix(room - 2)))
            for (i, ch) in text.unicodeScalars.enumerated() {
                line[first + 1 + i] = Cell(ch.value < 0x20 ? "?" : ch, role: band.role, attributes: .bold)
            }
        }
        return line
    }

    // MARK: panels

    /// Words across the rows of a rectangle, as many as fit.
    static func wrap(_ text: String, _ s: inout Screen, _ r: Rect, role: Role) {
        var y = r.y, line = ""
        for word in text.split(separator: " ") {
            let candidate = line.isEmpty ? String(word) : line + " " + word
            if candidate.unicodeScalars.count <= r.width || line.isEmpty {
                line = candidate
            } else {
                guard y < r.maxY else { return }
                s.put(line, x: r.x, y: y, role: role, maxWidth: r.width)
                y += 1
                line = String(word)
            }
        }
        if y < r.maxY { s.put(line, x: r.x, y: y, role: role, maxWidth: r.width) }
    }

    /// The geometry of a chart in its box; nil when the box has no inside.
    public static func geometry(_ rect: Rect, bandRows: Int) -> ChartGeometry? {
        let inner = rect.inner
        guard inner.width > 0, inner.height > 0 else { return nil }
        let bands = min(max(0, bandRows), max(0, inner.height - 1))
        return ChartGeometry(
            labelX: inner.x, labelWidth: labelWidth, plotX: inner.x + labelWidth + 1, columns: inner.width - labelWidth - 1,
            plotY: inner.y, rows: inner.height - bands, bandY: inner.y + inner.height - bands, bandRows: bands, axisY: rect.maxY - 1)
    }

    /// A chart as the dashboard draws it.
    public struct Spec: Sendable {
        public var title: String
        public var kind: ChartKind
        public var unit: ChartUnit
        public var series: [ChartSeries]
        /// Rows of bands under the plot; `bandRows` rows are kept for them even when empty.
        public var bands: [[ChartBand]] = []
        public var bandRows = 0
        /// What an empty band row says.
        public var noBands = ""
        /// Legend items on the top border after the title: the full list, and a shorter one for narrow boxes.
        public var legend: [(text: String, role: Role)] = []
        public var shortLegend: [(text: String, role: Role)] = []
        public var empty = "no requests in this window"
    }

    /// Draws a chart in its box: title and legend on the top border, y labels and axis, the
    /// plot, the band rows, the time axis on the bottom border. A box too narrow says so.
    static func draw(_ s: inout Screen, _ spec: Spec, _ rect: Rect, window: Int, end: Int, dots: ChartDots, glyphs g: Glyphs) {
        let windowText = duration(window)
        s.box(rect, title: spec.title + g.separator + windowText, glyphs: g)
        guard let geo = geometry(rect, bandRows: spec.bandRows) else { return }
        let inner = rect.inner
        guard geo.columns >= minimumColumns else {
            let need = minimumColumns + labelWidth + 3
            wrap("too narrow for a chart: \(rect.width) columns, needs \(need)", &s, inner, role: .dim)
            return
        }
        // Legend after the title on the top border, the full one if it fits.
        let titleEnd = rect.x + 1 + (" " + spec.title + g.separator + windowText + " ").unicodeScalars.count
        for items in [spec.legend, spec.shortLegend] where !items.isEmpty {
            let length = items.reduce(0) { $0 + $1.text.unicodeScalars.count + 1 }
            guard titleEnd + length < rect.maxX - 1 else { continue }
            var x = rect.maxX - 1 - length
            for item in items {
                x += s.put(" ", x: x, y: rect.y, role: .border)
                x += s.put(item.text, x: x, y: rect.y, role: item.role, attributes: .bold)
            }
            break
        }
        let top = Charts.top(spec.series, kind: spec.kind)
        // Y labels: top, middle when there is room, zero; the axis line right of them.
        for row in 0..<geo.rows {
            let y = geo.plotY + row
            var label = ""
            if row == 0 { label = axisLabel(top, unit: spec.unit, ascii: g.ascii) }
            else if row == geo.rows - 1 { label = "0" }
            else if geo.rows >= 5 && row == (geo.rows - 1) / 2 && (geo.rows - 1) % 2 == 0 { label = axisLabel(top / 2, unit: spec.unit, ascii: g.ascii) }
            s.put(Format.pad(label, geo.labelWidth, right: true), x: geo.labelX, y: y, role: .dim, maxWidth: geo.labelWidth)
            s.put(label.isEmpty ? String(g.vertical) : (g.ascii ? "+" : "┤"), x: geo.plotX - 1, y: y, role: .border)
        }
        let hasData = spec.series.contains { $0.values.contains { $0.isFinite && $0 > 0 } }
        if hasData {
            for (row, line) in plotCells(spec.series, kind: spec.kind, top: top, columns: geo.columns, rows: geo.rows, dots: dots).enumerated() {
                for (col, cell) in line.enumerated() where cell.char != " " { s[geo.plotX + col, geo.plotY + row] = cell }
            }
        } else {
            s.put(spec.empty, x: geo.plotX + 1, y: geo.plotY + (geo.rows - 1) / 2, role: .dim, maxWidth: geo.columns - 1)
        }
        for row in 0..<geo.bandRows {
            let y = geo.bandY + row
            s.put(Format.pad("out", geo.labelWidth, right: true), x: geo.labelX, y: y, role: row < spec.bands.count ? .evicted : .dim)
            if row < spec.bands.count {
                for (col, cell) in bandCells(spec.bands[row], window: window, end: end, columns: geo.columns, glyphs: g).enumerated() where cell.char != " " {
                    s[geo.plotX + col, y] = cell
                }
            } else if row == 0 {
                s.put(spec.noBands, x: geo.plotX + 1, y: y, role: .dim, maxWidth: geo.columns - 1)
            }
        }
        for label in timeAxis(window: window, columns: geo.columns) {
            s.put(label.text, x: geo.plotX + label.column, y: geo.axisY, role: .dim)
        }
    }
}

/// The model's per-second history cut into a chart's points.
public struct ChartFrame: Sendable {
    public let window: Int
    /// The window ends (excluded) at this second: the current second is not over yet.
    public let end: Int
    public let spans: [Range<Int>]
    /// The window's seconds, oldest first; nil where no request finished.
    let seconds: [SecondBucket?]

    public init(model: LabModel, window: Int, points: Int) {
        let w = min(max(1, window), LabModel.secondsHistory)
        self.window = w
        end = Checked.clampedInt(model.now.rounded(.down), 0...(Int.max / 4))
        spans = Charts.spans(window: w, end: end, points: points)
        var seconds = [SecondBucket?](repeating: nil, count: w)
        for b in model.seconds.elements where b.second >= end - w && b.second < end { seconds[b.second - (end - w)] = b }
        self.seconds = seconds
    }

    func buckets(_ span: Range<Int>) -> [SecondBucket] {
        span.compactMap { s in seconds.indices.contains(s - (end - window)) ? seconds[s - (end - window)] : nil }
    }

    /// A value a second, averaged over each point's seconds (a rate stays a rate at any window).
    public func average(_ value: (SecondBucket) -> Double) -> [Double] {
        spans.map { span in buckets(span).reduce(0) { $0 + value($1) } / Double(span.count) }
    }

    /// Latency quantiles of each point's requests, one array a quantile; NaN where there were none.
    public func quantiles(_ qs: [Double]) -> [[Double]] {
        var out = qs.map { _ in [Double]() }
        for span in spans {
            var sketch = LatencySketch()
            for b in buckets(span) { sketch.merge(b.latencies) }
            for (i, q) in qs.enumerated() { out[i].append(sketch.quantile(q) ?? .nan) }
        }
        return out
    }

    /// Every request of the window, by status class.
    public var classTotals: [Int: Int] {
        var out: [Int: Int] = [:]
        for case let b? in seconds { for (k, n) in b.classes { out[k, default: 0] += n } }
        return out
    }

    /// Providers that answered in the window.
    public var providers: Set<String> {
        var out = Set<String>()
        for case let b? in seconds { out.formUnion(b.providers.keys) }
        return out
    }
}

extension Charts {
    /// The status classes the status chart stacks, bottom first.
    static let classes: [(key: Int, label: String, role: Role, ascii: Unicode.Scalar)] = [
        (200, "2xx", .status2xx, "#"), (300, "3xx", .status3xx, "3"), (400, "4xx", .status4xx, "4"),
        (429, "429", .status429, "9"), (500, "5xx", .status5xx, "5"), (0, "err", .statusError, "x"),
    ]

    static let groupASCII: [Unicode.Scalar] = ["#", "=", "+", "%"]

    /// Served by: requests a second per provider, stacked, each in its group's colour; the
    /// eviction windows as bands, one row a provider while there is room.
    static func servedBy(_ m: LabModel, _ f: ChartFrame, marker: Unicode.Scalar?, bandRows: Int) -> Spec {
        var names: [(name: String, group: Int)] = m.allProviders.map { ($0.name, $0.group) }
        // Providers the balancer does not list (`--target`): in the order the responses named them.
        let known = Set(names.map(\.name))
        let others = f.providers.subtracting(known)
        for (i, name) in (m.seenProviders.filter { others.contains($0) } + others.subtracting(m.seenProviders).sorted()).enumerated() {
            names.append((name, m.external ? i : 0))
        }
        var series: [ChartSeries] = []
        var withinGroup: [Int: Int] = [:]
        for (name, group) in names.prefix(16) {
            let k = withinGroup[group, default: 0]
            withinGroup[group] = k + 1
            // Providers of one group share its colour; every other one is bold to tell them apart.
            series.append(ChartSeries(label: name, role: Role.group(group), attributes: k % 2 == 1 ? .bold : [],
                                      ascii: groupASCII[group % groupASCII.count], values: f.average { Double($0.providers[name] ?? 0) }))
        }
        var spec = Spec(title: "Served by, req/s", kind: .stacked, unit: .rate, series: series)
        func mark(_ s: ChartSeries) -> String { String(marker ?? s.ascii) }
        spec.legend = series.map { (mark($0) + " " + $0.label, $0.role) }
        let groups = Array(Set(names.prefix(16).map(\.group))).sorted()
        spec.shortLegend = groups.map { (String(marker ?? groupASCII[$0 % groupASCII.count]) + " g\($0 + 1)", Role.group($0)) }
        // Eviction bands: one row for each provider with one in the window, the rest merged into the last row.
        let start = Double(f.end - f.window), end = Double(f.end)
        var rows: [[ChartBand]] = []
        var rowOf: [String: Int] = [:]
        for e in m.evictions {
            let to = e.to ?? m.now
            guard to > start, e.from < end else { continue }
            let row: Int
            if let r = rowOf[e.provider] { row = r }
            else if rows.count < max(1, bandRows) { row = rows.count; rows.append([]); rowOf[e.provider] = row }
            else { row = rows.count - 1; rowOf[e.provider] = row }
            rows[row].append(ChartBand(label: e.provider, from: e.from, to: to))
        }
        spec.bands = rows
        // Rows no band needs go to the plot; one stays, so the plot does not jump at the first eviction.
        spec.bandRows = max(1, min(bandRows, rows.count))
        spec.noBands = "no eviction in this window"
        return spec
    }

    /// Latency: p50 and p99 of each point's requests as two lines.
    static func latency(_ f: ChartFrame, glyphs g: Glyphs) -> Spec {
        let q = f.quantiles([0.5, 0.99])
        let series = [
            ChartSeries(label: "p50", role: .latency, ascii: "o", values: q[0]),
            ChartSeries(label: "p99", role: .latencyP99, ascii: "*", values: q[1]),
        ]
        var spec = Spec(title: "Latency", kind: .lines, unit: .latency, series: series)
        func last(_ values: [Double]) -> String { values.last { $0.isFinite }.map { axisLabel($0, unit: .latency, ascii: g.ascii) } ?? "-" }
        spec.legend = [("p50 " + last(q[0]), .latency), ("p99 " + last(q[1]), .latencyP99)]
        spec.shortLegend = [("p50", .latency), ("p99", .latencyP99)]
        return spec
    }

    /// Status codes a second by class, stacked: 2xx at the bottom, failures on top.
    static func statuses(_ f: ChartFrame) -> Spec {
        let totals = f.classTotals
        let all = totals.values.reduce(0, +)
        let present = classes.filter { (totals[$0.key] ?? 0) > 0 }
        let series = present.map { c in
            ChartSeries(label: c.label, role: c.role, ascii: c.ascii, values: f.average { Double($0.classes[c.key] ?? 0) })
        }
        var spec = Spec(title: "Status, req/s", kind: .stacked, unit: .rate, series: series)
        spec.legend = present.map { ($0.label + " " + Format.percent(totals[$0.key] ?? 0, all), $0.role) }
        spec.shortLegend = present.map { ($0.label, $0.role) }
        return spec
    }

    /// The right column's charts, stacked down `rect`: served by always; latency and status
    /// when there is height for them.
    static func column(_ s: inout Screen, _ m: LabModel, _ rect: Rect, window: Int, dots: ChartDots, glyphs g: Glyphs) {
        guard rect.height > 0, rect.width > 0 else { return }
        let h = rect.height
        var heights: [Int]
        if h >= 14 {
            let served = max(6, h * 2 / 5)
            let latency = (h - served + 1) / 2
            heights = [served, latency, h - served - latency]
        } else if h >= 9 {
            heights = [h - 4, 4]
        } else {
            heights = [h]
        }
        guard let geo = geometry(rect, bandRows: 0) else { return }
        let frame = ChartFrame(model: m, window: window, points: max(0, geo.columns) * dots.perCell.x)
        // The served-by box: one band row, up to three on a tall box.
        let servedInner = heights[0] - 2
        let bandRows = servedInner >= 9 ? 3 : servedInner >= 6 ? 2 : 1
        let marker: Unicode.Scalar? = dots == .ascii ? nil : dots == .braille ? "⣿" : "█"
        let specs = [servedBy(m, frame, marker: marker, bandRows: bandRows), latency(frame, glyphs: g), statuses(frame)]
        var y = rect.y
        for (i, height) in heights.enumerated() {
            draw(&s, specs[i], Rect(x: rect.x, y: y, width: rect.width, height: height), window: frame.window, end: frame.end, dots: dots, glyphs: g)
            y += height
        }
    }
}

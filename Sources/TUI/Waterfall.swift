import Gateway
import Wire

/// A finished request's trace as the gateway recorded it: the request's log with its
/// `RequestTrace`. The spans are made from it when the waterfall is drawn, by the same
/// function the OTLP exporter uses, so the dashboard shows what a collector receives,
/// and the data path pays nothing for the dashboard beyond keeping the reference.
public final class TraceRef: Sendable, Hashable {
    public let log: RequestLog

    public init?(_ log: RequestLog) {
        guard let trace = log.trace, trace.sampled else { return nil }
        self.log = log
    }

    public var spans: [SpanRecord] { log.trace?.spans(log: log) ?? [] }

    public static func == (a: TraceRef, b: TraceRef) -> Bool { a === b }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}

/// The waterfall of one request's spans: the server span, its tries (client spans), the
/// retry backoff and the evictions, on one time axis. Pure: spans in, cells out.
public enum Waterfall {
    /// Draws the waterfall as an overlay over most of the screen.
    public static func draw(_ s: inout Screen, spans: [SpanRecord], glyphs g: Glyphs) {
        let width = max(20, s.width - 6)
        // As tall as its rows (a span each, an event each, summary, legend), at most the screen.
        let rows = spans.count + spans.reduce(0) { $0 + $1.events.count }
        let height = max(6, min(s.height - 4, rows + 6))
        let r = Rect(x: (s.width - width) / 2, y: (s.height - height) / 2, width: width, height: height)
        s.fill(r)
        guard let server = spans.first(where: { $0.kind == .server }) ?? spans.first else {
            s.box(r, title: "Trace (esc closes)", glyphs: g)
            s.put("No trace was recorded for this request (unsampled, or from a gateway that is not ours).", x: r.x + 2, y: r.y + 2, role: .dim, maxWidth: r.width - 4)
            return
        }
        let total = Double(server.end &- server.start) / 1e9
        s.box(r, title: "Trace \(server.traceID.hex) (esc closes)", glyphs: g)
        let inner = r.inner
        var y = inner.y
        // Summary line: name, status, duration, where the parent came from.
        var x = inner.x + 1
        x += s.put(server.name, x: x, y: y, role: .text, attributes: .bold, maxWidth: inner.maxX - x)
        let status = int(server["http.status"])
        x += s.put("  " + (status.map(String.init) ?? "-"), x: x, y: y, role: Role.status(status), attributes: .bold, maxWidth: inner.maxX - x)
        x += s.put("  " + Format.latency(total), x: x, y: y, role: .latency, maxWidth: inner.maxX - x)
        if let parent = server.parentSpanID {
            s.put("  parent " + parent.hex + " (the client's)", x: x, y: y, role: .dim, maxWidth: inner.maxX - x)
        }
        y += 2
        let children = spans.filter { $0.spanID != server.spanID }.sorted { $0.start < $1.start }
        let ordered = [server] + children
        let labels = ordered.map { label($0, tries: spans.filter { $0.kind == .client }.count) }
        // Columns: label (as wide as the longest, up to half) | offset | duration | bar.
        let labelWidth = min((labels.map { $0.text.count }.max() ?? 16) + 3, max(16, inner.width / 2))
        let numbers = 16
        let barX = inner.x + 1 + labelWidth + numbers
        let barWidth = max(4, inner.maxX - 1 - barX)
        func column(_ t: UInt64) -> Int {
            guard server.end > server.start else { return 0 }
            let share = Double(t &- min(t, server.start)) / Double(server.end - server.start)
            return Checked.clampedInt(share * Double(barWidth - 1), 0...(barWidth - 1))
        }
        for (span, (label, role)) in zip(ordered, labels) where y < inner.maxY - 1 {
            let isServer = span.spanID == server.spanID
            s.put(label, x: inner.x + 1, y: y, role: isServer ? .text : role, attributes: isServer ? .bold : [], maxWidth: labelWidth - 1)
            let offset = Double(span.start &- min(span.start, server.start)) / 1e9
            let duration = Double(span.end &- min(span.end, span.start)) / 1e9
            s.put(Format.pad("+" + Format.latency(offset), 7, right: true) + " " + Format.pad(Format.latency(duration), 7, right: true),
                  x: inner.x + 1 + labelWidth, y: y, role: .latency, maxWidth: numbers)
            let from = column(span.start), to = max(column(span.end), column(span.start))
            let bar = String(String.UnicodeScalarView(Array(repeating: span.kind == .internal ? g.barEmpty : g.barFull, count: to - from + 1)))
            s.put(bar, x: barX + from, y: y, role: span.kind == .internal ? .dim : role, maxWidth: barWidth - from)
            y += 1
            for event in span.events where y < inner.maxY - 1 {
                let at = column(event.time)
                s.put("x", x: barX + at, y: y - 1, role: .evicted, attributes: .bold)
                func attribute(_ key: String) -> SpanRecord.Value? { event.attributes.first { $0.key == key }?.value }
                var text = "    " + g.arrow + " " + event.name
                if let provider = string(attribute("provider")) { text += " " + provider }
                var details: [String] = []
                if let reason = string(attribute("reason")) { details.append(reason) }
                if case .double(let seconds)? = attribute("duration_s") { details.append("out for " + Format.latency(seconds)) }
                if !details.isEmpty { text += " (" + details.joined(separator: ", ") + ")" }
                s.put(text, x: inner.x + 1, y: y, role: .evicted, maxWidth: inner.width - 2)
                y += 1
            }
        }
        let legend = "tries are client spans, children of the request; x marks an eviction; " + String(g.barEmpty) + " is the retry backoff"
        s.put(legend, x: inner.x + 1, y: inner.maxY - 1, role: .dim, maxWidth: inner.width - 2)
    }

    /// Marks the selected request row in the requests panel (drawn by `Panels.requests`,
    /// whose rows are the model's newest, oldest at the top).
    static func markSelectedRequest(_ s: inout Screen, _ m: LabModel, _ r: Rect, selectedAt: Double?, glyphs g: Glyphs) {
        guard let selectedAt else { return }
        let inner = r.inner
        guard inner.height > 1 else { return }
        let rows = Array(m.requests.suffix(inner.height - 1))
        guard let i = rows.lastIndex(where: { $0.at == selectedAt }) else { return }
        let y = inner.y + 1 + i
        s.put(String(g.pointer), x: inner.x, y: y, role: .selected, attributes: .bold)
        s.paint(x: inner.x + 1, y: y, width: min(7, inner.width - 1), role: .selected, attributes: .reverse)
    }

    /// A span's row label (children indented) and its colour.
    static func label(_ span: SpanRecord, tries: Int) -> (text: String, role: Role) {
        switch span.kind {
        case .server:
            return ("request, \(tries) \(tries == 1 ? "try" : "tries")", Role.status(int(span["http.status"])))
        case .client:
            let status = int(span["http.status"])
            let outcome = status.map(String.init) ?? string(span["error.type"]) ?? "error"
            let text = "  " + (string(span["provider"]) ?? span.name) + " g\(int(span["group"]) ?? 0) = " + outcome
            return (text, span.isError ? (status == 429 ? .status429 : Role.status(status)) : .status2xx)
        case .internal:
            return ("  " + span.name, .dim)
        }
    }

    static func int(_ v: SpanRecord.Value?) -> Int? {
        if case .int(let i)? = v { return Int(exactly: i) }
        return nil
    }

    static func string(_ v: SpanRecord.Value?) -> String? {
        if case .string(let s)? = v { return s }
        return nil
    }
}

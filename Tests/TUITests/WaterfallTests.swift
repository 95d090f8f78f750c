import Foundation
import Testing
@testable import Gateway
@testable import TUI

/// The retries lab's request as the gateway records it: a 429 from group 1 (which evicts
/// it for 60 s), a 200 ms backoff, then group 2's 200.
enum RetriedRequest {
    static let t0: UInt64 = 1_700_000_000_000_000_000
    static func log() -> RequestLog {
        var trace = RequestTrace(traceID: TraceID(high: 0x0af7_6519_16cd_43dd, low: 0x8448_eb21_1c80_319c), spanID: SpanID(0x1111),
                                 parentSpanID: nil, sampled: true, start: t0)
        var first = RequestTrace.Try(spanID: SpanID(0x2222), start: t0 + 1_000_000, provider: "http-429-provider", group: 0, endpoint: "127.0.0.1:9959")
        first.status = 429
        first.end = t0 + 3_000_000
        first.evictions = [.init(time: t0 + 3_000_000, provider: "http-429-provider", reason: "rate", duration: .seconds(60), times: 1)]
        var second = RequestTrace.Try(spanID: SpanID(0x3333), start: t0 + 203_000_000, provider: "openai-provider", group: 1, endpoint: "127.0.0.1:443")
        second.status = 200
        second.end = t0 + 240_000_000
        trace.tries = [first, second]
        trace.backoffs = [.init(spanID: SpanID(0x4444), start: t0 + 3_000_000, end: t0 + 203_000_000)]
        trace.end = t0 + 241_000_000
        var log = RequestLog(time: Date(), route: "retries", endpoint: "127.0.0.1:443", method: "POST", path: "/retries", status: 200,
                             duration: .milliseconds(241), providerKind: "openai", requestModel: "gpt-4o-mini", responseModel: "gpt-4o-mini",
                             inputTokens: 10, outputTokens: 5, provider: "openai-provider", group: 1,
                             attempts: [AttemptRecord(provider: "http-429-provider", group: 0, status: 429), AttemptRecord(provider: "openai-provider", group: 1, status: 200)],
                             error: nil, reason: nil)
        log.routeMatchPath = "/retries"
        log.trace = trace
        return log
    }
}

@Suite struct WaterfallTests {
    @Test("the spans of a retried request: server, two tries under it, the eviction event, the backoff")
    func spans() throws {
        let spans = RetriedRequest.log().trace!.spans(log: RetriedRequest.log())
        #expect(spans.map(\.name) == ["POST /retries", "POST http-429-provider", "POST openai-provider", "retry backoff"])
        #expect(spans.map(\.kind) == [.server, .client, .client, .internal])
        #expect(spans.dropFirst().allSatisfy { $0.parentSpanID == SpanID(0x1111) })
        #expect(spans[1].isError && !spans[2].isError && !spans[0].isError)
        #expect(spans[1].events.map(\.name) == ["failover.eviction"])
        #expect(spans[0]["attempts"] == .string("http-429-provider=429,openai-provider=200"))
        #expect(spans[0]["group"] == .int(2))
        // The access log carries the same ids.
        let line = RequestRetriedLine.text
        #expect(line.contains("\"trace.id\":\"0af7651916cd43dd8448eb211c80319c\""))
        #expect(line.contains("\"span.id\":\"0000000000001111\""))
    }

    @Test("the waterfall draws the tries, the backoff and the eviction on one time axis")
    func draws() throws {
        let spans = RetriedRequest.log().trace!.spans(log: RetriedRequest.log())
        var screen = Screen(width: 120, height: 30)
        Waterfall.draw(&screen, spans: spans, glyphs: .plain)
        let text = screen.text
        #expect(text.contains("Trace 0af7651916cd43dd8448eb211c80319c"))
        #expect(text.contains("POST /retries  200  241ms"), "\(text)")
        let rows = text.split(separator: "\n").map(String.init)
        let row429 = try #require(rows.first { $0.contains("http-429-provider g1 = 429") })
        let row200 = try #require(rows.first { $0.contains("openai-provider g2 = 200") })
        let rowBackoff = try #require(rows.first { $0.contains("retry backoff") })
        #expect(rows.contains { $0.contains("failover.eviction http-429-provider (rate, out for 60.0s)") || $0.contains("failover.eviction http-429-provider (rate, out for 60s)") }, "\(text)")
        // The 200's bar starts right of the 429's, the backoff's in between.
        let firstBar = (row429.firstRange(of: "#")?.lowerBound).map { row429.distance(from: row429.startIndex, to: $0) } ?? -1
        let secondBar = (row200.firstRange(of: "#")?.lowerBound).map { row200.distance(from: row200.startIndex, to: $0) } ?? -1
        #expect(firstBar > 0 && secondBar > firstBar + 20, "429 bar at \(firstBar), 200 bar at \(secondBar)")
        #expect(rowBackoff.contains("200ms"), "\(rowBackoff)")
    }

    @Test("at the smallest dashboard (80x24) every span still has its row", arguments: [Glyphs.plain, .unicode])
    func smallScreen(_ glyphs: Glyphs) {
        let spans = RetriedRequest.log().trace!.spans(log: RetriedRequest.log())
        var screen = Screen(width: 80, height: 24)
        Waterfall.draw(&screen, spans: spans, glyphs: glyphs)
        let text = screen.text
        for needle in ["request, 2 tries", "http-429-provider g1 = 429", "retry backoff", "openai-provider g2 = 200", "failover.eviction"] {
            #expect(text.contains(needle), "\(needle) missing at 80x24:\n\(text)")
        }
    }

    @Test("tab focuses the requests, up/down pick a row, enter opens its waterfall, esc closes it")
    func keys() throws {
        var state = DashboardState(model: SeedLab.start())
        var entries: [RequestEntry] = []
        for i in 0..<3 {
            var e = Feed.entry(RetriedRequest.log(), at: Double(i))
            e.status = 200 + i
            entries.append(e)
            state.model.apply(.request(e))
        }
        // Enter with the focus on the providers: the newest request's trace.
        #expect(state.handle(.char("\n")).isEmpty)
        #expect(state.waterfall?.status == 202)
        _ = state.handle(.escape)
        #expect(state.waterfall == nil)
        _ = state.handle(.char("\t"))
        #expect(state.focus == .requests)
        #expect(state.selectedRequestAt == 2)
        _ = state.handle(.char("k"))
        _ = state.handle(.up)
        _ = state.handle(.up)
        #expect(state.selectedRequestAt == 0)
        _ = state.handle(.down)
        #expect(state.selectedRequestAt == 1)
        let providerBefore = state.selected
        _ = state.handle(.char("\r"))
        #expect(state.waterfall?.status == 201)
        #expect(state.waterfall?.trace?.spans.count == 4)
        #expect(state.selected == providerBefore, "up/down moved the requests, not the providers")
        var options = RenderOptions(glyphs: .plain)
        options.waterfall = state.waterfall?.trace?.spans
        let screen = Dashboard.render(state.model, width: 120, height: 40, options: options)
        #expect(screen.text.contains("retry backoff"))
        _ = state.handle(.escape)
        #expect(state.waterfall == nil)
        #expect(!state.showHelp, "esc closed the waterfall, not opened the help")
        _ = state.handle(.char("\t"))
        #expect(state.focus == .providers)
        #expect(Keymap.table.contains { $0.action == .openWaterfall && $0.label == "enter" })
        #expect(Keymap.table.contains { $0.action == .switchFocus && $0.label == "tab" })
    }
}

enum RequestRetriedLine {
    static var text: String { RetriedRequest.log().jsonLine() }
}

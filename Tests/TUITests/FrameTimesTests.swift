import Testing
@testable import TUI

@Suite("Dashboard frame times (FAILOVER_LAB_FRAME_TIMES)")
struct FrameTimesTests {
    @Test("only the value 1 turns it on")
    func enabled() {
        #expect(FrameTimes.enabled(["FAILOVER_LAB_FRAME_TIMES": "1"]))
        #expect(!FrameTimes.enabled([:]))
        #expect(!FrameTimes.enabled(["FAILOVER_LAB_FRAME_TIMES": "yes"]))
    }

    @Test("the line gives nearest-rank p50, p99 and max of each part, in milliseconds")
    func summary() {
        var t = FrameTimes()
        // 100 frames: the whole frame is 1..100 ms; the slowest is all terminal time.
        for i in 1...100 {
            let ms = Double(i) / 1000
            t.add(refresh: ms / 4, render: ms / 4, present: ms / 2, cpu: i == 100 ? 0.012 : 0.002)
        }
        #expect(FrameTimes.quantile([1, 2, 3, 4], 0.5) == 2)
        #expect(FrameTimes.quantile([], 0.5) == nil)
        let line = t.line
        #expect(line.hasPrefix("frame time: 100 frames; whole frame p50 50.00 p99 99.00 max 100.00 ms; CPU p50 2.00 p99 2.00 max 12.00 ms, 0.21 s in all;"), "\(line)")
        #expect(line.contains("terminal p50 25.00 p99 49.50 max 50.00 ms"), "\(line)")
        #expect(FrameTimes().line.contains("whole frame p50 - p99 - max - ms"))
    }
}

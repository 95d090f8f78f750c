import Foundation
import Testing

/// The retries lab in a real terminal: tab to the requests, up to the retried one, enter
/// shows its trace (two tries, the backoff, the eviction), esc closes it.
@Suite struct TmuxWaterfallTests {
    @Test(.timeLimit(.minutes(2)))
    func retriedRequestWaterfall() throws {
        let tmux = try #require(TmuxEndToEndTests.which("tmux"), "tmux is needed: apt-get install tmux")
        let binary = try #require(TmuxEndToEndTests.binary(), "build failover-lab first (swift build)")
        let scenarios = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scenarios/retries-lab.yaml").path
        let t = TmuxEndToEndTests.Tmux(tmux: tmux, socket: "failover-lab-wf-\(getpid())")
        defer { t.run(["kill-server"]) }
        t.run(["new-session", "-d", "-s", "e2e", "-x", "140", "-y", "44", "'\(binary)' run '\(scenarios)' --port 0 --no-steps --rate 2/s; echo EXIT=$?; sleep 60"])
        // The first request is the retried one: its row starts its attempts with the 429.
        let (retried, screen) = t.wait(seconds: 30) { $0.contains("http-429-provider=429") }
        try #require(retried, "no retried request on screen:\n\(screen)")
        t.run(["send-keys", "-t", "e2e", "Tab"])
        for _ in 0..<40 { t.run(["send-keys", "-t", "e2e", "k"]) }
        t.run(["send-keys", "-t", "e2e", "Enter"])
        let (open, waterfall) = t.wait(seconds: 10) { $0.contains("retry backoff") }
        #expect(open, "no waterfall after enter:\n\(waterfall)")
        #expect(waterfall.contains("request, 2 tries"), "\(waterfall)")
        #expect(TmuxEndToEndTests.matches(waterfall, #"http-429-provider g1 = 429 +\+[0-9.]+(µs|ms) +[0-9.]+(µs|ms)"#), "\(waterfall)")
        #expect(waterfall.contains("openai-provider g2 = 200"), "\(waterfall)")
        #expect(waterfall.contains("failover.eviction http-429-provider (429 rate, out for 60.0s)"), "\(waterfall)")
        #expect(TmuxEndToEndTests.matches(waterfall, #"retry backoff +\+[0-9.]+(µs|ms) +2[0-9][0-9]ms"#), "the 200 ms backoff:\n\(waterfall)")
        t.run(["send-keys", "-t", "e2e", "Escape"])
        let (closed, after) = t.wait(seconds: 5) { !$0.contains("retry backoff") }
        #expect(closed, "esc did not close the waterfall:\n\(after)")
        t.run(["send-keys", "-t", "e2e", "q"])
        let (exited, end) = t.wait(seconds: 15) { $0.contains("EXIT=0") }
        #expect(exited, "\(end)")
    }
}

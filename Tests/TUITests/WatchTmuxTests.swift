import Foundation
import Testing

/// `failover-lab watch` on two of our gateways as two replicas, in a 160x48 tmux pane: both
/// replicas' states side by side in the groups panel.
@Suite struct WatchTmuxTests {
    /// A `failover-lab gateway --port 0 --admin-port 0` process and its two ports.
    final class Gateway {
        let process = Process()
        var port = 0
        var admin = 0

        init(binary: String) throws {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["gateway", "--port", "0", "--admin-port", "0"]
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            var text = ""
            let deadline = Date().addingTimeInterval(20)
            while port == 0 && Date() < deadline {
                let chunk = err.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
                for line in text.split(separator: "\n") {
                    let p = line.split(separator: " ").first { $0.hasPrefix("http://127.0.0.1:") }.flatMap { Int($0.split(separator: ":").last ?? "") }
                    if line.hasPrefix("admin on "), let p { admin = p }
                    if line.hasPrefix("listening on "), let p { port = p }
                }
            }
        }

        func stop() {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }

        /// One chat request through the gateway with curl; the status.
        func post() -> String {
            let curl = Process()
            curl.executableURL = URL(fileURLWithPath: TmuxEndToEndTests.which("curl") ?? "/usr/bin/curl")
            curl.arguments = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "content-type: application/json",
                              "-d", #"{"model":"","messages":[{"role":"user","content":"hi"}]}"#, "http://127.0.0.1:\(port)/http-429"]
            let out = Pipe()
            curl.standardOutput = out
            try? curl.run()
            curl.waitUntilExit()
            return String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func twoReplicasSideBySide() throws {
        let tmux = try #require(TmuxEndToEndTests.which("tmux"), "tmux is needed: apt-get install tmux")
        let binary = try #require(TmuxEndToEndTests.binary(), "build failover-lab first")
        let a = try Gateway(binary: binary), b = try Gateway(binary: binary)
        defer { a.stop(); b.stop() }
        try #require(a.admin > 0 && b.admin > 0 && a.port > 0 && b.port > 0)
        #expect(a.post() == "429")  // gw-a's group 1 evicted; gw-b's not
        let t = TmuxEndToEndTests.Tmux(tmux: tmux, socket: "failover-lab-watch-\(getpid())")
        defer { t.run(["kill-server"]) }
        let command = "'\(binary)' watch --admin gw-a=http://127.0.0.1:\(a.admin) --admin gw-b=http://127.0.0.1:\(b.admin); sleep 60"
        t.run(["new-session", "-d", "-s", "e2e", "-x", "160", "-y", "48", command])
        let (shown, screen) = t.wait(seconds: 20) { s in
            TmuxEndToEndTests.matches(s, #"http-429-provider +gw-a evicted \d+s +gw-b healthy"#)
                && TmuxEndToEndTests.matches(s, #"openai-provider +gw-a healthy +gw-b healthy"#)
        }
        #expect(shown, "both replica columns not on screen:\n\(screen)")
        #expect(screen.contains("replicas: gw-a, gw-b"), "\(screen)")
        #expect(TmuxEndToEndTests.matches(screen, #"Group 1 +gw-a skipped +gw-b ACTIVE"#), "\(screen)")
        // gw-b goes away: shown unreachable, with its last state.
        b.stop()
        let (down, after) = t.wait(seconds: 10) { $0.contains("gw-b UNREACHABLE") }
        #expect(down, "\(after)")
        t.run(["send-keys", "-t", "e2e", "q"])
        let (ended, last) = t.wait(seconds: 10) { $0.contains("watch summary:") }
        #expect(ended, "q did not end the watch:\n\(last)")
    }
}

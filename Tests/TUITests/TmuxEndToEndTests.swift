import Foundation
import Testing

/// The real thing in a real terminal: `failover-lab` in a 120x40 tmux pane, driven by keys.
@Suite struct TmuxEndToEndTests {
    /// The failover-lab binary built next to this test bundle.
    static func binary() -> String? {
        let here = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        var dir = here.deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent("failover-lab").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    static func which(_ tool: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    struct Tmux {
        let tmux: String
        let socket: String

        /// Runs tmux through /bin/sh with posix_spawn and waitpid (Foundation's Process can
        /// leave the forking `new-session` client unreaped here), output through a file.
        @discardableResult
        func run(_ args: [String]) -> String {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("\(socket)-\(UUID().uuidString).out").path
            defer { try? FileManager.default.removeItem(atPath: file) }
            func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
            let line = ([tmux, "-L", socket] + args).map(quote).joined(separator: " ") + " >" + quote(file) + " 2>/dev/null </dev/null"
            var pid: pid_t = 0
            let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), strdup("-c"), strdup(line), nil]
            defer { for a in argv { free(a) } }
            guard posix_spawn(&pid, "/bin/sh", nil, nil, argv, environ) == 0 else { return "" }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            return (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        }

        func capture() -> String { run(["capture-pane", "-p", "-t", "e2e"]) }

        /// Polls the pane until `condition` holds; the last capture either way.
        func wait(seconds: Double, until condition: (String) -> Bool) -> (Bool, String) {
            let deadline = Date().addingTimeInterval(seconds)
            var screen = ""
            while Date() < deadline {
                screen = capture()
                if condition(screen) { return (true, screen) }
                Thread.sleep(forTimeInterval: 0.2)
            }
            return (false, screen)
        }
    }

    static func matches(_ screen: String, _ pattern: String) -> Bool {
        screen.range(of: pattern, options: .regularExpression) != nil
    }

    @Test(.timeLimit(.minutes(2)))
    func seedLabInTmux() throws {
        let tmux = try #require(Self.which("tmux"), "tmux is needed for the end-to-end test: apt-get install tmux")
        let binary = try #require(Self.binary(), "build failover-lab first (swift build) so the test can start it")
        let t = Tmux(tmux: tmux, socket: "failover-lab-e2e-\(getpid())")
        defer { t.run(["kill-server"]) }
        // Traffic only (2/s), as before labs had steps: the f key below races no step's `set`.
        let command = "'\(binary)' run --port 0 --no-steps; echo EXIT=$?; sleep 60"
        t.run(["new-session", "-d", "-s", "e2e", "-x", "120", "-y", "40", command])

        // The first request: a 429 from http-429-provider; then a 200 from openai-provider.
        let (served, screen) = t.wait(seconds: 30) { s in
            Self.matches(s, #"\d\d:\d\d\.\d 429 +http-429-provider"#) && Self.matches(s, #"\d\d:\d\d\.\d 200 +openai-provider"#)
        }
        #expect(served, "no 429 then 200 on screen:\n\(screen)")
        #expect(Self.matches(screen, "http-429-provider +evicted"), "the provider is not shown evicted:\n\(screen)")
        #expect(screen.contains("Group 2  ACTIVE"), "group 2 is not active:\n\(screen)")

        // f: the selected provider's stand-in goes from 429 to the next fault.
        t.run(["send-keys", "-t", "e2e", "f"])
        let (faulted, afterF) = t.wait(seconds: 10) { $0.contains("stand-in http-429 now 5xx") }
        #expect(faulted, "f did not change the stand-in:\n\(afterF)")

        // ?: the help overlay, listing the keys.
        t.run(["send-keys", "-t", "e2e", "?"])
        let (help, withHelp) = t.wait(seconds: 10) { $0.contains("Keys (") && $0.contains("send one request now") }
        #expect(help, "? did not show the help:\n\(withHelp)")

        // q: the terminal comes back and the report is printed.
        t.run(["send-keys", "-t", "e2e", "q"])
        let (ended, final) = t.wait(seconds: 20) { $0.contains("EXIT=") }
        #expect(ended, "failover-lab did not end on q:\n\(final)")
        #expect(final.contains("EXIT=0"))
        #expect(final.contains("failover-lab report"))
        #expect(Self.matches(final, #"\n +429 +1 "#), "the report lacks the one 429:\n\(final)")
        #expect(Self.matches(final, #"openai-provider +\d+"#))
        #expect(!final.contains("Priority groups"), "the dashboard is still on screen:\n\(final)")
        let flags = t.run(["display-message", "-p", "-t", "e2e", "#{alternate_on} #{cursor_flag}"]).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(flags == "0 1", "terminal not restored (alternate screen, cursor): \(flags)")
    }

    @Test(.timeLimit(.minutes(2)))
    func seedLabNarratedStepByStep() throws {
        let tmux = try #require(Self.which("tmux"), "tmux is needed for the end-to-end test: apt-get install tmux")
        let binary = try #require(Self.binary(), "build failover-lab first (swift build) so the test can start it")
        let t = Tmux(tmux: tmux, socket: "failover-lab-steps-\(getpid())")
        defer { t.run(["kill-server"]) }
        let command = "'\(binary)' run --port 0 --step-by-key; echo EXIT=$?; sleep 60"
        t.run(["new-session", "-d", "-s", "e2e", "-x", "120", "-y", "40", command])

        let (waiting, first) = t.wait(seconds: 30) { $0.contains("Lab · press n to start") }
        #expect(waiting, "presenter mode does not wait for n:\n\(first)")

        // n: step 1 runs; its text shows, its until holds at the 429, its expectations turn ✓,
        // and it waits for n again.
        t.run(["send-keys", "-t", "e2e", "n"])
        let (step1, one) = t.wait(seconds: 15) { s in
            s.contains("step 1 of 5 · press n for step 2") && s.contains("✓ requests == 1 (1)")
        }
        #expect(step1, "step 1 did not end with its expectation held:\n\(one)")
        #expect(one.contains("Group 1 answers 429"))
        #expect(one.contains("The first request goes to http-429-provider in priority group 1"), "no say text:\n\(one)")
        #expect(Self.matches(one, "step 1/5 held \\(1 request\\)"), "no step line in the events:\n\(one)")

        // n: step 2, whose three requests fail over to group 2.
        t.run(["send-keys", "-t", "e2e", "n"])
        let (step2, two) = t.wait(seconds: 15) { s in
            s.contains("step 2 of 5 · press n for step 3") && s.contains("✓ status[200] == 3 (3)")
        }
        #expect(step2, "step 2 did not run and hold:\n\(two)")
        #expect(two.contains("Group 2 serves while group 1 is evicted"))

        // q: the report has the step verdicts.
        t.run(["send-keys", "-t", "e2e", "q"])
        let (ended, final) = t.wait(seconds: 20) { $0.contains("EXIT=") }
        #expect(ended, "failover-lab did not end on q:\n\(final)")
        #expect(final.contains("EXIT=0"))
        #expect(final.contains("lab steps: 2 of 5 held, 3 not run to their end"), "\(final)")
        #expect(Self.matches(final, "ok +1/5 Group 1 answers 429"), "\(final)")
    }
}

import Foundation
import Testing
@testable import Gateway
@testable import Lab
@testable import Upstreams

/// The mock OpenAI's answers and the stand-in behaviour text are a client's and an admin
/// caller's input: nothing in them may trap.
@Suite("Stand-ins: arithmetic and behaviour text")
struct MockArithmeticTests {
    @Test("sums that overflow Int are answered, not trapped on", arguments: [
        "What is 9999999999*9999999999?", "What is 9223372036854775807 + 1?", "What is -9223372036854775808 - 1?",
        "What is -9223372036854775808 * -1?", "What is 4611686018427387904 x 2?", "What is 3037000500 × 3037000500?",
    ])
    func overflow(_ prompt: String) {
        let reply = MockOpenAI.reply(to: prompt)
        #expect(reply.contains("too large for me to work out"), "\(reply)")
    }

    @Test("numbers longer than Int, other scripts' digits and a long run of digits are handled")
    func oddNumbers() {
        #expect(MockOpenAI.reply(to: "What is 123456789012345678901234567890 + 1?").contains("that number is too large"))
        // Arabic-Indic digits are not sums for us: the fixed sentence.
        #expect(MockOpenAI.reply(to: "What is ٣+٤?").hasPrefix("This is the mock OpenAI stand-in"))
        let start = ContinuousClock.now
        _ = MockOpenAI.reply(to: String(repeating: "9", count: 1_000_000))
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test("ordinary sums still come out right")
    func ordinary() {
        #expect(MockOpenAI.reply(to: "What is 2+2?") == "2 + 2 equals 4.")
        #expect(MockOpenAI.reply(to: "What is 6 x 7?") == "6 * 7 equals 42.")
        #expect(MockOpenAI.reply(to: "What is -3 - 4?") == "-3 - 4 equals -7.")
        #expect(MockOpenAI.reply(to: "What is 3037000499*3037000499?") == "3037000499 * 3037000499 equals 9223372030926249001.")
    }

    @Test("the byte scan finds the same first sum as the regular expression it replaced, on 20,000 random prompts")
    func scanMatchesTheRegex() {
        let pattern = #/(-?\d+)\s*([+\-*x×])\s*(-?\d+)/#.asciiOnlyDigits()
        let alphabet = Array("0123456789--++**xx×  \tab?")
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let prompt = String((0..<Int.random(in: 0...24, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            let expected = prompt.firstMatch(of: pattern).map { MockOpenAI.Sum(left: String($0.1), op: String($0.2), right: String($0.3)) }
            #expect(MockOpenAI.Sum.first(in: prompt) == expected, "\(prompt.debugDescription)")
        }
    }

    @Test("bad behaviour text is an error saying what was wrong", arguments: [
        ("slow infms", "delay infms is not a duration"), ("slow nanms", "delay nanms is not a duration"),
        ("slow 1e300ms", "longer than 60 minutes"), ("slow 99999999999s", "longer than 60 minutes"),
        ("slow 200ms jitter=infms", "jitter infms is not a duration"), ("slow -5ms", "is not a duration"),
        ("503 500%", "share must be a percentage"), ("503 nan%", "share must be a percentage"),
        ("rate-limited inf/s", "rate must be"), ("rate-limited 1e300/s", "rate must be"), ("rate-limited 0/s", "rate must be"),
        ("rate-limited 5/s burst=99999999999999999999", "burst must be"), ("rate-limited 5/s burst=0", "burst must be"),
        ("429 retry-after=-1", "retry-after must be whole seconds"), ("429 99999999999999999999", "retry-after must be whole seconds"),
        ("slow 200ms foo=1", "unknown option foo="), ("healthy now", "unexpected \"now\""), ("teapot", "unknown behavior teapot"),
        ("", "empty"), (String(repeating: "slow ", count: 100), "longer than 200 characters"),
    ])
    func badBehavior(_ text: String, _ expected: String) {
        do {
            let behavior = try StandInBehavior.parse(text)
            Issue.record("\(text) gave \(behavior)")
        } catch {
            #expect(error.reason.contains(expected), "\(text): \(error.reason)")
        }
    }

    @Test("the documented forms still parse")
    func goodBehavior() throws {
        #expect(try StandInBehavior.parse("slow 200ms jitter=50ms") == .slow(delayMs: 200, jitterMs: 50))
        #expect(try StandInBehavior.parse("slow 1.5s") == .slow(delayMs: 1500, jitterMs: 0))
        #expect(try StandInBehavior.parse("503 50%") == .serverErrors(status: 503, share: 0.5))
        #expect(try StandInBehavior.parse("5xx") == .serverErrors(status: 500, share: 1))
        #expect(try StandInBehavior.parse("rate-limited 5/s burst=10") == .rateLimited(rate: 5, burst: 10))
        #expect(try StandInBehavior.parse("429 retry-after=999999999") == .always429(retryAfter: 999_999_999))
        #expect(try StandInBehavior.parse("429 60") == .always429(retryAfter: 60))
        #expect(try StandInBehavior.parse("HANG") == .hang)
    }
}

extension OverSockets {
    @Suite("Stand-ins over the wire", .serialized)
    struct HostileStandInTests {
        static func chat(_ content: String) -> String {
            #"{"model": "", "messages": [{"role": "user", "content": "\#(content)"}]}"#
        }

        @Test("What is 9999999999*9999999999? gets an answer, and the lab serves the next request")
        func hugeSum() async throws {
            let (lab, _) = try await EndToEndTests.start(try EndToEndTests.seedLab())
            defer { Task { await lab.stop() } }
            let port = lab.gateway.port
            #expect(try await TestClient.post(port: port, path: "/http-429").status == 429)
            let huge = try await TestClient.post(port: port, path: "/http-429", body: Self.chat("What is 9999999999*9999999999?"))
            #expect(huge.status == 200)
            let content = ((huge.json?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
            #expect(content == "9999999999 * 9999999999: the answer is too large for me to work out.")
            let next = try await TestClient.post(port: port, path: "/http-429")
            #expect(next.status == 200)
            #expect(next.body.contains("2 + 2 equals 4."))
        }

        @Test("a body over 16 MiB sent to a stand-in directly gets 413; the stand-in serves the next request")
        func hugeBody() async throws {
            let standIn = try await StandIn.start(name: "openai", behavior: .healthy, group: TestClient.group)
            defer { Task { await standIn.stop() } }
            let huge = try await TestClient.post(port: standIn.port, path: "/v1/chat/completions", body: String(repeating: " ", count: 17 * 1024 * 1024))
            #expect(huge.status == 413)
            let next = try await TestClient.post(port: standIn.port, path: "/v1/chat/completions")
            #expect(next.status == 200)
            #expect(next.body.contains("2 + 2 equals 4."))
        }
    }
}

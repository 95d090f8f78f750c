import Foundation
import Testing
@testable import Driver
import Wire

private let second: Nanos = 1_000_000_000

private func run(_ config: DriverConfiguration) -> ([RequestRecord], DriverStats) {
    let got = Collected()
    let driver = Driver(configuration: config, sink: got.sink)
    driver.run()
    return (got.records.sorted { $0.seq < $1.seq }, driver.stats)
}

@Suite(.serialized) struct EngineTests {
    /// The request on the wire: the driver's User-Agent unless one is given, and no
    /// `Expect: 100-continue` for a small body.
    /// libcurl's proxy variables all end in `_proxy`; without one, the engine pins "no proxy".
    @Test func proxyVariablesAreRecognised() {
        #expect(!Engine.proxyConfigured(in: ["PATH=/usr/bin", "HOME=/root", "PROXY=x", "proxy_pass=1", "_PROXYX=1"]))
        for name in ["http_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY", "ftp_proxy"] {
            #expect(Engine.proxyConfigured(in: ["PATH=/usr/bin", name + "=http://proxy:3128"]), "\(name)")
        }
        #expect(Engine.proxyConfigured(in: ["no_proxy="]))
    }

    @Test func sendsItsUserAgentUnlessGivenOne() throws {
        final class Seen: @unchecked Sendable {
            let lock = NSLock()
            var headers: [[String: String]] = []
        }
        let seen = Seen()
        let server = try TestServer { req in
            seen.lock.lock()
            seen.headers.append(req.headers)
            seen.lock.unlock()
            return .init(body: "{\"model\":\"m\"}")
        }
        defer { server.stop() }
        let mix = RequestMix([RequestSpec.chat(url: server.base + "/a"),
                              RequestSpec.chat(url: server.base + "/b", headers: ["User-Agent: mine/2"])])
        var config = DriverConfiguration(workload: .closedLoop(concurrency: 1), mix: mix, requestLimit: 20)
        config.seed = 5
        let (records, _) = run(config)
        #expect(records.count == 20 && records.allSatisfy { $0.status == 200 })
        seen.lock.lock()
        let all = seen.headers
        seen.lock.unlock()
        #expect(all.count == 20)
        #expect(all.contains { $0["user-agent"] == "failover-lab-driver/1" })
        #expect(all.contains { $0["user-agent"] == "mine/2" })
        #expect(all.allSatisfy { $0["user-agent"] == "failover-lab-driver/1" || $0["user-agent"] == "mine/2" })
        #expect(all.allSatisfy { $0["expect"] == nil && $0["content-type"] == "application/json" })
    }

    @Test func capturesStatusProviderAndTokens() throws {
        let server = try TestServer { req in
            if req.path == "/fail" { return .init(status: 503, body: "{\"error\":\"down\"}") }
            if req.path == "/failover" {
                return .init(headers: [("Content-Type", "application/json"),
                                       ("x-failover-attempts", "http-429-provider=429,openai-provider=200")],
                             body: "{\"model\":\"gpt-4o-mini\",\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}")
            }
            let body = String(decoding: req.body, as: UTF8.self)
            // Echo the request's model back, as the mock OpenAI does.
            let model = (try? JSONValue.parse(body))?["model"]?.string ?? "none"
            return .init(body: "{\"model\":\"\(model)\",\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}")
        }
        defer { server.stop() }
        let mix = RequestMix([
            RequestSpec.chat(url: server.base + "/ok", model: "echo-model"),
            RequestSpec.chat(url: server.base + "/fail"),
            RequestSpec.chat(url: server.base + "/failover"),
        ])
        var config = DriverConfiguration(workload: .closedLoop(concurrency: 3), mix: mix, requestLimit: 60)
        config.seed = 3
        let (records, stats) = run(config)
        #expect(records.count == 60)
        #expect(stats.completed == 60)
        #expect(records.map(\.seq) == Array(0..<60))
        let ok = records.filter { $0.url.hasSuffix("/ok") }
        let fail = records.filter { $0.url.hasSuffix("/fail") }
        let failover = records.filter { $0.url.hasSuffix("/failover") }
        #expect(!ok.isEmpty && !fail.isEmpty && !failover.isEmpty)
        for r in ok {
            #expect(r.status == 200)
            #expect(r.provider == "echo-model")
            #expect(r.attempts == nil)
            #expect(r.tokens == TokenUsage(prompt: 1, completion: 2, total: 3))
            #expect(r.error == nil)
            #expect(r.model == "echo-model")
            #expect(r.method == "POST")
            #expect(r.bytesOut > 100)
            #expect(r.bytesIn > 50)
            #expect(r.latency != nil && r.ttfb != nil)
            #expect(r.ttfb! <= r.latency!)
        }
        for r in fail { #expect(r.status == 503); #expect(r.error == nil) }
        for r in failover {
            #expect(r.status == 200)
            #expect(r.provider == "openai-provider")
            #expect(r.attempts == [Attempt(provider: "http-429-provider", status: 429), Attempt(provider: "openai-provider", status: 200)])
            #expect(r.tokens?.total == 15)
        }
        // The body the lab's curl sends.
        #expect(stats.statusCounts[200]! + stats.statusCounts[503]! == 60)
    }

    @Test func sendsTheLabsDefaultRequest() throws {
        let seen = Collected()
        let server = try TestServer { req in
            let body = String(decoding: req.body, as: UTF8.self)
            seen.add(RequestRecord(seq: 0, intended: 0, method: req.method, url: req.path,
                                   model: req.headers["content-type"], error: body))
            return .init()
        }
        defer { server.stop() }
        let config = DriverConfiguration(workload: .closedLoop(concurrency: 1),
                                         mix: RequestMix([RequestSpec.chat(url: server.base + "/http-429")]), requestLimit: 1)
        _ = run(config)
        let r = try #require(seen.records.first)
        #expect(r.method == "POST")
        #expect(r.url == "/http-429")
        #expect(r.model == "application/json")
        let json = try JSONValue.parse(r.error!)
        #expect(json["model"] == .string(""))
        #expect(json["messages"]?.array?.first?["content"] == .string("What is 2+2?"))
        #expect(json["messages"]?.array?.first?["role"] == .string("user"))
    }

    @Test func recordsTransportErrorsWithoutStopping() throws {
        // A port nobody listens on: bind one, read its number, close it.
        let closed = try TestServer { _ in .init() }
        let deadPort = closed.port
        closed.stop()
        let server = try TestServer { req in
            if req.path == "/reset" { return .init(reset: true) }
            if req.path == "/slow" { return .init(delay: 1.0) }
            return .init()
        }
        defer { server.stop() }
        let mix = RequestMix([
            RequestSpec.chat(url: "http://127.0.0.1:\(deadPort)/x"),
            RequestSpec.chat(url: server.base + "/reset"),
            RequestSpec.chat(url: server.base + "/slow"),
            RequestSpec.chat(url: server.base + "/ok"),
        ])
        var config = DriverConfiguration(workload: .closedLoop(concurrency: 4), mix: mix, requestLimit: 24)
        config.timeout = 200_000_000
        let (records, _) = run(config)
        #expect(records.count == 24)
        let refused = records.filter { $0.url.contains(":\(deadPort)/") }
        let reset = records.filter { $0.url.hasSuffix("/reset") }
        let slow = records.filter { $0.url.hasSuffix("/slow") }
        let ok = records.filter { $0.url.hasSuffix("/ok") }
        #expect(!refused.isEmpty && !reset.isEmpty && !slow.isEmpty && !ok.isEmpty)
        for r in refused {
            #expect(r.status == nil)
            #expect(r.error?.contains("curl error 7") == true)
            #expect(ReportBuilder.errorKind(r.error!) == "connect failed", "\(r.error!)")
        }
        for r in reset {
            #expect(r.status == nil)
            #expect(r.error != nil)
        }
        for r in slow {
            #expect(r.error?.contains("curl error 28") == true)
            #expect(ReportBuilder.errorKind(r.error!) == "timeout")
            #expect(r.latency! >= 150_000_000)
        }
        for r in ok { #expect(r.status == 200 && r.error == nil, "\(r)") }
    }

    @Test func reusesConnections() throws {
        let server = try TestServer { _ in .init() }
        defer { server.stop() }
        let config = DriverConfiguration(workload: .closedLoop(concurrency: 4),
                                         mix: RequestMix([RequestSpec.chat(url: server.base + "/")]), requestLimit: 400)
        let (records, stats) = run(config)
        #expect(records.count == 400)
        #expect(records.allSatisfy { $0.status == 200 })
        #expect(server.requests == 400)
        #expect(server.connections == 4)
        #expect(stats.connectionsOpened == 4)
    }

    @Test("--ramp-up: slot k of N opens at k·ramp/N, never before; all open at once without it")
    func rampUpSchedule() {
        let ramp: Nanos = 1_000_000_000
        #expect(Engine.openSlots(at: 0, of: 1000, rampUp: ramp) == 1)
        #expect(Engine.openSlots(at: 999_999, of: 1000, rampUp: ramp) == 1)
        #expect(Engine.openSlots(at: 1_000_000, of: 1000, rampUp: ramp) == 2)
        #expect(Engine.openSlots(at: ramp - 1, of: 1000, rampUp: ramp) == 1000)
        #expect(Engine.openSlots(at: ramp, of: 1000, rampUp: ramp) == 1000)
        #expect(Engine.openSlots(at: 5, of: 1000, rampUp: nil) == 1000)
        #expect(Engine.openSlots(at: 5, of: 1, rampUp: ramp) == 1)
        #expect(Engine.nextOpening(after: ramp, of: 1000, rampUp: ramp) == nil)
        var rng = SeededRandom(seed: 7)
        for _ in 0..<5_000 {
            let slots = Int.random(in: 2...100_000, using: &rng)
            let r = Nanos.random(in: 1...3_600_000_000_000, using: &rng)
            let t = Nanos.random(in: 0..<r, using: &rng)
            let open = Engine.openSlots(at: t, of: slots, rampUp: r)
            #expect((1...slots).contains(open))
            guard let next = Engine.nextOpening(after: t, of: slots, rampUp: r) else {
                #expect(open == slots)
                continue
            }
            #expect(next > t)
            #expect(Engine.openSlots(at: next, of: slots, rampUp: r) == open + 1)
            #expect(Engine.openSlots(at: next - 1, of: slots, rampUp: r) == open)
        }
    }

    @Test("a closed loop with --ramp-up sends its first requests one ramp step apart")
    func rampUpOverSockets() throws {
        let server = try TestServer { _ in .init(delay: 1.0) }
        defer { server.stop() }
        var config = DriverConfiguration(workload: .closedLoop(concurrency: 10),
                                         mix: RequestMix([RequestSpec.chat(url: server.base + "/")]), duration: 600_000_000)
        config.rampUp = 500_000_000
        let (records, _) = run(config)
        #expect(records.count == 10)
        let sent = records.compactMap(\.sent).sorted()
        #expect(sent.count == 10)
        for (k, at) in sent.enumerated() {
            #expect(at >= Nanos(k) * 50_000_000, "request \(k) sent at \(at) ns")
            #expect(at < Nanos(k) * 50_000_000 + 45_000_000, "request \(k) sent at \(at) ns")
        }
    }

    @Test func openLoopKeepsItsSchedule() throws {
        let server = try TestServer { _ in .init() }
        defer { server.stop() }
        var config = DriverConfiguration(workload: .openLoop([Phase(.constant(rate: 200))]),
                                         mix: RequestMix([RequestSpec.chat(url: server.base + "/")]), duration: second)
        config.maxInFlight = 16
        let start = Date()
        let (records, stats) = run(config)
        #expect(records.count == 200)
        #expect(stats.late == 0)
        #expect(Date().timeIntervalSince(start) < 2.5)
        for (i, r) in records.enumerated() {
            #expect(r.intended == Nanos(i) * 5_000_000)
            #expect(r.sent! >= r.intended)
            #expect(r.sent! - r.intended < 50_000_000)
            #expect(r.correctedLatency! >= r.latency!)
        }
        var b = ReportBuilder()
        records.forEach { b.add($0) }
        #expect(abs(b.build().achievedRate - 200) < 2)
    }

    @Test func countsLateRequestsWhenTheServerStalls() throws {
        let server = try TestServer { _ in .init(delay: 0.3) }
        defer { server.stop() }
        var config = DriverConfiguration(workload: .openLoop([Phase(.constant(rate: 100))]),
                                         mix: RequestMix([RequestSpec.chat(url: server.base + "/")]),
                                         duration: 500_000_000)
        config.maxInFlight = 2
        let (records, stats) = run(config)
        // 50 arrivals; 2 slots each busy 0.3 s: at most 4 start on time in 0.5 s.
        #expect(records.count == 50)
        #expect(records.map(\.seq) == Array(0..<50))
        #expect(stats.late >= 45)
        #expect(records.filter(\.late).count == Int(stats.late))
        let unsent = records.filter { $0.sent == nil }
        #expect(!unsent.isEmpty)
        #expect(unsent.allSatisfy { $0.late && $0.error?.hasPrefix("not sent") == true })
        // Late ones that were sent carry the wait in their corrected latency.
        let lateSent = records.filter { $0.late && $0.sent != nil }
        #expect(!lateSent.isEmpty)
        for r in lateSent {
            #expect(r.correctedLatency! >= r.latency! + (r.sent! - r.intended))
            #expect(r.sent! - r.intended > 50_000_000)
        }
        #expect(server.connections <= 2)
    }

    @Test func controlsPauseSendOneAndRate() throws {
        let server = try TestServer { _ in .init() }
        defer { server.stop() }
        var config = DriverConfiguration(workload: .openLoop([Phase(.constant(rate: 1000))]),
                                         mix: RequestMix([RequestSpec.chat(url: server.base + "/")]))
        config.startPaused = true
        let got = Collected()
        let driver = Driver(configuration: config, sink: got.sink)
        driver.start()
        usleep(100_000)
        #expect(got.records.isEmpty)
        driver.sendOne()
        driver.sendOne()
        usleep(100_000)
        #expect(got.records.count == 2)
        // The rate changes while still paused; the schedule must start at the resume, not later.
        driver.setRate(50)
        usleep(200_000)
        driver.resume()
        usleep(400_000)
        driver.stop()
        driver.wait()
        let n = got.records.count - 2
        // 50/s for ~0.4 s: about 20, far from 1000/s.
        #expect(n >= 12 && n <= 30, "\(n) requests")
        #expect(driver.stats.finished)
        #expect(driver.stats.rate == 50)
    }

    @Test func aScaleSpeedsUpThePlanItselfAndAClosedLoopsConcurrency() throws {
        let server = try TestServer { _ in .init(delay: 0.15) }
        defer { server.stop() }
        // Open loop: 20/s for 0.5 s, then twice the plan (40/s) for 0.5 s.
        let got = Collected()
        let open = Driver(configuration: DriverConfiguration(
            workload: .openLoop([Phase(.constant(rate: 20))]), mix: RequestMix([RequestSpec.chat(url: server.base + "/")])),
            sink: got.sink)
        open.start()
        usleep(500_000)
        open.setScale(2)
        usleep(500_000)
        open.stop()
        open.wait()
        let intended = got.records.map(\.intended).sorted()
        let first = intended.filter { $0 < 500_000_000 }.count
        let second = intended.filter { $0 >= 500_000_000 && $0 < 1_000_000_000 }.count
        #expect(first >= 8 && first <= 12, "\(first) requests in the first half second at 20/s")
        #expect(second >= 16 && second <= 24, "\(second) requests in the second at x2")
        #expect(open.stats.scale == 2)

        // Closed loop: 2 in flight, then x3 = 6 in flight (each request takes 150 ms).
        let closedGot = Collected()
        let closed = Driver(configuration: DriverConfiguration(
            workload: .closedLoop(concurrency: 2), mix: RequestMix([RequestSpec.chat(url: server.base + "/")])),
            sink: closedGot.sink)
        closed.start()
        usleep(300_000)
        closed.setScale(3)
        usleep(150_000)
        let inFlight = closed.stats.inFlight
        usleep(300_000)
        closed.setScale(0.5)
        usleep(400_000)
        let reduced = closed.stats.inFlight
        closed.stop()
        closed.wait()
        #expect(inFlight >= 5 && inFlight <= 6, "in flight at x3: \(inFlight)")
        #expect(reduced == 1, "in flight at x0.5 of 2: \(reduced)")
    }

    @Test func rateZeroIdlesUntilARateOrAStop() throws {
        let server = try TestServer { _ in .init() }
        defer { server.stop() }
        let got = Collected()
        let driver = Driver(configuration: DriverConfiguration(
            workload: .openLoop([Phase(.constant(rate: 0))]), mix: RequestMix([RequestSpec.chat(url: server.base + "/")])),
            sink: got.sink)
        driver.start()
        usleep(100_000)
        #expect(!driver.stats.finished)
        driver.sendOne()
        usleep(100_000)
        #expect(got.records.count == 1)
        driver.setRate(100)
        usleep(300_000)
        driver.setRate(0)
        usleep(50_000)
        let afterZero = got.records.count
        usleep(200_000)
        #expect(got.records.count == afterZero)
        #expect(afterZero >= 20 && afterZero <= 40, "\(afterZero) requests")
        #expect(!driver.stats.finished)
        driver.stop()
        #expect(driver.wait(seconds: 2))
    }

    @Test func anIdleRunStillEndsOnItsDuration() throws {
        let server = try TestServer { _ in .init() }
        defer { server.stop() }
        let driver = Driver(configuration: DriverConfiguration(
            workload: .openLoop([Phase(.constant(rate: 0))]), mix: RequestMix([RequestSpec.chat(url: server.base + "/")]),
            duration: 200_000_000), sink: Collected().sink)
        driver.start()
        #expect(driver.wait(seconds: 2))
        #expect(driver.stats.elapsed >= 200_000_000 && driver.stats.elapsed < 400_000_000)
    }

    @Test func recorderWritesLinesThatReadBack() throws {
        let server = try TestServer { _ in .init() }
        defer { server.stop() }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fl-rec-\(getpid()).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let recorder = try Recorder(path: path)
        let got = Collected()
        let sink = RecordSink(record: { recorder.record($0); got.add($0) }, flush: { recorder.flush() })
        let driver = Driver(configuration: DriverConfiguration(
            workload: .closedLoop(concurrency: 2), mix: RequestMix([RequestSpec.chat(url: server.base + "/")]),
            requestLimit: 20), sink: sink)
        driver.run()
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n")
        #expect(lines.count == 20)
        let back = try lines.map { try RequestRecord(line: String($0)) }
        #expect(back.sorted { $0.seq < $1.seq } == got.records.sorted { $0.seq < $1.seq })
    }
}

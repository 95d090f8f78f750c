import Foundation
import Histogram
import Testing
@testable import Driver
import Wire

/// `drive --shard K/N`: each shard's part of the plan, and the shards' records read by
/// `report` as one run.
@Suite(.serialized) struct ShardTests {
    @Test func readsKOfNAndTheJobIndex() throws {
        #expect(try Shard.parse("2/8", environment: [:]) == Shard(index: 2, count: 8))
        #expect(try Shard.parse("0/1", environment: [:]) == Shard(index: 0, count: 1))
        #expect(try Shard.parse("/8", environment: ["JOB_COMPLETION_INDEX": "7"]) == Shard(index: 7, count: 8))
        // An explicit K wins over the environment.
        #expect(try Shard.parse("1/8", environment: ["JOB_COMPLETION_INDEX": "7"]) == Shard(index: 1, count: 8))
    }

    @Test(arguments: [
        ("3/2", [:], "shard 3 of 2 does not exist"), ("2/2", [:], "K runs from 0 to 1"), ("0/0", [:], "shard count must be 1...10000"),
        ("-1/4", [:], "K (the shard index) in \"-1/4\" must be a whole number"), ("1/-4", [:], "N (the shard count)"),
        ("1/99999999999999999999", [:], "N (the shard count) in \"1/99999999999999999999\" is too large"), ("99999999999/4", [:], "is too large"), ("1/20000", [:], "shard count must be 1...10000"),
        ("1/4/2", [:], "give K/N"), ("4", [:], "give K/N"), ("a/4", [:], "must be a whole number"), ("1/", [:], "N (the shard count)"),
        (" 1/4", [:], "must be a whole number"), ("/4", [:], "JOB_COMPLETION_INDEX, which is not set"),
        ("/4", ["JOB_COMPLETION_INDEX": "4"], "shard 4 of 4 does not exist"), ("/4", ["JOB_COMPLETION_INDEX": "x"], "JOB_COMPLETION_INDEX must be"),
    ] as [(String, [String: String], String)])
    func refusesBadShards(_ text: String, _ env: [String: String], _ expected: String) {
        do {
            let shard = try Shard.parse(text, environment: env)
            Issue.record("\(text) gave \(shard)")
        } catch {
            #expect(error.description.contains(expected), "\(text): \(error)")
        }
    }

    @Test func dividesThePlan() throws {
        let shards = try (0..<3).map { try Shard(index: $0, count: 3) }
        // Closed loop and --requests: the remainder goes to the first shards.
        #expect(shards.map { $0.share(of: 10) } == [4, 3, 3])
        #expect(try shards.map { try $0.share(ofRequests: 30) } == [10, 10, 10])
        for (shard, want) in zip(shards, [4, 3, 3]) {
            guard case .closedLoop(let c) = try shard.share(of: .closedLoop(concurrency: 10)) else { Issue.record("not closed"); continue }
            #expect(c == want)
        }
        #expect(throws: ShardError.self) { try shards[2].share(of: .closedLoop(concurrency: 2)) }
        #expect(throws: ShardError.self) { try shards[2].share(ofRequests: 2) }
        // Open loop: rates divided; lengths kept; bursts divided like concurrency.
        let phases = [Phase(.constant(rate: 300), duration: 5), Phase(.poisson(rate: 90)), Phase(.ramp(from: 30, to: 60, over: 7)),
                      Phase(.steps(rates: [3, 6], every: 2)), Phase(.bursts(size: 10, every: 4, baseRate: 3))]
        guard case .openLoop(let mine) = try shards[0].share(of: .openLoop(phases)) else { Issue.record("not open"); return }
        #expect(mine == [Phase(.constant(rate: 100), duration: 5), Phase(.poisson(rate: 30)), Phase(.ramp(from: 10, to: 20, over: 7)),
                         Phase(.steps(rates: [1, 2], every: 2)), Phase(.bursts(size: 4, every: 4, baseRate: 1))])
        // seq: interleaved and disjoint, together every number once.
        let seqs = shards.flatMap { s in (0..<5).map { s.seq(UInt64($0)) } }
        #expect(Set(seqs) == Set(0..<15) && seqs.count == 15)
        #expect(shards.map { $0.seed(1) } == [1, 2, 3])
        // A shard's run of an open-loop plan: N shards' pacers together make the rate.
        var total = 0
        for s in shards {
            guard case .openLoop(let p) = try s.share(of: .openLoop([Phase(.constant(rate: 300), duration: 1_000_000_000)])) else { continue }
            var pacer = Pacer(phases: p, rng: SeededRandom(seed: s.seed(1)))
            while pacer.next() != nil { total += 1 }
        }
        #expect(total == 300)
    }

    /// Three shards of one plan (closed loop, 3 in flight, 90 requests) against one server,
    /// each recording to its own JSONL file as `drive --shard K/3 --record` does; `report`'s
    /// reading of the three files is compared with one run of the same plan and with the
    /// percentiles of the merged raw latencies.
    @Test func threeShardsReportAsOneRun() throws {
        let server = try TestServer { req in
            // Latencies spread over a few milliseconds, so percentiles differ.
            .init(body: #"{"model":"m","usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
                  delay: Double(req.body.count % 7) * 0.0005 + Double.random(in: 0...0.004))
        }
        defer { server.stop() }
        func plan() -> DriverConfiguration {
            var config = DriverConfiguration(workload: .closedLoop(concurrency: 3), mix: RequestMix([RequestSpec.chat(url: server.base + "/v1")]),
                                             requestLimit: 90)
            config.seed = 9
            return config
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("shards-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var files: [String] = []
        for k in 0..<3 {
            var config = plan()
            try config.applyShard(try Shard.parse("/3", environment: ["JOB_COMPLETION_INDEX": String(k)]))
            let path = dir.appendingPathComponent("shard-\(k).jsonl").path
            let recorder = try Recorder(path: path)
            Driver(configuration: config, sink: recorder.sink).run()
            recorder.flush()
            files.append(path)
        }
        // What `failover-lab report shard-*.jsonl` does: every line of every file into one builder.
        var merged = ReportBuilder()
        var raw: [RequestRecord] = []
        for file in files {
            let reader = try LineReader(path: file)
            while let line = reader.next() {
                guard line.first == "{" else { continue }
                let r = try RequestRecord(line: line)
                raw.append(r)
                merged.add(r)
            }
        }
        let report = merged.build()

        var single = ReportBuilder()
        let one = Collected()
        Driver(configuration: plan(), sink: one.sink).run()
        for r in one.records { single.add(r) }
        let alone = single.build()

        // Counts: those of one run of the plan.
        #expect(report.requests == 90 && alone.requests == 90)
        #expect(report.responses == alone.responses && report.sent == alone.sent && report.errors == alone.errors)
        #expect(report.statusCounts == alone.statusCounts && report.statusCounts == [200: 90])
        #expect(report.tokens == alone.tokens)
        #expect(report.corrected?.count == alone.corrected?.count)
        // seq: the shards' sets are disjoint and together are one run's 0..<90.
        #expect(raw.map(\.seq).sorted() == Array(0..<90))
        #expect(one.records.map(\.seq).sorted() == Array(0..<90))

        // Percentiles: those of one histogram of every raw latency, and within the
        // histogram's precision (3 digits) of the exact ones.
        var h = ReportBuilder.histogram()
        for r in raw { if let l = r.latency { _ = h.record(ReportBuilder.us(l)) } }
        let sorted = raw.compactMap(\.latency).sorted()
        #expect(sorted.count == 90)
        for p in [50.0, 90, 99] {
            let fromReport = try #require(merged.percentile(p, of: .sent))
            #expect(fromReport == h.valueAtPercentile(p) * 1000, "p\(p)")
            let exact = sorted[min(sorted.count - 1, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1)]
            let error = abs(Double(fromReport) - Double(exact))
            #expect(error <= Double(exact) * 0.002 + 1000, "p\(p): report \(fromReport) ns, exact \(exact) ns")
        }
        #expect(report.uncorrected?.max == h.max * 1000)
    }
}

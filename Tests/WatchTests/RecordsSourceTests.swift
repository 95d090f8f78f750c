import Driver
import Foundation
import Testing
@testable import Watch
import Wire

/// `watch --records`: our own records files as request rows, named by file.
@Suite struct RecordsSourceTests {
    @Test func filesAreNamedByTheirNameAndNAMEWins() throws {
        let sources = try WatchSources.parse(admin: [], accessLog: [], metrics: [], records: ["out/shard-2.jsonl", "b=run.jsonl"])
        #expect(sources.records.map(\.replica) == ["shard-2", "b"])
        #expect(sources.records.map(\.location) == ["out/shard-2.jsonl", "run.jsonl"])
        #expect(throws: SourceError.self) { _ = try WatchSources.parse(admin: [], accessLog: [], metrics: [], records: ["-"]) }
        #expect(throws: SourceError.self) { _ = try WatchSources.parse(admin: [], accessLog: [], metrics: [], records: ["bad name=x.jsonl"]) }
        // Records alone are something to watch.
        #expect(throws: Never.self) { _ = try WatchSources.parse(admin: [], accessLog: [], metrics: [], records: ["x.jsonl"]) }
    }

    @Test func aRecordLineIsARequestRowAndGarbageIsNot() throws {
        var record = RequestRecord(seq: 3, intended: 1_000, sent: 2_000, method: "POST", url: "http://127.0.0.1:8080/http-429",
                                   model: "gpt-5", status: 200, latency: 12_000_000)
        record.provider = "openai-provider"
        record.attempts = [.init(provider: "http-429-provider", status: 429), .init(provider: "openai-provider", status: 200)]
        let row = try #require(RecordLine.request(ArraySlice(record.jsonLine.utf8)))
        #expect(row.status == 200 && row.provider == "openai-provider" && row.endpoint == "http://127.0.0.1:8080/http-429")
        #expect(row.latency == 0.012 && row.model == "gpt-5")
        #expect(row.attempts.map(\.provider) == ["http-429-provider", "openai-provider"])
        for garbage in ["", "{", "not json", #"{"seq":-1}"#, String(repeating: "[", count: 100_000)] {
            #expect(RecordLine.request(ArraySlice(garbage.utf8)) == nil, "\(garbage.prefix(20))")
        }
    }

    @Test func aGrowingRecordsFileIsFollowed() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("records-\(UUID()).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let seen = Seen()
        let engine = WatchEngine(sources: try WatchSources.parse(admin: [], accessLog: [], metrics: [], records: [path]), interval: 0.5) { event in
            switch event {
            case .request(let replica, _, let r): seen.add("\(replica) \(r.status ?? 0)")
            case .skipped(let replica, _, _): seen.add("\(replica) skipped")
            default: break
            }
        }
        engine.run()
        defer { engine.stop() }
        let name = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        var lines = ""
        for (i, status) in [200, 429, 200].enumerated() {
            lines += RequestRecord(seq: UInt64(i), intended: 0, method: "POST", url: "http://h/x", status: status).jsonLine + "\n"
        }
        lines += "garbage\n"
        try lines.write(toFile: path, atomically: false, encoding: .utf8)
        let deadline = Date().addingTimeInterval(10)
        while seen.all.count < 4 && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(seen.all == ["\(name) 200", "\(name) 429", "\(name) 200", "\(name) skipped"])
    }

    final class Seen: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [String] = []
        func add(_ s: String) { lock.lock(); items.append(s); lock.unlock() }
        var all: [String] { lock.lock(); defer { lock.unlock() }; return items }
    }
}

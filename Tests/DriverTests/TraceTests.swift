import Foundation
import Testing
@testable import Driver

@Suite(.serialized) struct DriverTraceTests {
    @Test("drive --trace: each request carries a new traceparent, and its record the trace id")
    func sendsTraceParentAndRecordsIt() throws {
        final class Seen: @unchecked Sendable {
            let lock = NSLock()
            var traceparents: [String?] = []
        }
        let seen = Seen()
        let server = try TestServer { req in
            seen.lock.lock()
            seen.traceparents.append(req.headers["traceparent"])
            seen.lock.unlock()
            return .init(body: "{\"model\":\"m\"}")
        }
        defer { server.stop() }
        // A traceparent given by the user is replaced, not sent twice.
        let mix = RequestMix([RequestSpec.chat(url: server.base + "/a", headers: ["traceparent: 00-11111111111111111111111111111111-2222222222222222-01"])])
        var config = DriverConfiguration(workload: .closedLoop(concurrency: 2), mix: mix, requestLimit: 12)
        config.trace = true
        let got = Collected()
        let driver = Driver(configuration: config, sink: got.sink)
        driver.run()
        let records = got.records
        #expect(records.count == 12 && records.allSatisfy { $0.status == 200 })
        seen.lock.lock()
        let sent = seen.traceparents.compactMap { $0 }
        seen.lock.unlock()
        #expect(sent.count == 12)
        let ids = sent.map { String($0.dropFirst(3).prefix(32)) }
        #expect(Set(ids).count == 12, "a new trace per request: \(ids)")
        #expect(sent.allSatisfy { $0.utf8.count == 55 && $0.hasPrefix("00-") && $0.hasSuffix("-01") })
        #expect(Set(records.compactMap(\.traceID)) == Set(ids))
        // The id survives the record file.
        let line = try #require(records.first?.jsonLine)
        #expect(line.contains("\"trace_id\":\"\(records[0].traceID!)\""))
        let back = try RequestRecord(json: JSONValue.parse(bytes: Array(line.utf8)))
        #expect(back.traceID == records[0].traceID)
    }

    @Test("without --trace nothing is added and records have no trace id")
    func offByDefault() throws {
        final class Seen: @unchecked Sendable {
            let lock = NSLock()
            var count = 0
        }
        let seen = Seen()
        let server = try TestServer { req in
            if req.headers["traceparent"] != nil { seen.lock.lock(); seen.count += 1; seen.lock.unlock() }
            return .init(body: "{}")
        }
        defer { server.stop() }
        let config = DriverConfiguration(workload: .closedLoop(concurrency: 1), mix: RequestMix([RequestSpec.chat(url: server.base)]), requestLimit: 3)
        let got = Collected()
        Driver(configuration: config, sink: got.sink).run()
        #expect(got.records.allSatisfy { $0.traceID == nil && !$0.jsonLine.contains("trace_id") })
        #expect(seen.count == 0)
    }

    @Test("a record's trace_id must be 32 lowercase hex digits", arguments: ["\"xyz\"", "\"4BF92F3577B34DA6A3CE929D0E0E4736\"", "12", "\"4bf92f3577b34da6a3ce929d0e0e47\""])
    func hostileTraceID(_ value: String) {
        let line = "{\"seq\":1,\"intended_offset_ns\":0,\"url\":\"http://x\",\"trace_id\":\(value)}"
        #expect(throws: RequestRecord.DecodeError.self) { try RequestRecord(json: JSONValue.parse(bytes: Array(line.utf8))) }
    }
}

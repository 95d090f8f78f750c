import Testing
import Wire
@testable import Gateway
@testable import Driver
import TUI

/// The gateway writes, the driver reads: every outcome the gateway's exchange records
/// (a status, or `connect`, `timeout`, `broken`, and `error` when neither) arrives intact.
@Suite struct GatewayDriverContract {
    @Test func everyAttemptTheGatewayRecordsReadsBackInTheDriver() {
        let tries = [
            AttemptRecord(provider: "http-429-provider", group: 0, status: 429, failure: nil),
            AttemptRecord(provider: "a", group: 0, status: nil, failure: "connect"),
            AttemptRecord(provider: "b", group: 1, status: nil, failure: "timeout"),
            AttemptRecord(provider: "c", group: 1, status: nil, failure: "broken"),
            AttemptRecord(provider: "d", group: 1, status: nil, failure: nil),
            AttemptRecord(provider: "openai-provider", group: 1, status: 200, failure: nil),
        ]
        let log = RequestLog(time: .init(timeIntervalSince1970: 0), method: "POST", path: "/", status: 200, duration: .zero,
                             attempts: tries)
        #expect(log.failoverHeader == "http-429-provider=429,a=connect,b=timeout,c=broken,d=error,openai-provider=200")
        let facts = ResponseFacts.extract(attemptsHeader: Substring(log.failoverHeader), body: [], isEventStream: false)
        #expect(facts.attempts?.map(\.provider) == tries.map(\.provider))
        #expect(facts.attempts?.map(\.outcome) == [.status(429), .connect, .timeout, .broken, .error, .status(200)])
        // The access log's `attempts` is the same text.
        #expect(log.jsonLine().contains(#""attempts":"http-429-provider=429,a=connect,b=timeout,c=broken,d=error,openai-provider=200""#))
    }

    @Test func accessLogAndRecordsEscapeStringsTheSame() {
        let hostile = "a\"b\\c\r\n\u{1}é"
        var line = JSONLine()
        line.add("k", hostile)
        var driver = ""
        JSONValue.writeString(hostile, into: &driver)
        #expect(line.finish() == "{\"k\":" + driver + "}")
    }

    /// `run --target`: the dashboard's model gets the driver's records; a timed-out try is a
    /// try of its provider with no response (it was dropped before, so it was never counted).
    @Test func theDashboardCountsATimedOutTry() {
        let facts = ResponseFacts.extract(attemptsHeader: "http-429-provider=429,openai-provider=timeout,backup=200",
                                          body: [], isEventStream: false)
        let record = RequestRecord(seq: 0, intended: 0, sent: 0, url: "http://gw/x", status: 200, latency: 1_000_000,
                                   provider: facts.provider, attempts: facts.attempts)
        let entry = Feed.entry(record, at: 1)
        #expect(entry.attempts == [AttemptEntry(provider: "http-429-provider", status: 429),
                                   AttemptEntry(provider: "openai-provider", status: nil, failure: "timeout"),
                                   AttemptEntry(provider: "backup", status: 200)])
        var model = LabModel(scenario: "s", gatewayURL: "http://gw", plan: "p", rate: 1, external: true)
        model.apply(.request(entry))
        #expect(model.providerCounts["openai-provider"]?.noResponse == 1)
        #expect(model.providerCounts["http-429-provider"]?.rateLimited == 1)
        #expect(model.providerCounts["backup"]?.ok == 1)
    }
}

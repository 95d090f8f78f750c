import Driver
import Foundation
import Gateway
import Upstreams

/// One parser fed hostile bytes. `run` must never trap; it returns a description when a
/// property the parser promises does not hold (the fuzzer then stops on it as a finding).
public struct FuzzTarget: Sendable {
    public let name: String
    public let summary: String
    public let run: @Sendable (_ bytes: [UInt8]) -> String?
}

/// Every fuzz target of the project, by name. `scripts/fuzz` runs them under libFuzzer;
/// the `FuzzTests` suite runs their committed corpus (`fuzz/corpus/NAME/`) in every test run.
public enum FuzzTargets {
    public static let all: [FuzzTarget] = [
        FuzzTarget(name: "rate-limit-hint", summary: "429 reset hints from header lines", run: rateLimitHint),
        FuzzTarget(name: "go-duration", summary: "Go/Gateway API durations", run: goDuration),
        FuzzTarget(name: "cel", summary: "the unhealthyCondition CEL subset", run: cel),
        FuzzTarget(name: "stand-in-behavior", summary: "stand-in behaviour text (admin API, Scenario, --stand-in)", run: standInBehavior),
        FuzzTarget(name: "mock-openai", summary: "the mock OpenAI's request parse and answer", run: mockOpenAI),
        FuzzTarget(name: "expectation", summary: "--expect expressions", run: expectation),
        FuzzTarget(name: "units", summary: "driver durations, rates and speeds", run: units),
        FuzzTarget(name: "plan-yaml", summary: "drive --plan files", run: planYAML),
        FuzzTarget(name: "lab-yaml", summary: "lab files: manifests and the Scenario", run: labYAML),
        FuzzTarget(name: "record-line", summary: "one line of a --record file", run: recordLine),
        FuzzTarget(name: "replay-line", summary: "one line of a replay file (records or agentgateway access log)", run: replayLine),
        FuzzTarget(name: "attempts-header", summary: "x-failover-attempts as the driver reads it", run: attemptsHeader),
    ]

    public static func named(_ name: String) -> FuzzTarget? {
        all.first { $0.name == name }
    }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    // MARK: Gateway

    /// Lines `name: value`; the first line, when it is a number, is "now" in Unix seconds.
    static func rateLimitHint(_ bytes: [UInt8]) -> String? {
        var headers: [(String, String)] = []
        for line in text(bytes).split(separator: "\n").prefix(64) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
        }
        guard let delay = RateLimitHint.resetDelay(headers: headers, now: Date(timeIntervalSince1970: 1_790_000_000)) else { return nil }
        if delay < .zero { return "negative reset delay \(delay) from \(headers)" }
        return nil
    }

    static func goDuration(_ bytes: [UInt8]) -> String? {
        guard let d = try? GoDuration.parse(text(bytes)) else { return nil }
        if d < .zero { return "negative duration \(d) from \(text(bytes).debugDescription)" }
        return nil
    }

    static func cel(_ bytes: [UInt8]) -> String? {
        guard let condition = try? UnhealthyCondition.parse(text(bytes)) else { return nil }
        for code in [0, 200, 429, 500, 503, 599, Int.max, Int.min] { _ = condition.evaluate(code: code) }
        // What it prints must read back as the same condition.
        guard let again = try? UnhealthyCondition.parse(condition.description) else {
            return "\(condition.description.debugDescription) does not parse again"
        }
        if again != condition { return "\(condition.description.debugDescription) reads back as \(again)" }
        return nil
    }

    // MARK: Upstreams

    static func standInBehavior(_ bytes: [UInt8]) -> String? {
        guard let behavior = try? StandInBehavior.parse(text(bytes)) else { return nil }
        _ = behavior.description
        _ = behavior.shortName
        return nil
    }

    static func mockOpenAI(_ bytes: [UInt8]) -> String? {
        let prompt = text(bytes)
        _ = MockOpenAI.reply(to: prompt)
        _ = MockOpenAI.tokenCount(prompt)
        if let request = MockOpenAI.parse(Data(bytes)) {
            let body = MockOpenAI.completion(for: request, id: "chatcmpl-fuzz", created: 0)
            if (try? JSONSerialization.jsonObject(with: Data(body.utf8))) == nil {
                return "the completion is not JSON: \(body.prefix(200))"
            }
            _ = MockOpenAI.streamEvents(for: request, id: "chatcmpl-fuzz", created: 0)
        }
        return nil
    }

    // MARK: Driver

    static func expectation(_ bytes: [UInt8]) -> String? {
        _ = try? Expectation(parsing: text(bytes))
        return nil
    }

    static func units(_ bytes: [UInt8]) -> String? {
        let s = text(bytes)
        _ = Units.parseDuration(s)
        if let r = Units.parseRate(s), !(r.isFinite && r >= 0) { return "rate \(r) from \(s.debugDescription)" }
        if let v = Units.parseSpeed(s), !(v.isFinite && v > 0) { return "speed \(v) from \(s.debugDescription)" }
        return nil
    }

    static func planYAML(_ bytes: [UInt8]) -> String? {
        _ = try? PlanFile.parse(text(bytes), path: "fuzz.yaml")
        return nil
    }

    static func labYAML(_ bytes: [UInt8]) -> String? {
        _ = try? ManifestLoader.load(sources: [(file: "fuzz.yaml", text: text(bytes))])
        return nil
    }

    static func recordLine(_ bytes: [UInt8]) -> String? {
        _ = try? RequestRecord(line: text(bytes))
        return nil
    }

    static func replayLine(_ bytes: [UInt8]) -> String? {
        guard let json = try? JSONValue.parse(bytes: bytes) else { return nil }
        guard case .entry(let entry) = ReplayParser.item(json, line: 1) else { return nil }
        let builder = ReplayRequestBuilder(target: "http://127.0.0.1:9")
        _ = builder.request(for: entry)
        return nil
    }

    static func attemptsHeader(_ bytes: [UInt8]) -> String? {
        _ = Attempt.parseHeader(Substring(text(bytes)))
        return nil
    }
}

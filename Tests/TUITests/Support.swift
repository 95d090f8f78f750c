import Foundation
import Testing
@testable import TUI

/// Snapshot files live next to the tests; `RECORD_SNAPSHOTS=1` writes them anew.
enum Snapshot {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Snapshots")

    static func render(_ screen: Screen) -> String {
        "--- text\n" + screen.text + "\n--- roles\n" + screen.roleLayer + "\n--- attributes\n" + screen.attributeLayer + "\n"
    }

    /// `RECORD_SNAPSHOTS=1` (or `UPDATE_SNAPSHOTS=1`) writes the files instead of comparing.
    static var recording: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["RECORD_SNAPSHOTS"] != nil || env["UPDATE_SNAPSHOTS"] != nil
    }

    static func assert(_ screen: Screen, named name: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let file = directory.appendingPathComponent(name + ".txt")
        let actual = render(screen)
        if recording {
            try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try? actual.write(to: file, atomically: true, encoding: .utf8)
            return
        }
        guard let expected = try? String(contentsOf: file, encoding: .utf8) else {
            Issue.record("no snapshot \(file.path); run with RECORD_SNAPSHOTS=1 to record it", sourceLocation: sourceLocation)
            return
        }
        if let detail = difference(expected: expected, actual: actual) {
            Issue.record("snapshot \(name) differs; \(detail)\nre-record with RECORD_SNAPSHOTS=1 if the change is intended", sourceLocation: sourceLocation)
        }
    }

    /// nil when equal, else where they first differ.
    static func difference(expected: String, actual: String) -> String? {
        guard expected != actual else { return nil }
        let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
        let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
        let first = zip(e, a).enumerated().first { $0.element.0 != $0.element.1 }
        return first.map { "first difference at line \($0.offset + 1):\n  expected: \($0.element.0)\n  actual:   \($0.element.1)" } ?? "line counts differ (\(e.count) vs \(a.count))"
    }
}

/// The seed lab as the dashboard sees it, stage by stage, on fake time.
enum SeedLab {
    static func start() -> LabModel {
        LabModel(scenario: "http-429-lab", gatewayURL: "http://127.0.0.1:8080/http-429", plan: "open loop", rate: 2, groups: [
            [ProviderStatus(name: "http-429-provider", group: 0, standIn: "http-429", fault: "429")],
            [ProviderStatus(name: "openai-provider", group: 1, standIn: "openai", fault: "healthy")],
        ])
    }

    static func first429(_ m: LabModel) -> LabModel {
        var m = m
        m.apply(.request(RequestEntry(at: 0.1, status: 429, provider: "http-429-provider", group: 0, latency: 0.002,
                                      attempts: [AttemptEntry(provider: "http-429-provider", status: 429)])))
        m.apply(.health(HealthEvent(at: 0.1, provider: "http-429-provider", group: 0, kind: .evicted(duration: 60, reason: "429 rate", times: 1))))
        m.apply(.tick(now: 0.3))
        return m
    }

    static func ok(at t: Double) -> LabEvent {
        .request(RequestEntry(at: t, status: 200, provider: "openai-provider", group: 1, latency: 0.0014, tokens: 15,
                              attempts: [AttemptEntry(provider: "openai-provider", status: 200)]))
    }

    static func afterFailover(_ m: LabModel) -> LabModel {
        var m = first429(m)
        for i in 1...12 { m.apply(ok(at: 0.1 + Double(i) * 0.5)) }
        m.apply(.tick(now: 6.4))
        return m
    }

    static func allEvicted(_ m: LabModel) -> LabModel {
        var m = afterFailover(m)
        m.apply(.fault(standIn: "openai", behavior: "5xx", at: 6.5))
        m.apply(.request(RequestEntry(at: 6.6, status: 503, provider: "openai-provider", group: 1, latency: 0.001,
                                      attempts: [AttemptEntry(provider: "openai-provider", status: 503)])))
        m.apply(.health(HealthEvent(at: 6.6, provider: "openai-provider", group: 1, kind: .evicted(duration: 3, reason: "5xx", times: 1))))
        m.apply(.request(RequestEntry(at: 7.0, status: 429, provider: "http-429-provider", group: 0, latency: 0.002,
                                      attempts: [AttemptEntry(provider: "http-429-provider", status: 429)])))
        m.apply(.tick(now: 7.2))
        return m
    }
}

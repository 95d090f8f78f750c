import Driver
import Foundation

/// How `failover-lab test` writes its results: text lines as steps end, JUnit XML for CI,
/// and JSON. The dashboard's report can use the same step lines.
public enum LabTestReport {
    /// `ok      2/5 Group 2 answers  (3 requests in 1.00s)`, then, for a failed step, one line
    /// per expectation that did not hold with what was measured, and what the step saw.
    public static func stepLines(_ v: StepVerdict, of count: Int) -> [String] {
        var lines = ["  " + (v.passed ? "ok      " : "FAILED  ") + "\(v.step + 1)/\(count) \(v.name)  (\(requestCount(v.requests)) in \(seconds(v.end &- v.start))\(endingNote(v)))"]
        guard !v.passed else { return lines }
        for e in v.verdicts where !e.holds {
            lines.append("          \(e.isUntil ? "until" : "expect") \(e.expectation.text): measured \(e.measured)")
        }
        lines.append("          saw " + observed(v))
        return lines
    }

    /// `2 requests: 200 x1, 429 x1; served by openai-provider x1`.
    public static func observed(_ v: StepVerdict) -> String {
        var text = requestCount(v.requests)
        let statuses = v.statusCounts.sorted { $0.key < $1.key }.map { "\($0.key == 0 ? "no response" : String($0.key)) x\($0.value)" }
        if !statuses.isEmpty { text += ": " + statuses.joined(separator: ", ") }
        let providers = v.providers.sorted { $0.key < $1.key }.map { "\($0.key) x\($0.value)" }
        if !providers.isEmpty { text += "; served by " + providers.joined(separator: ", ") }
        return text
    }

    /// The closing line of one lab.
    public static func labSummary(_ r: LabTestResult) -> String {
        if let error = r.error { return "ERROR   \(r.lab): \(error)" }
        let held = r.steps.filter(\.passed).count
        return (r.passed ? "PASS    " : "FAIL    ") + "\(r.lab): \(held) of \(r.stepCount) steps held in \(Units.fixed(r.seconds, 1))s"
    }

    /// The closing line of the whole run.
    public static func summary(_ results: [LabTestResult], seconds: Double) -> String {
        let failed = results.filter { !$0.passed }
        let steps = results.reduce(0) { $0 + $1.stepCount }
        let labs = results.count == 1 ? "1 lab" : "\(results.count) labs"
        if failed.isEmpty { return "all \(labs) passed (\(steps) steps) in \(Units.fixed(seconds, 1))s" }
        return "\(failed.count) of \(labs) failed: \(failed.map(\.lab).joined(separator: ", ")) (\(Units.fixed(seconds, 1))s)"
    }

    static func requestCount(_ n: Int) -> String { n == 1 ? "1 request" : "\(n) requests" }

    static func seconds(_ ns: Nanos) -> String { Units.fixed(Double(ns) / 1e9, 2) + "s" }

    static func endingNote(_ v: StepVerdict) -> String {
        switch v.ending {
        case .duration, .until: return ""
        case .timeout: return ", until timed out"
        case .next: return ", cut short"
        }
    }

    // MARK: JUnit

    /// JUnit XML: one `testsuite` per lab, one `testcase` per step, a `failure` per step whose
    /// expectations did not all hold, naming each and the measured value.
    public static func junit(_ results: [LabTestResult], seconds: Double) -> String {
        let tests = results.reduce(0) { $0 + max(1, $1.stepCount) }
        let failures = results.reduce(0) { $0 + $1.steps.filter { !$0.passed }.count }
        let errors = results.filter { $0.error != nil }.count
        var x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        x += "<testsuites name=\"failover-lab test\" tests=\"\(tests)\" failures=\"\(failures)\" errors=\"\(errors)\" time=\"\(Units.fixed(seconds, 3))\">\n"
        for r in results {
            let suiteFailures = r.steps.filter { !$0.passed }.count
            x += "  <testsuite name=\"\(escape(r.lab))\" tests=\"\(max(1, r.stepCount))\" failures=\"\(suiteFailures)\" errors=\"\(r.error == nil ? 0 : 1)\" time=\"\(Units.fixed(r.seconds, 3))\" file=\"\(escape(r.file))\">\n"
            for v in r.steps {
                let location = v.step < r.stepLocations.count ? r.stepLocations[v.step] : nil
                x += "    <testcase classname=\"\(escape(r.lab))\" name=\"\(escape("\(v.step + 1). \(v.name)"))\" time=\"\(Units.fixed(Double(v.end &- v.start) / 1e9, 3))\""
                if let location, location.line > 0 { x += " file=\"\(escape(location.file))\" line=\"\(location.line)\"" }
                if v.passed {
                    x += "/>\n"
                    continue
                }
                x += ">\n"
                let failed = v.verdicts.filter { !$0.holds }
                let message = failed.map { "\($0.expectation.text) (measured \($0.measured))" }.joined(separator: "; ")
                var body = failed.map { "\($0.isUntil ? "until" : "expect") \($0.expectation.text): measured \($0.measured)" }
                body.append("saw " + observed(v))
                if v.ending == .timeout { body.append("the step's until did not hold before its timeout") }
                x += "      <failure type=\"expectation\" message=\"\(escape(message))\">\(escape(body.joined(separator: "\n")))</failure>\n"
                x += "    </testcase>\n"
            }
            if let error = r.error {
                x += "    <testcase classname=\"\(escape(r.lab))\" name=\"start\" time=\"0\">\n"
                x += "      <error message=\"\(escape(error))\"/>\n"
                x += "    </testcase>\n"
            }
            x += "  </testsuite>\n"
        }
        x += "</testsuites>\n"
        return x
    }

    /// Text for an XML attribute or element: the Driver's one escaper (XML 1.0-safe).
    static func escape(_ text: String) -> String { htmlEscape(text) }

    // MARK: JSON

    /// The same as JSON: labs, their steps, each expectation with whether it held and the figure.
    public static func json(_ results: [LabTestResult], seconds: Double) -> JSONValue {
        .object([
            ("passed", .bool(results.allSatisfy(\.passed))),
            ("seconds", .number(rounded(seconds))),
            ("labs", .array(results.map { r in
                var members: [(String, JSONValue)] = [
                    ("lab", .string(r.lab)),
                    ("file", .string(r.file)),
                    ("passed", .bool(r.passed)),
                    ("seconds", .number(rounded(r.seconds))),
                ]
                if let error = r.error { members.append(("error", .string(error))) }
                members.append(("steps", .array(r.steps.map { v in
                    let location = v.step < r.stepLocations.count ? r.stepLocations[v.step] : nil
                    return .object([
                        ("step", .number(Double(v.step + 1))),
                        ("name", .string(v.name)),
                        ("line", location.map { .number(Double($0.line)) } ?? .null),
                        ("passed", .bool(v.passed)),
                        ("ended", .string(v.ending.rawValue)),
                        ("seconds", .number(rounded(Double(v.end &- v.start) / 1e9))),
                        ("requests", .number(Double(v.requests))),
                        ("status", .object(v.statusCounts.sorted { $0.key < $1.key }.map { (String($0.key), .number(Double($0.value))) })),
                        ("providers", .object(v.providers.sorted { $0.key < $1.key }.map { ($0.key, .number(Double($0.value))) })),
                        ("expectations", .array(v.verdicts.map { e in
                            .object([("expect", .string(e.expectation.text)), ("until", .bool(e.isUntil)),
                                     ("holds", .bool(e.holds)), ("measured", .string(e.measured))])
                        })),
                    ])
                })))
                return .object(members)
            })),
        ])
    }

    static func rounded(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
}

import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

extension OverSockets {
    /// `failover-lab test` as CI runs it: the real binary, real labs on loopback.
    @Suite("failover-lab test", .serialized)
    struct LabTestCommandTests {
        /// In the order `test` runs them: the seed lab, then the others by name.
        static let bundled = ["http-429-lab", "advanced-failover-lab", "health-policy-lab", "retries-lab"]

        static func temporary(_ name: String) -> String {
            FileManager.default.temporaryDirectory.appendingPathComponent("fl-test-\(UUID().uuidString)-\(name)").path
        }

        /// The seed lab's text with `replacing` swapped for `with` (which must be there once).
        static func seedCopy(replacing old: String, with new: String) throws -> String {
            let text = try String(contentsOfFile: scenariosDirectory + "/http-429-lab.yaml", encoding: .utf8)
            #expect(text.components(separatedBy: old).count == 2, "the seed lab no longer holds \(old)")
            return text.replacingOccurrences(of: old, with: new)
        }

        /// The JUnit file as an XML document, so a malformed file fails here.
        static func junitDocument(_ path: String) throws -> XMLDocument {
            try XMLDocument(contentsOf: URL(fileURLWithPath: path), options: [])
        }

        // Its wall time (the issue's 30 s) is a figure for the closing note, not a test: the
        // summary line prints it.
        @Test("every bundled lab passes, headless; the JUnit file has a suite per lab and a case per step")
        func everyBundledLab() throws {
            let junit = Self.temporary("all.xml")
            defer { try? FileManager.default.removeItem(atPath: junit) }
            let result = try CommandLineTests.run(["test", "--junit", junit])
            #expect(result.status == 0, "stdout:\n\(result.stdout)\nstderr:\n\(result.stderr)")
            for lab in Self.bundled {
                #expect(result.stdout.contains("PASS    \(lab): "), "\(lab) in:\n\(result.stdout)")
            }
            #expect(!result.stdout.contains("FAILED"))
            #expect(result.stdout.contains("all 4 labs passed"))
            let document = try Self.junitDocument(junit)
            let suites = try document.nodes(forXPath: "/testsuites/testsuite")
            #expect(suites.compactMap { ($0 as? XMLElement)?.attribute(forName: "name")?.stringValue } == Self.bundled)
            let cases = try document.nodes(forXPath: "//testcase")
            #expect(cases.count >= 16)
            #expect(try document.nodes(forXPath: "//failure").isEmpty)
            let seedCases = try document.nodes(forXPath: "/testsuites/testsuite[@name='http-429-lab']/testcase")
            #expect(seedCases.first.flatMap { ($0 as? XMLElement)?.attribute(forName: "name")?.stringValue } == "1. Group 1 answers 429")
        }

        @Test("test --record writes every request of the steps, as drive does: the seed lab's 10, which report reads")
        func recordsTheSteps() throws {
            let records = Self.temporary("steps.jsonl")
            defer { try? FileManager.default.removeItem(atPath: records) }
            let result = try CommandLineTests.run(["test", "http-429-lab", "--record", records])
            #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
            // The seed lab's steps send 1 + 3 + 1 + 3 + 2 requests and it has no traffic.
            let lines = try String(contentsOfFile: records, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 10)
            let report = try CommandLineTests.run(["report", records, "--json"])
            #expect(report.status == 0)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [String: Any])
            #expect(json["requests"] as? Int == 10)
        }

        @Test("a lab with one impossible expectation exits 1, prints the measured figure, and its JUnit and JSON name that step and expectation")
        func impossibleExpectation() throws {
            let lab = Self.temporary("impossible.yaml")
            let junit = Self.temporary("impossible.xml")
            defer {
                try? FileManager.default.removeItem(atPath: lab)
                try? FileManager.default.removeItem(atPath: junit)
            }
            try Self.seedCopy(replacing: #"expect: ["status[200] == 3", "provider[openai-provider] == 3", "status[429] == 0"]"#,
                              with: #"expect: ["status[200] == 3", "provider[openai-provider] == 3", "status[200] == 7"]"#)
                .write(toFile: lab, atomically: true, encoding: .utf8)
            let text = try CommandLineTests.run(["test", lab, "--junit", junit])
            #expect(text.status == 1, "stdout:\n\(text.stdout)\nstderr:\n\(text.stderr)")
            #expect(text.stdout.contains("FAILED  2/5 Group 2 serves while group 1 is evicted"), "\(text.stdout)")
            #expect(text.stdout.contains("expect status[200] == 7: measured 3"), "\(text.stdout)")
            #expect(text.stdout.contains("ok      1/5 Group 1 answers 429"), "\(text.stdout)")
            #expect(text.stdout.contains("FAIL    http-429-lab: 4 of 5 steps held"), "\(text.stdout)")

            let document = try Self.junitDocument(junit)
            let failures = try document.nodes(forXPath: "//testcase[failure]")
            #expect(failures.count == 1)
            let failed = try #require(failures.first as? XMLElement)
            #expect(failed.attribute(forName: "name")?.stringValue == "2. Group 2 serves while group 1 is evicted")
            #expect(failed.attribute(forName: "file")?.stringValue == lab)
            let failure = try #require(failed.elements(forName: "failure").first)
            #expect(failure.attribute(forName: "message")?.stringValue == "status[200] == 7 (measured 3)")
            #expect(failure.stringValue?.contains("saw 3 requests: 200 x3; served by openai-provider x3") == true, "\(failure.stringValue ?? "")")

            let json = try CommandLineTests.run(["test", lab, "--json"])
            #expect(json.status == 1)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], "\(json.stdout)")
            #expect(object["passed"] as? Bool == false)
            let labs = try #require(object["labs"] as? [[String: Any]])
            let steps = try #require(labs.first?["steps"] as? [[String: Any]])
            #expect(steps.count == 5)
            let second = steps[1]
            #expect(second["passed"] as? Bool == false)
            let expectations = try #require(second["expectations"] as? [[String: Any]])
            let impossible = try #require(expectations.first { $0["expect"] as? String == "status[200] == 7" })
            #expect(impossible["holds"] as? Bool == false)
            #expect(impossible["measured"] as? String == "3")
        }

        @Test("a broken lab file exits 2 naming file:line, before any lab runs")
        func brokenFile() throws {
            let lab = Self.temporary("broken.yaml")
            defer { try? FileManager.default.removeItem(atPath: lab) }
            let text = try Self.seedCopy(replacing: #"until: "status[429] >= 1""#, with: #"until: "status[429] >>= 1""#)
            try text.write(toFile: lab, atomically: true, encoding: .utf8)
            let line = try #require(text.components(separatedBy: "\n").firstIndex { $0.contains(">>=") }) + 1
            // The good bundled lab is named first: it must not run either.
            let result = try CommandLineTests.run(["test", "http-429-lab", lab])
            #expect(result.status == 2, "stdout:\n\(result.stdout)\nstderr:\n\(result.stderr)")
            #expect(result.stderr.contains("\(lab):\(line): error: step Group 1 answers 429: until 'status[429] >>= 1'"), "\(result.stderr)")
            #expect(!result.stdout.contains("PASS"), "\(result.stdout)")

            let check = try CommandLineTests.run(["check", lab])
            #expect(check.status == 2)
            #expect(check.stderr.contains("\(lab):\(line):"), "\(check.stderr)")
            // And on a good lab, check lists the steps it understood.
            let good = try CommandLineTests.run(["check", "http-429-lab"])
            #expect(good.status == 0)
            #expect(good.stdout.contains("step 3 The eviction ends; the probe gets 429 again ("), "\(good.stdout)")
            #expect(good.stdout.contains("return http-429-provider; send 1; for 1s; expect status[429] == 1"), "\(good.stdout)")
        }
    }
}

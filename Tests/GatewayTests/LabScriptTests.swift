import Driver
import Foundation
import Gateway
import Lab
import Testing
import Upstreams

/// A Scenario's `traffic` and `steps`: every field, and each mistake with its file:line.
@Suite("Lab scripts")
struct LabScriptTests {
    /// A lab whose Scenario ends with `spec:` content at two spaces; steps follow at its end.
    static let head = """
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: r, namespace: ns}
    spec:
      rules:
        - matches: [{path: {type: PathPrefix, value: /lab}}]
          backendRefs: [{name: b, kind: AgentgatewayBackend}]
    ---
    apiVersion: agentgateway.dev/v1alpha1
    kind: AgentgatewayBackend
    metadata: {name: b, namespace: ns}
    spec:
      ai:
        groups:
          - providers:
              - {name: first, openai: {model: m}, host: one.example, port: 80}
          - providers:
              - {name: second, openai: {model: m}, host: two.example, port: 80}
    ---
    apiVersion: failover-lab.dev/v1alpha1
    kind: Scenario
    metadata: {name: scripted}
    spec:
      standIns:
        - {name: one, kind: http-429, answers: "one.example:80"}
        - {name: two, kind: mock-openai, answers: "two.example:80"}

    """
    /// The first line after `head` (1-based).
    static let firstLine = head.split(separator: "\n", omittingEmptySubsequences: false).count

    static func load(_ tail: String, file: String = "lab.yaml") throws -> (LabConfig, LabScript) {
        let config = try ManifestLoader.load(sources: [(file, head + tail)], checks: LabScript.diagnostics)
        return (config, try LabScript.compile(config))
    }

    /// The errors loading `tail` gives, as `file:line: message` lines.
    static func errors(_ tail: String) -> [ConfigDiagnostic] {
        do {
            _ = try load(tail)
            return []
        } catch let errors as ConfigErrors {
            return errors.diagnostics
        } catch {
            return [ConfigDiagnostic(severity: .error, location: SourceLocation(file: "?", line: -1), message: "\(error)")]
        }
    }

    @Test("every step field is read: name, say, set, send, return, for, until with timeout, expect")
    func everyField() throws {
        let (config, script) = try Self.load("""
          traffic:
            phases:
              - constant: 5/s
            request: {model: gpt-4o-mini, stream: true}
          steps:
            - name: First
              say: >-
                Narration for the audience.
              set: {one: "429 retry-after=7", two: "503 50%"}
              send: 3
              return: [first, second]
              for: 1500ms
              expect: ["status[429] == 1", "provider[second] >= 0.5"]
            - name: Second
              until: "provider[second] >= 2"
              timeout: 4s
              expect: "p99 < 50ms"
            - until: "requests >= 1"
        """)
        #expect(config.warnings.isEmpty, "\(config.warnings)")
        #expect(script.steps.count == 3)
        let first = script.steps[0]
        #expect(first.name == "First")
        #expect(first.say == "Narration for the audience.")
        #expect(first.set.map(\.standIn) == ["one", "two"])
        #expect(first.set.map(\.behavior) == [.always429(retryAfter: 7), .serverErrors(status: 503, share: 0.5)])
        #expect(first.send == 3)
        #expect(first.returns == ["first", "second"])
        guard case .duration(let d) = first.end else { Issue.record("for: gave \(first.end)"); return }
        #expect(d == 1_500_000_000)
        #expect(first.expect.map(\.text) == ["status[429] == 1", "provider[second] >= 0.5"])
        #expect(first.expect[1].value == .share(0.5))
        #expect(first.location.line == Self.firstLine + 5)
        let second = script.steps[1]
        guard case .until(let until, let timeout) = second.end else { Issue.record("until: gave \(second.end)"); return }
        #expect(until.text == "provider[second] >= 2")
        #expect(timeout == 4_000_000_000)
        #expect(second.expect.map(\.text) == ["p99 < 50ms"])
        #expect(second.send == 0 && second.set.isEmpty && second.returns.isEmpty && second.say == nil)
        // No name: its place; no timeout: the default.
        #expect(script.steps[2].name == "step 3")
        guard case .until(_, let defaultTimeout) = script.steps[2].end else { Issue.record("until: gave \(script.steps[2].end)"); return }
        #expect(defaultTimeout == 30_000_000_000)
        let traffic = try #require(script.traffic)
        #expect(traffic.phases == [Phase(.constant(rate: 5))])
        #expect(traffic.model == "gpt-4o-mini")
        #expect(traffic.stream == true)
        #expect(traffic.targets.isEmpty)
    }

    @Test("a Scenario without steps or traffic reads as before")
    func noScript() throws {
        let (_, script) = try Self.load("")
        #expect(script.steps.isEmpty)
        #expect(script.traffic == nil)
    }

    @Test("each mistake is an error with its file:line", arguments: [
        // (the tail, the line offset of the error from the first tail line, words the message holds)
        ("  steps:\n    - name: a\n      for: 1s\n      colour: red\n", 3, "unknown field spec.steps[0].colour"),
        ("  steps:\n    - name: a\n      for: 1 second\n", 2, "invalid duration"),
        ("  steps:\n    - name: a\n      for: 2h\n", 2, "at most 1h"),
        ("  steps:\n    - name: a\n      until: \"requests >= 1\"\n      timeout: soon\n", 3, "invalid duration"),
        ("  steps:\n    - name: a\n      for: 1s\n      timeout: 2s\n", 3, "timeout goes with until"),
        ("  steps:\n    - name: a\n      for: 1s\n      until: \"requests >= 1\"\n", 3, "not both"),
        ("  steps:\n    - name: a\n      send: 1\n", 1, "needs for: DURATION or until"),
        ("  steps:\n    - name: a\n      for: 1s\n      set: {three: healthy}\n", 3, "no stand-in named three"),
        ("  steps:\n    - name: a\n      for: 1s\n      set: {one: sometimes}\n", 3, "invalid stand-in behavior"),
        ("  steps:\n    - name: a\n      for: 1s\n      return: [first, third]\n", 3, "no provider named third"),
        ("  steps:\n    - name: a\n      for: 1s\n      expect:\n        - \"status[200] == 1\"\n        - \"teapots > 3\"\n", 5, "unknown metric 'teapots'"),
        ("  steps:\n    - name: a\n      until: \"status[200] >> 1\"\n", 2, "step a: until"),
        ("  steps:\n    - name: a\n      for: 1s\n      expect: [\"provider[thrid] == 1\"]\n", 3, "no provider named thrid"),
        ("  steps:\n    - name: a\n      for: 1s\n      send: -2\n", 3, "send must be between 0 and 10000"),
        ("  steps:\n    - name: a\n      for: 1s\n      send: lots\n", 3, "must be a whole number"),
        ("  steps: {name: a}\n", 0, "spec.steps must be a list"),
        ("  traffic:\n    phases:\n      - constant: fast\n", 2, "spec.traffic: constant"),
        ("  traffic:\n    colour: red\n", 1, "unknown key 'colour'"),
        ("  traffic:\n    request: {model: m}\n", 1, "say how to send"),
    ] as [(String, Int, String)])
    func errors(_ tail: String, offset: Int, words: String) {
        let found = Self.errors(tail)
        #expect(found.contains { $0.location.file == "lab.yaml" && $0.location.line == Self.firstLine + offset && $0.message.contains(words) },
                "expected lab.yaml:\(Self.firstLine + offset) with '\(words)', got \(found.map(\.description))")
    }

    @Test("all of a file's step errors are reported together, before anything starts")
    func allErrorsAtOnce() {
        let found = Self.errors("""
          steps:
            - name: a
              for: 1s
              set: {one: sometimes}
            - name: b
              for: 1s
              expect: ["nothing"]
            - name: c
              for: 1s
              return: [nobody]
            - name: d
              for: soon
              expect: ["status[200] = = 1"]
        """)
        #expect(Set(found.map(\.location.line)) == [Self.firstLine + 3, Self.firstLine + 6, Self.firstLine + 9,
                                                   Self.firstLine + 11, Self.firstLine + 12],
                "\(found.map(\.description))")
    }

    @Test("every bundled lab has steps that read without warnings")
    func bundledLabs() throws {
        for name in ["http-429-lab", "health-policy-lab", "retries-lab", "advanced-failover-lab"] {
            let config = try LabFiles.load(files: [scenariosDirectory + "/\(name).yaml"])
            #expect(config.warnings.isEmpty, "\(name): \(config.warnings)")
            let script = try LabScript.compile(config)
            #expect(script.steps.count >= 4, "\(name)")
            #expect(script.steps.allSatisfy { !$0.expect.isEmpty && $0.say != nil }, "\(name)")
        }
    }
}

import Driver
import Foundation
import Gateway
import Upstreams

/// A Scenario's `traffic` and `steps`, read with the grammars they borrow: `drive --plan`'s
/// plan reader, `--expect`'s expectations and the admin API's stand-in behaviours. The
/// gateway's loader checks a step's structure and names; this checks the texts it kept, so
/// each grammar has one implementation and every error still names file:line.
public struct LabScript: Sendable {
    public struct Step: Sendable {
        public enum End: Sendable {
            case duration(Nanos)
            case until(Expectation, timeout: Nanos)
        }

        public var name: String
        public var say: String?
        /// Stand-in name and the behaviour it gets at the step's start, in file order.
        public var set: [(standIn: String, behavior: StandInBehavior)]
        public var send: Int
        /// Providers whose eviction ends at the step's start.
        public var returns: [String]
        public var end: End
        public var expect: [Expectation]
        public var location: SourceLocation

        public init(name: String, say: String? = nil, set: [(standIn: String, behavior: StandInBehavior)] = [], send: Int = 0,
                    returns: [String] = [], end: End, expect: [Expectation] = [], location: SourceLocation = SourceLocation(file: "", line: 0)) {
            self.name = name
            self.say = say
            self.set = set
            self.send = send
            self.returns = returns
            self.end = end
            self.expect = expect
            self.location = location
        }
    }

    public var steps: [Step]
    /// `spec.traffic`, read as a plan file; its targets may be paths on the lab's gateway.
    public var traffic: PlanFile?

    public init(steps: [Step], traffic: PlanFile? = nil) {
        self.steps = steps
        self.traffic = traffic
    }

    /// The script of `config`'s Scenario (empty without one), or the errors with file:line.
    public static func compile(_ config: LabConfig) throws(ConfigErrors) -> LabScript {
        let (script, problems) = read(config)
        if !problems.isEmpty { throw ConfigErrors(diagnostics: problems) }
        return script
    }

    /// The problems `compile` would throw; for `ManifestLoader.load(files:checks:)`.
    public static func diagnostics(_ config: LabConfig) -> [ConfigDiagnostic] {
        read(config).problems
    }

    static func read(_ config: LabConfig) -> (script: LabScript, problems: [ConfigDiagnostic]) {
        var problems: [ConfigDiagnostic] = []
        func report(_ location: SourceLocation, _ message: String) {
            problems.append(ConfigDiagnostic(severity: .error, location: location, message: message))
        }
        guard let scenario = config.scenario else { return (LabScript(steps: []), []) }
        // The stand-ins' own `behavior` texts are the same grammar; report them here too.
        problems += StandInFleet.validate(scenario.standIns)
        let providers = Set(config.backends.flatMap { $0.groups.joined().map(\.name) })
        func expectation(_ text: SourcedText, step: String, field: String) -> Expectation? {
            do {
                let parsed = try Expectation(parsing: text.text)
                // A misspelt provider would measure 0 and pass or fail for the wrong reason.
                if case .provider(let name) = parsed.metric, !providers.contains(name) {
                    report(text.location, "step \(step): \(field) '\(text.text)': no provider named \(name); the lab's providers: \(providers.sorted().joined(separator: ", "))")
                    return nil
                }
                return parsed
            } catch {
                // The parser's message begins with the `--expect` flag's name; here it is a field.
                let message = error.description.replacingOccurrences(of: "--expect '\(text.text)': ", with: "")
                report(text.location, "step \(step): \(field) '\(text.text)': \(message)")
                return nil
            }
        }
        var steps: [Step] = []
        for step in scenario.steps {
            var ok = true
            var set: [(standIn: String, behavior: StandInBehavior)] = []
            for setting in step.set {
                do {
                    set.append((setting.standIn, try StandInBehavior.parse(setting.behavior.text)))
                } catch {
                    report(setting.behavior.location, "step \(step.name): set \(setting.standIn): \(error)")
                    ok = false
                }
            }
            var expect: [Expectation] = []
            for text in step.expect {
                if let e = expectation(text, step: step.name, field: "expect") { expect.append(e) } else { ok = false }
            }
            let end: Step.End?
            switch step.end {
            case .duration(let d):
                end = .duration(nanos(d))
            case .until(let text, let timeout):
                end = expectation(text, step: step.name, field: "until").map { .until($0, timeout: nanos(timeout)) }
            }
            guard ok, let end else { continue }
            steps.append(Step(name: step.name, say: step.say, set: set, send: step.send, returns: step.returns.map(\.text),
                              end: end, expect: expect, location: step.location))
        }
        var traffic: PlanFile?
        if let node = scenario.traffic {
            let file = node.location.file
            do {
                var plan = try PlanFile.parse(root: node.node, path: file)
                if plan.phases == nil, plan.concurrency == nil {
                    report(node.location, "spec.traffic: say how to send: phases (open loop, e.g. [{constant: 5/s}]) or concurrency (closed loop)")
                }
                for target in plan.targets where !(target.url.hasPrefix("/") || target.url.lowercased().hasPrefix("http://") || target.url.lowercased().hasPrefix("https://")) {
                    report(node.location, "spec.traffic: target '\(target.url)' is neither a path on the lab's gateway (/http-429) nor an http:// URL")
                }
                plan.path = file
                traffic = plan
            } catch {
                report(SourceLocation(file: file, line: error.line > 0 ? error.line : node.location.line), "spec.traffic: \(error.message)")
            }
        }
        return (LabScript(steps: steps, traffic: traffic), problems)
    }

    /// A step's duration as the driver's nanoseconds; the loader bounds it to an hour.
    static func nanos(_ d: Duration) -> Nanos {
        let c = d.components
        guard c.seconds >= 0 else { return 0 }
        let seconds = UInt64(clamping: c.seconds)
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? Nanos.max : whole &+ UInt64(clamping: c.attoseconds / 1_000_000_000)
    }
}

/// Reads lab files with everything checked before anything starts: the manifests, the
/// stand-ins' behaviours, and the Scenario's traffic and steps.
public enum LabFiles {
    public static func load(files: [String]) throws -> LabConfig {
        try ManifestLoader.load(files: files, checks: LabScript.diagnostics)
    }
}

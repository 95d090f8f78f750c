import ArgumentParser
import Dispatch
import Driver
import Foundation
import Gateway
import Lab

/// `failover-lab test`: runs labs headless, step by step, and says which steps held.
struct TestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run labs headless step by step and check each step's expectations (for CI).",
        discussion: """
        Each LAB is a lab file or a bundled lab's short name; with none, every bundled lab \
        runs. A lab starts on free loopback ports, its Scenario's traffic runs, and its steps \
        run in order: each sets stand-in behaviours, returns providers and sends requests at \
        its start, lasts its for: (or until: holds, or its timeout:), and checks its expect: \
        over the requests that finished while it ran. For a failed expectation the measured \
        figure is printed.

        Every file is read and checked before any lab starts.

        Exit status: 0 when every step's expectations hold, 1 when one does not (or a lab \
        cannot start), 2 for a lab file with errors (each with file:line) or without steps.
        """)

    @Argument(help: ArgumentHelp("Lab files or bundled lab names (http-429-lab); default: every bundled lab.", valueName: "lab"))
    var labs: [String] = []

    @Option(help: ArgumentHelp("Also write the results as JUnit XML to this file (one testsuite per lab, one testcase per step).", valueName: "file"))
    var junit: String?

    @Flag(help: "Print the results as JSON on stdout instead of text.")
    var json = false

    @Option(help: ArgumentHelp("Write every request of every lab's steps as a JSON line to this file, as drive --record does (for report, report --html).", valueName: "file"))
    var record: String?

    // The same lab flags as run and gateway: each lab starts with them.
    @OptionGroup var labFlags: LabFlags

    func run() async throws {
        let began = DispatchTime.now().uptimeNanoseconds
        // Read and check every lab before running any.
        var loaded: [(file: String, config: LabConfig, script: LabScript)] = []
        var problems: [String] = []
        for file in try labFiles() {
            do {
                let config = try LabFiles.load(files: [file])
                for warning in config.warnings { Console.error(warning.description) }
                let script = try LabScript.compile(config)
                if script.steps.isEmpty {
                    problems.append("\(file): the lab has no spec.steps in its Scenario; nothing to test (see docs/labs.md)")
                }
                loaded.append((file, config, script))
            } catch let errors as ConfigErrors {
                problems.append(errors.description)
            }
        }
        if !problems.isEmpty {
            for problem in problems { Console.error(problem) }
            throw ExitCode(2)
        }

        var recorder: Recorder?
        if let record {
            do { recorder = try Recorder(path: record) } catch {
                Console.error("failover-lab test: --record: \(error)")
                throw ExitCode(2)
            }
        }
        let sink = recorder.map { r in RecordSink(record: { r.record($0) }, flush: { r.flush() }) }
        var results: [LabTestResult] = []
        let text = !json
        for lab in loaded {
            let count = lab.script.steps.count
            if text { Console.out("\(lab.config.scenario?.name ?? lab.file) (\(lab.file))") }
            var settings = LabSettings()
            try labFlags.apply(to: &settings)
            let result = await LabTestRunner.run(config: lab.config, script: lab.script, file: lab.file, settings: settings, sink: sink) { action in
                guard text, case .end(let verdict) = action else { return }
                for line in LabTestReport.stepLines(verdict, of: count) { Console.out(line) }
            }
            if text { Console.out(LabTestReport.labSummary(result)) }
            results.append(result)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds &- began) / 1e9
        if text {
            Console.out("")
            Console.out(LabTestReport.summary(results, seconds: seconds))
        } else {
            Console.out(LabTestReport.json(results, seconds: seconds).serialized)
        }
        recorder?.flush()
        if let e = recorder?.error { Console.error("failover-lab test: --record: \(e)") }
        if let junit {
            do {
                try LabTestReport.junit(results, seconds: seconds).write(toFile: junit, atomically: true, encoding: .utf8)
            } catch {
                Console.error("failover-lab test: --junit \(junit): cannot write it: \(error.localizedDescription)")
                throw ExitCode(2)
            }
        }
        if !results.allSatisfy(\.passed) { throw ExitCode(1) }
    }

    /// The named labs (a file, else a bundled short name), or every bundled lab.
    func labFiles() throws -> [String] {
        if !labs.isEmpty {
            return labs.map { name in
                if FileManager.default.fileExists(atPath: name) { return name }
                return BundledLabs.path(of: name) ?? name
            }
        }
        guard let dir = BundledLabs.scenariosDirectory(),
              let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else {
            throw ValidationError("cannot find the bundled labs (scenarios/); name lab files, or set FAILOVER_LAB_SCENARIOS to the scenarios folder")
        }
        // The seed lab first, then the others by name.
        return names.filter { $0.hasSuffix(".yaml") }
            .sorted { ($0 == BundledLabs.seedLab ? 0 : 1, $0) < ($1 == BundledLabs.seedLab ? 0 : 1, $1) }
            .map { (dir as NSString).appendingPathComponent($0) }
    }
}

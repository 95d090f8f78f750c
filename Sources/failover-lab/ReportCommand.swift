import ArgumentParser
import Driver

/// `failover-lab report`: the report of a records file, for people or machines.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Summarize records files from drive or replay: rate, status codes, latency, providers, failover timeline.",
        discussion: """
        Several files are summarized together. Lines that are not records are skipped and \
        counted; a malformed line is reported with its file and line number. With --expect the \
        exit status is 1 when a check does not hold, so a lab can be a CI step.

        Examples:
          failover-lab report run.jsonl
          failover-lab report run.jsonl --json | jq .latency_corrected_ms
          failover-lab report run.jsonl --expect 'status[429] <= 1' --expect 'provider[openai-provider] >= 0.9'
        """)

    @Argument(help: ArgumentHelp("Records files (JSONL).", valueName: "file"))
    var files: [String]

    @Flag(help: "Print the report as JSON instead of text.")
    var json = false

    @Option(help: ArgumentHelp("A check the records must pass, e.g. 'p99 < 50ms' (repeatable).", valueName: "check"))
    var expect: [String] = []

    func run() throws {
        guard !files.isEmpty else { throw DriveCLI.usage("give a records file, e.g. failover-lab report run.jsonl") }
        var expectations: [Expectation] = []
        for e in expect {
            do { expectations.append(try Expectation(parsing: e)) } catch { throw DriveCLI.usage(error.description) }
        }
        var builder = ReportBuilder()
        var malformed = 0
        for file in files {
            let reader: LineReader
            do { reader = try LineReader(path: file) } catch { throw DriveCLI.usage("\(error)") }
            reader.overlong = { n in DriveCLI.printError("\(file):\(n): line longer than \(LineReader.maxLineBytes >> 20) MiB; line skipped") }
            while let line = reader.next() {
                if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
                guard line.first == "{" else {
                    builder.skippedLines += 1
                    continue
                }
                do {
                    builder.add(try RequestRecord(line: line))
                } catch {
                    malformed += 1
                    if malformed <= 20 { DriveCLI.printError("\(file):\(reader.lineNumber): \(error); line skipped") }
                    builder.skippedLines += 1
                }
            }
            builder.skippedLines += UInt64(reader.overlongLines)
        }
        if malformed > 20 { DriveCLI.printError("... \(malformed) malformed lines in all") }
        let report = builder.build()
        var results: [(Expectation, Bool, String)] = []
        for e in expectations {
            let (holds, measured) = e.evaluate(report, builder)
            results.append((e, holds, measured))
        }
        if json {
            var out = report.json
            if case var .object(members) = out {
                members.append(("expectations", .array(results.map { e, holds, measured in
                    .object([("expect", .string(e.text)), ("holds", .bool(holds)), ("measured", .string(measured))])
                })))
                out = .object(members)
            }
            print(out.serialized)
        } else {
            var text = report.text
            if !results.isEmpty {
                text += "\nexpectations\n"
                for (e, holds, measured) in results {
                    text += "  " + (holds ? "ok      " : "FAILED  ") + e.text + "  (measured " + measured + ")\n"
                }
            }
            print(text, terminator: "")
        }
        let failed = results.filter { !$0.1 }
        if !failed.isEmpty {
            for (e, _, measured) in failed { DriveCLI.printError("expectation failed: \(e.text) (measured \(measured))") }
            throw ExitCode(1)
        }
    }
}

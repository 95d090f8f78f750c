import Foundation
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
          failover-lab report run.jsonl --html run.html --group http-429-provider=1 --group openai-provider=2
          failover-lab report --compare before.jsonl after.jsonl [--json | --html cmp.html]
        """)

    @Argument(help: ArgumentHelp("Records files (JSONL).", valueName: "file"))
    var files: [String]

    @Flag(help: "Print the report as JSON instead of text.")
    var json = false

    @Option(help: ArgumentHelp("A check the records must pass, e.g. 'p99 < 50ms' (repeatable).", valueName: "check"))
    var expect: [String] = []

    @Option(help: ArgumentHelp("Also write the report as one self-contained HTML page (charts inline, nothing fetched).", valueName: "out.html"))
    var html: String?

    @Flag(help: "Compare two records files (A then B): their figures side by side with the change B - A.")
    var compare = false

    @Option(help: ArgumentHelp("A provider's failover group for the HTML colours, e.g. openai-provider=2 (repeatable).", valueName: "name=N"))
    var group: [String] = []

    func run() throws {
        guard !files.isEmpty else { throw DriveCLI.usage("give a records file, e.g. failover-lab report run.jsonl") }
        var expectations: [Expectation] = []
        for e in expect {
            do { expectations.append(try Expectation(parsing: e)) } catch { throw DriveCLI.usage(error.description) }
        }
        var groups: [String: Int] = [:]
        for g in group {
            guard let eq = g.lastIndex(of: "="), let n = Int(g[g.index(after: eq)...]), (1...64).contains(n), eq != g.startIndex else {
                throw DriveCLI.usage("--group '\(g)': write NAME=N with N the group's number in 1...64, e.g. openai-provider=2")
            }
            groups[String(g[..<eq])] = n - 1
        }
        if compare {
            guard files.count == 2 else { throw DriveCLI.usage("--compare takes two records files, A then B (got \(files.count))") }
            guard expectations.isEmpty else { throw DriveCLI.usage("--expect does not apply to --compare; check each run on its own") }
            let (ba, sa) = try Self.read([files[0]])
            let (bb, sb) = try Self.read([files[1]])
            let rows = ReportComparison.rows(ba.build(), bb.build())
            if let html {
                let page = ReportComparison.html(rows, a: (files[0], sa, ba.corrected), b: (files[1], sb, bb.corrected))
                try Self.write(page, to: html)
            }
            if json {
                print(ReportComparison.json(rows, a: files[0], b: files[1]).serialized)
            } else {
                print(ReportComparison.text(rows, a: files[0], b: files[1]), terminator: "")
            }
            return
        }
        let (builder, series) = try Self.read(files)
        let report = builder.build()
        var results: [(Expectation, Bool, String)] = []
        for e in expectations {
            let (holds, measured) = e.evaluate(report, builder)
            results.append((e, holds, measured))
        }
        if let html {
            let page = HTMLReport(files: files, report: report, series: series, builder: builder,
                                  expectations: results.map { ($0.0.text, $0.1, $0.2) }, groups: groups).html
            try Self.write(page, to: html)
        }
        try output(report, results)
    }

    static func write(_ text: String, to path: String) throws {
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            let folder = (path as NSString).deletingLastPathComponent
            let why = FileManager.default.fileExists(atPath: folder.isEmpty ? "." : folder) ? "" : " (no folder \(folder))"
            throw DriveCLI.usage("--html \(path): cannot write\(why): \(error.localizedDescription)")
        }
        // On stderr, so stdout stays the text or JSON report.
        DriveCLI.printError("wrote \(path) (\(text.utf8.count / 1024 + 1) KB)")
    }

    /// Reads records files into a report builder and the time series of the charts.
    static func read(_ files: [String]) throws -> (ReportBuilder, TimeSeries) {
        var builder = ReportBuilder()
        var series = TimeSeries()
        var malformed = 0
        // bench/report.sh times the general JSON reader alone with this (the "before" figure).
        let generalOnly = ProcessInfo.processInfo.environment["FAILOVER_LAB_RECORDS_READER"] == "general"
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
                    let record = try generalOnly ? RequestRecord(line: line) : RequestRecord(fastOrGeneral: line)
                    builder.add(record)
                    series.add(record)
                } catch {
                    malformed += 1
                    if malformed <= 20 { DriveCLI.printError("\(file):\(reader.lineNumber): \(error); line skipped") }
                    builder.skippedLines += 1
                }
            }
            builder.skippedLines += UInt64(reader.overlongLines)
        }
        if malformed > 20 { DriveCLI.printError("... \(malformed) malformed lines in all") }
        return (builder, series)
    }

    func output(_ report: Report, _ results: [(Expectation, Bool, String)]) throws {
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

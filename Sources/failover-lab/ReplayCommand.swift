import ArgumentParser
import Driver

/// `failover-lab replay`: sends recorded traffic again, keeping its timing.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay a records file or an agentgateway access log against a URL, keeping the original timing.",
        discussion: """
        Each request keeps its offset from the first request, divided by --speed; gaps longer \
        than --max-gap are cut to it; --loop starts over at the end until --duration or \
        --requests. The file is either our own records (from drive --record or replay --record) \
        or agentgateway access-log lines: JSON objects with time, http.method, http.path and \
        gen_ai.request.model, one per line or spread over lines as `kubectl logs ... | jq` prints \
        them. Other lines are skipped and counted; a malformed line is reported with its line \
        number and skipped. A replay records and reports like drive, so runs compare with report.

        Examples:
          failover-lab replay run.jsonl --target http://127.0.0.1:8080 --speed 2x
          kubectl logs deploy/agentgateway | jq . > access.log
          failover-lab replay access.log --target http://127.0.0.1:8080 --max-gap 1s --record replay.jsonl
        """)

    @Argument(help: ArgumentHelp("A records file (JSONL) or an access log.", valueName: "file"))
    var file: String

    @Option(help: ArgumentHelp("Scheme, host and port (and a base path) to send to; each request keeps its path. Needed for access logs; records default to their own URLs.", valueName: "url"))
    var target: String?

    @OptionGroup var timing: ReplayTimingOptions

    @OptionGroup var limits: DriveLimitOptions

    @Option(help: ArgumentHelp("The user message of replayed POST bodies.", valueName: "text"))
    var message: String = "What is 2+2?"

    @Flag(help: "Ask for streamed answers.")
    var stream = false

    @Option(name: [.customShort("H"), .customLong("header")], help: ArgumentHelp("An extra request header, 'Name: value' (repeatable).", valueName: "header"))
    var headers: [String] = []

    @OptionGroup var engine: DriveEngineOptions
    @OptionGroup var output: DriveOutputOptions

    func run() throws {
        let expectations = try output.parsedExpectations()
        var replay = ReplaySettings(path: file)
        replay.target = target
        timing.fill(&replay)
        replay.message = message
        replay.stream = stream
        replay.headers = headers
        let duration = try limits.durationValue()
        var (config, diagnostics): (DriverConfiguration, ReplayDiagnostics)
        do {
            (config, diagnostics) = try replay.configuration(duration: duration, requests: limits.requests,
                                                             report: { DriveCLI.printError($0) })
        } catch {
            throw DriveCLI.usage(error.description)
        }
        try engine.apply(to: &config)
        var session = DriveRunSession(config: config, output: output, expectations: expectations)
        let path = file
        session.after = { ReplaySettings.summary(diagnostics, path: path) }
        try session.run()
    }
}

/// How a replay keeps the recorded timing: `replay` and `run --replay` take the same flags.
struct ReplayTimingOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Replay faster (2x) or slower (0.5x) than recorded.", valueName: "factor"))
    var speed: String = "1x"

    @Option(name: .customLong("max-gap"), help: ArgumentHelp("Cut longer pauses between requests to this.", valueName: "duration"))
    var maxGap: String?

    @Flag(help: "Start over at the end of the file (replay: until --duration or --requests, 10s if neither; run: until q).")
    var loop = false

    func fill(_ replay: inout ReplaySettings) {
        replay.speed = speed
        replay.maxGap = maxGap
        replay.loop = loop
    }
}

import ArgumentParser
import Dispatch
import Driver
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `failover-lab drive`: load on any HTTP URL, open or closed loop, with honest latency.
struct DriveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drive",
        abstract: "Send load to a URL (usually the lab's gateway) and report what came back.",
        discussion: """
        Closed loop: --concurrency N keeps N requests in flight. Open loop: --rate R sends on \
        schedule whatever the responses do (--poisson for random arrivals, --ramp-to for a linear \
        ramp over --duration, --steps and --burst for shapes, --plan for a YAML plan). A request \
        that finds every slot (--max-in-flight) busy at its time is counted late and keeps its \
        intended start, so latency is reported both from the intended start (corrected for \
        coordinated omission) and from the send.

        The default request is the lab's: POST, Content-Type application/json, \
        {"model": "", "messages": [{"role": "user", "content": "What is 2+2?"}]}.

        Examples:
          failover-lab drive http://127.0.0.1:8080/http-429 --rate 200/s --duration 30s --record run.jsonl
          failover-lab drive URL --concurrency 16 --requests 10000
          failover-lab drive URL --rate 50/s --ramp-to 500/s --duration 60s
          failover-lab drive URL1 URL2 --weights 3,1 --rate 100/s --duration 10s
          failover-lab drive --plan plan.yaml --expect 'status[429] <= 1' --expect 'p99 < 50ms'

        Plan file (YAML):
          targets: [{url: http://127.0.0.1:8080/http-429, weight: 3}, http://127.0.0.1:8080/other]
          request: {model: gpt-4o-mini, message: "hi", stream: false, headers: ["x-lab: 1"]}
          phases:
            - constant: 50/s
              for: 10s
            - poisson: 100/s
              for: 10s
            - ramp: 50/s -> 500/s
              for: 30s
            - steps: [100/s, 200/s]
              every: 5s
            - burst: 50
              every: 1s
              rate: 10/s
              for: 10s
          # or, instead of phases: concurrency: 16
          duration: 60s
          requests: 10000
          max-in-flight: 256
          seed: 1

        Sharded load (N copies make one run, e.g. the pods of a Kubernetes Indexed Job; see \
        docs/sharded-load.md): --shard K/N runs shard K (from 0) of N. The shard takes rates / N, \
        concurrency, burst size and --requests divided with the remainder going to the first \
        shards (10 over 3: 4, 3, 3), numbers its requests seq K, K+N, K+2N, ... and seeds with \
        seed + K; --duration is not divided. --shard /N takes K from JOB_COMPLETION_INDEX. \
        `failover-lab report shard-*.jsonl` reads every shard's records into one report: its \
        counts and percentiles are those of one run with all the records.
          failover-lab drive URL --rate 400/s --duration 60s --shard 2/8 --record shard-2.jsonl

        Exit status: 0, or 1 when an --expect does not hold, or 64 for bad flags or files.
        """)

    @Argument(help: ArgumentHelp("Target URLs (several are picked by --weights, evenly by default).", valueName: "url"))
    var urls: [String] = []

    @Option(help: ArgumentHelp("Weights of the target URLs, in their order, e.g. 3,1.", valueName: "w,w,..."))
    var weights: String?

    @OptionGroup var shape: DriveShapeOptions
    @OptionGroup var limits: DriveLimitOptions
    @OptionGroup var request: DriveRequestOptions
    @OptionGroup var engine: DriveEngineOptions
    @OptionGroup var output: DriveOutputOptions

    func run() throws {
        let expectations = try output.parsedExpectations()
        var settings = try shape.settings()
        settings.targets = urls.map { (url: $0, weight: 1.0) }
        settings.weights = weights
        limits.fill(&settings)
        request.fill(&settings)
        engine.fill(&settings)
        let config: DriverConfiguration
        do {
            config = try settings.configuration(environment: ProcessInfo.processInfo.environment)
        } catch {
            throw DriveCLI.usage(error.description)
        }
        engine.noteHTTP2()
        let session = DriveRunSession(config: config, output: output, expectations: expectations)
        try session.run()
    }
}

/// How to drive: a plan file, closed loop, or an open-loop shape; and the shard. `drive` and
/// `run` share it, and `TrafficSettings` reads it, so a flag means the same in both.
struct DriveShapeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A YAML traffic plan: targets, request, phases or concurrency, limits. Flags win over it.", valueName: "file"))
    var plan: String?

    @Option(help: ArgumentHelp("Closed loop: keep N requests in flight.", valueName: "N"))
    var concurrency: Int?

    @Option(name: .customLong("ramp-up"), help: ArgumentHelp("With --concurrency: open the N slots evenly over this long (k6's ramping VUs) instead of all at once, so N connections are not opened together and N streams of one length do not stay in step.", valueName: "duration"))
    var rampUp: String?

    @Option(help: ArgumentHelp("Open loop: requests per second (200/s, 12000/m).", valueName: "rate"))
    var rate: String?

    @Flag(help: "With --rate: Poisson arrivals (random gaps with the given mean rate) instead of even ones.")
    var poisson = false

    @Option(name: .customLong("ramp-to"), help: ArgumentHelp("With --rate: ramp linearly from --rate to this rate over --duration (or --ramp-over).", valueName: "rate"))
    var rampTo: String?

    @Option(name: .customLong("ramp-over"), help: ArgumentHelp("Length of the ramp when it should not last the whole --duration.", valueName: "duration"))
    var rampOver: String?

    @Option(help: ArgumentHelp("Open loop in steps: rates held for --step-every each, e.g. 100/s,200/s,400/s.", valueName: "r,r,..."))
    var steps: String?

    @Option(name: .customLong("step-every"), help: ArgumentHelp("How long each of --steps lasts.", valueName: "duration"))
    var stepEvery: String = "10s"

    @Option(help: ArgumentHelp("Open loop in bursts: N requests at once every --burst-every (on top of --rate, if given).", valueName: "N"))
    var burst: Int?

    @Option(name: .customLong("burst-every"), help: ArgumentHelp("Time between bursts.", valueName: "duration"))
    var burstEvery: String = "1s"

    @Option(help: ArgumentHelp("Run shard K of N (K from 0) of this plan: rates, concurrency and --requests divided by N, seq K+N·i, seed + K. '/N' takes K from JOB_COMPLETION_INDEX.", valueName: "K/N"))
    var shard: String?

    /// The shape, with the plan file read.
    func settings() throws -> TrafficSettings {
        var s = TrafficSettings()
        if let plan {
            do { s.plan = try PlanFile.load(path: plan) } catch { throw DriveCLI.usage("\(error)") }
        }
        s.concurrency = concurrency
        s.rampUp = rampUp
        s.rate = rate
        s.poisson = poisson
        s.rampTo = rampTo
        s.rampOver = rampOver
        s.steps = steps
        s.stepEvery = stepEvery
        s.burst = burst
        s.burstEvery = burstEvery
        s.shard = shard
        return s
    }
}

/// --duration and --requests.
struct DriveLimitOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Stop starting requests after this long (30s, 2m). The run ends at the first of --duration and --requests.", valueName: "duration"))
    var duration: String?

    @Option(help: ArgumentHelp("Stop after this many requests.", valueName: "N"))
    var requests: UInt64?

    func durationValue() throws -> Nanos? {
        guard let duration else { return nil }
        return try DriveCLI.positiveDuration(duration, flag: "--duration")
    }

    func fill(_ s: inout TrafficSettings) {
        s.duration = duration
        s.requests = requests
    }
}

/// What each request looks like.
struct DriveRequestOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The \"model\" of the request body (the lab sends \"\").", valueName: "name"))
    var model: String?

    @Option(help: ArgumentHelp("The user message of the request body.", valueName: "text"))
    var message: String?

    @Flag(help: "Ask for a streamed answer (\"stream\": true); tokens then come from the last usage event.")
    var stream = false

    @Option(name: [.customShort("H"), .customLong("header")], help: ArgumentHelp("An extra request header, 'Name: value' (repeatable).", valueName: "header"))
    var headers: [String] = []

    @Option(name: .customLong("body-file"), help: ArgumentHelp("Send this file as the body instead of the chat request.", valueName: "file"))
    var bodyFile: String?

    @Option(name: [.customShort("X"), .customLong("method")], help: ArgumentHelp("HTTP method (POST by default).", valueName: "method"))
    var method: String?

    func fill(_ s: inout TrafficSettings) {
        s.model = model
        s.message = message
        s.stream = stream
        s.headers = headers
        s.bodyFile = bodyFile
        s.method = method
    }
}

/// How the engine runs.
struct DriveEngineOptions: ParsableArguments {
    @Option(name: .customLong("max-in-flight"), help: ArgumentHelp("Open loop: most requests in flight; an arrival that finds all busy is late.", valueName: "N"))
    var maxInFlight: Int?

    @Option(help: ArgumentHelp("Give up on a request after this long (default 30s).", valueName: "duration"))
    var timeout: String?

    @Option(name: .customLong("connect-timeout"), help: ArgumentHelp("Give up connecting after this long.", valueName: "duration"))
    var connectTimeout: String = "10s"

    @Flag(help: "Speak HTTP/2 (prior knowledge on http://, ALPN on https://) instead of HTTP/1.1.")
    var http2 = false

    @Flag(help: "Send a W3C traceparent with each request (a new trace id each) and record its trace id (\"trace_id\"), to join records with access-log lines and traces.")
    var trace = false

    @Option(help: ArgumentHelp("Seed of the random arrivals and target picks, so runs repeat.", valueName: "N"))
    var seed: UInt64?

    func fill(_ s: inout TrafficSettings) {
        s.maxInFlight = maxInFlight
        s.timeout = timeout
        s.connectTimeout = connectTimeout
        s.http2 = http2
        s.seed = seed
        s.trace = trace
    }

    /// The engine settings on a configuration made elsewhere (a replay).
    func apply(to config: inout DriverConfiguration) throws {
        var s = TrafficSettings()
        fill(&s)
        do { try s.applyEngine(to: &config) } catch { throw DriveCLI.usage(error.description) }
        noteHTTP2()
    }

    func noteHTTP2() {
        if http2 && Driver.http2ReuseBroken {
            DriveCLI.printError("note: libcurl \(Driver.curlVersion) cannot reuse HTTP/2 prior-knowledge connections (curl bug #10634, fixed in 8.0); --http2 opens a fresh h2c connection per http:// request")
        }
    }
}

/// Records, report format, expectations, progress.
struct DriveOutputOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Write one JSON line per request to this file as the run goes ('-' for stdout).", valueName: "file"))
    var record: String?

    @Flag(help: "Print the report as JSON instead of text.")
    var json = false

    @Option(help: ArgumentHelp("A check the run must pass, e.g. 'status[429] <= 1', 'provider[openai-provider] >= 0.9', 'p99 < 50ms' (repeatable). A decimal or % value is a share, a whole number a count.", valueName: "check"))
    var expect: [String] = []

    @Flag(name: .customLong("no-progress"), help: "Do not print the progress line on stderr.")
    var noProgress = false

    func parsedExpectations() throws -> [Expectation] {
        var out: [Expectation] = []
        for e in expect {
            do { out.append(try Expectation(parsing: e)) } catch { throw DriveCLI.usage(error.description) }
        }
        return out
    }
}

/// Helpers shared by drive, replay and report.
enum DriveCLI {
    /// A mistake in flags or files: says what and where on stderr; the exit status is 64 (EX_USAGE).
    static func usage(_ message: String) -> Error {
        printError("error: " + message)
        return ExitCode(64)
    }

    /// A duration flag: > 0 and within `Units.maxDuration`, or a usage error naming the flag.
    static func positiveDuration(_ text: String, flag: String) throws -> Nanos {
        do { return try TrafficSettings.positiveDuration(text, flag: flag) } catch { throw usage(error.description) }
    }

    /// Prints to standard error.
    static func printError(_ s: String) {
        var line = s
        if !line.hasSuffix("\n") { line += "\n" }
        writeStderr(line)
    }

    /// Writes to standard error without buffering (the progress line is redrawn in place).
    static func writeStderr(_ s: String) {
        var text = s
        text.withUTF8 { buf in
            var done = 0
            while done < buf.count {
                let n = write(2, buf.baseAddress! + done, buf.count - done)
                if n <= 0 { return }
                done += n
            }
        }
    }
}

/// Runs a driver with the output options: records, progress, Ctrl-C, report, expectations.
struct DriveRunSession {
    let config: DriverConfiguration
    let output: DriveOutputOptions
    let expectations: [Expectation]
    var before: () -> Void = {}
    var after: () -> String? = { nil }

    init(config: DriverConfiguration, output: DriveOutputOptions, expectations: [Expectation]) {
        self.config = config
        self.output = output
        self.expectations = expectations
    }

    func run() throws {
        let recorder: Recorder?
        if let path = output.record {
            do { recorder = try Recorder(path: path) } catch { throw DriveCLI.usage(error.description) }
        } else {
            recorder = nil
        }
        let aggregate = DriveLockedBuilder()
        let sink = RecordSink(
            record: { r in
                recorder?.record(r)
                aggregate.add(r)
            },
            flush: { recorder?.flush() })
        let driver = Driver(configuration: config, sink: sink)

        // Ctrl-C: the first stops scheduling and lets in-flight requests finish; the second aborts them.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let interrupts = DriveCounter()
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                if interrupts.increment() == 1 {
                    DriveCLI.printError("\nstopping: waiting for requests in flight (Ctrl-C again to abort them)")
                    driver.stop()
                } else {
                    driver.stop(abortInFlight: true)
                }
            }
            source.resume()
            sources.append(source)
        }
        before()
        driver.start()
        let tty = isatty(2) == 1
        var progress = ProgressLine(totalDuration: config.duration, totalRequests: config.requestLimit)
        let interval = tty ? 0.25 : 5.0
        let showProgress = !output.noProgress && !(output.record == "-" && !tty)
        while !driver.wait(seconds: interval) {
            guard showProgress else { continue }
            let line = progress.render(driver.stats)
            if tty { DriveCLI.writeStderr("\r\u{1B}[2K" + line) } else { DriveCLI.printError(line) }
        }
        if showProgress && tty { DriveCLI.writeStderr("\r\u{1B}[2K") }
        for s in sources { s.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
        if let e = recorder?.error { DriveCLI.printError(e) }
        if let note = after() { DriveCLI.printError(note) }

        let builder = aggregate.builder
        let report = builder.build()
        var results: [(Expectation, Bool, String)] = []
        for e in expectations {
            let (holds, measured) = e.evaluate(report, builder)
            results.append((e, holds, measured))
        }
        let stats = driver.stats
        if output.json {
            var json = report.json
            if case var .object(members) = json {
                members.append(("connections_opened", .number(Double(stats.connectionsOpened))))
                members.append(("expectations", .array(results.map { e, holds, measured in
                    .object([("expect", .string(e.text)), ("holds", .bool(holds)), ("measured", .string(measured))])
                })))
                json = .object(members)
            }
            if output.record == "-" { DriveCLI.printError(json.serialized) } else { print(json.serialized) }
        } else {
            var text = report.text
            text += "connections opened \(stats.connectionsOpened)\n"
            if !results.isEmpty {
                text += "\nexpectations\n"
                for (e, holds, measured) in results {
                    text += "  " + (holds ? "ok      " : "FAILED  ") + e.text + "  (measured " + measured + ")\n"
                }
            }
            if output.record == "-" { DriveCLI.printError(text) } else { print(text, terminator: "") }
        }
        let failed = results.filter { !$0.1 }
        if !failed.isEmpty {
            for (e, _, measured) in failed { DriveCLI.printError("expectation failed: \(e.text) (measured \(measured))") }
            throw ExitCode(1)
        }
    }
}

/// The report aggregate, fed from the engine thread and read at the end.
final class DriveLockedBuilder: @unchecked Sendable {
    private let lock = SimpleLock()
    private var value = ReportBuilder()
    func add(_ r: RequestRecord) { lock.withLock { value.add(r) } }
    var builder: ReportBuilder { lock.withLock { value } }
}

final class DriveCounter: @unchecked Sendable {
    private let lock = SimpleLock()
    private var n = 0
    func increment() -> Int { lock.withLock { n += 1; return n } }
}

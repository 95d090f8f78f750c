import ArgumentParser
import Driver
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Gateway
import Lab
import TUI
import Upstreams

/// `failover-lab run` (the default): the dashboard on a lab, with traffic from the embedded driver.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Open the dashboard: start the lab's gateway, stand-ins and traffic, and watch failover live.",
        discussion: """
        With no arguments it opens the bundled seed lab (scenarios/http-429-lab.yaml) and runs \
        its steps: the lab panel shows each step's text and its expectations turning ✓ or ✗ as \
        the requests arrive; the first request gets the 429 and evicts the http-429 provider, \
        the next ones fail over to group 2. --step-by-key waits for n before each step \
        (presenter mode); N runs the step before again; --no-steps skips them. Press ? for the \
        keys; q (or Ctrl-C) quits, restores the terminal and prints the report with the step \
        verdicts.

        Traffic: the Scenario's traffic: (none for a lab whose steps send their own requests: \
        then 2/s waits, paused, for space), or any drive traffic: --rate, --concurrency, \
        --stream, --plan FILE and the other flags below, or --replay FILE (our records or an \
        agentgateway access log) with --speed, --max-gap, --loop. + and - scale whatever runs; \
        space pauses it; s sends one request. --record FILE writes every request as drive does.

        --target URL watches traffic aimed at any gateway (not ours): codes, providers from \
        the responses, the timeline. When stdout is not a terminal, or with --headless, it \
        prints one line per request and a status line every few seconds instead of drawing.

        Themes: --theme NAME|FILE (bundled: default, light, high-contrast, mono); NO_COLOR \
        forces mono.

        Examples:
          failover-lab run advanced-failover-lab --step-by-key
          failover-lab run --concurrency 32 --stream --no-steps
          failover-lab run --plan plan.yaml
          failover-lab run --replay access.log --speed 4x --loop
        """)

    @OptionGroup var lab: LabFileArguments

    @Option(help: ArgumentHelp("Drive and watch this URL instead of starting a lab (a gateway that is not ours).", valueName: "url"))
    var target: String?

    @Flag(name: .customLong("step-by-key"), help: "Presenter mode: each of the lab's steps waits for n.")
    var stepByKey = false

    @Flag(name: .customLong("no-steps"), help: "Do not run the lab's steps (traffic only: 2/s unless told otherwise).")
    var noSteps = false

    @Option(help: ArgumentHelp("Theme: a bundled name (default, light, high-contrast, mono) or a theme file.", valueName: "name|file"))
    var theme: String?

    @Flag(help: "Draw with ASCII only (no box drawing or block characters).")
    var ascii = false

    @OptionGroup(title: "Charts") var chartFlags: ChartFlags

    @Option(help: ArgumentHelp("Most frames drawn a second.", valueName: "n"))
    var fps = 10

    @Flag(help: "Do not draw: print one line per request and a status line every few seconds.")
    var headless = false

    @Option(help: ArgumentHelp("Gateway port; default 8080, or a free port when 8080 is taken. 0 always picks a free one.", valueName: "port"))
    var port: Int?

    @Option(help: ArgumentHelp("Write one JSON line per request to this file, as drive --record does (for report, replay).", valueName: "file"))
    var record: String?

    @OptionGroup(title: "Traffic (as drive takes it; --duration also ends the dashboard)") var shape: DriveShapeOptions
    @OptionGroup(title: "Traffic (as drive takes it; --duration also ends the dashboard)") var limits: DriveLimitOptions
    @OptionGroup(title: "Traffic (as drive takes it; --duration also ends the dashboard)") var request: DriveRequestOptions
    @OptionGroup(title: "Traffic (as drive takes it; --duration also ends the dashboard)") var engine: DriveEngineOptions
    @OptionGroup(title: "Replay (as replay takes it)") var replay: RunReplayOptions

    @OptionGroup var labFlags: LabFlags

    // With --target: the remote gateway's own admin state (RemoteAdminFlags.swift).
    @OptionGroup(title: "Remote gateway's admin port (with --target)") var remoteAdmin: RemoteAdminFlags


    func validate() throws {
        guard (1...60).contains(fps) else { throw ValidationError("--fps must be 1...60, got \(fps)") }
        if let port { guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535, got \(port)") } }
        if let duration = limits.duration { guard Units.parseDuration(duration) != nil else { throw ValidationError("--duration \(duration): not a duration; write 30s, 10m") } }
        if target != nil && !lab.files.isEmpty { throw ValidationError("give either lab files or --target URL, not both") }
        if replay.replay != nil && (shape.plan != nil || shape.concurrency != nil || shape.rate != nil || shape.steps != nil || shape.burst != nil) {
            throw ValidationError("--replay sends the file's requests at their times; it cannot be combined with --plan, --rate, --concurrency, --steps or --burst")
        }
        if stepByKey && noSteps { throw ValidationError("--step-by-key and --no-steps contradict each other") }
        try remoteAdmin.validate(target: target)
    }

    func run() async throws {
        let settings = try dashboardSettings()
        let feed = Feed()
        let inbox = Inbox()
        let report = RunReport()

        // The lab (or the foreign gateway), the URL the lab's request goes to, and the steps.
        var running: RunningLab?
        var script = LabScript(steps: [])
        let url: String
        let base: String
        var hooks: LabHooks?
        let name: String
        if let target {
            guard target.hasPrefix("http://") || target.hasPrefix("https://") else {
                Console.error("failover-lab: --target \(target): give an http:// or https:// URL")
                throw ExitCode(2)
            }
            url = target
            base = Self.origin(of: target)
            name = "external gateway"
        } else {
            let config = try lab.load()
            do { script = try LabScript.compile(config) } catch {
                Console.error(error.description)
                throw ExitCode(2)
            }
            if noSteps { script.steps = [] }
            var labSettings = LabSettings()
            // Spans are recorded for the waterfall even without a collector.
            try labFlags.apply(to: &labSettings, dashboard: true)
            labSettings.ports = port.map { [$0] } ?? [8080, 0]
            labSettings.options.accessLog = nil
            let started: RunningLab
            do { started = try await LabBuilder.start(config: config, settings: labSettings) } catch { throw error.exit() }
            running = started
            guard let route = started.gateway.runtime.plan.routes.first, let routeURL = started.firstRouteURL else {
                Console.error("failover-lab: the lab has no route to send traffic to; add an HTTPRoute")
                await started.stop()
                throw ExitCode(2)
            }
            url = routeURL
            base = started.gatewayURL
            let runtime = started.gateway.runtime
            runtime.subscribe { event in inbox.push(feed.event(event)) }
            hooks = LabHooks.forLab(started, backend: route.backendIndex)
            name = config.scenario?.name ?? ((config.files.first ?? "lab") as NSString).lastPathComponent
        }

        // The traffic: a replay, the flags, the Scenario's, or 2/s (paused when steps send their own).
        let traffic: LabTraffic
        do {
            traffic = try LabTraffic.choose(flags: try trafficFlags(), replay: replaySettings(), script: script, routeURL: url, base: base,
                                            environment: ProcessInfo.processInfo.environment)
        } catch let error as TrafficError {
            Console.error("failover-lab: \(error)")
            await running?.stop()
            throw ExitCode(2)
        }
        let recorder: Recorder?
        if let record {
            do { recorder = try Recorder(path: record) } catch {
                Console.error("failover-lab: --record: \(error)")
                await running?.stop()
                throw ExitCode(2)
            }
        } else {
            recorder = nil
        }
        let external = target != nil
        let sink = RecordSink(record: { record in
            report.add(record)
            recorder?.record(record)
            if external { inbox.push(.request(Feed.entry(record, at: feed.now))) }
        }, flush: { recorder?.flush() })
        let made = LabDrivers.make(steps: script.steps, traffic: traffic.config, sendSpec: RequestSpec.chat(url: url), lab: running,
                                   stepByKey: stepByKey, sink: sink,
                                   errors: { message in inbox.push(.note(message, at: feed.now)) })
        let driver = made.traffic!
        var model = LabModel(scenario: name, gatewayURL: url, plan: traffic.plan, rate: traffic.rate, external: external)
        model.paused = traffic.config.startPaused

        let remote = try remoteAdmin.start(inbox: inbox, feed: feed)
        defer { remote?.stop() }
        let quit = QuitFlag()
        let signals = QuitSignals(flag: quit)
        let runner = DashboardRunner(model: model, settings: settings, feed: feed, inbox: inbox, driver: driver, hooks: hooks, quit: quit,
                                     steps: made.steps, stepByKey: stepByKey, sender: made.sender)
        let interactive = !headless && isatty(1) == 1 && isatty(0) == 1
        made.sender.start()
        driver.start()
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let thread = Thread {
                if interactive {
                    runner.runInteractive()
                } else {
                    runner.runHeadless { text in Self.write(text) }
                }
                done.resume()
            }
            thread.name = "failover-lab dashboard"
            thread.stackSize = 8 << 20
            thread.start()
        }

        // The terminal is back; let in-flight requests finish briefly, then report.
        for d in [driver, made.sender] { d.stop() }
        for d in [driver, made.sender] where !d.wait(seconds: 2) {
            d.stop(abortInFlight: true)
            d.wait()
        }
        signals.cancel()
        recorder?.flush()
        Self.write("\nfailover-lab report (\(quit.value == "duration" ? "ran for \(limits.duration ?? "")" : "stopped by \(quit.value ?? "q")"), traffic to \(url))\n")
        Self.write(report.text)
        if let note = traffic.summary { Self.write(note + "\n") }
        if let e = recorder?.error { Console.error("failover-lab: --record: \(e)") }
        if let steps = made.steps {
            let verdicts = steps.verdicts
            let ended = verdicts.compactMap { $0 }
            Self.write("\nlab steps: \(ended.filter(\.passed).count) of \(verdicts.count) held\(ended.count < verdicts.count ? ", \(verdicts.count - ended.count) not run to their end" : "")\n")
            for v in ended {
                for line in LabTestReport.stepLines(v, of: verdicts.count) { Self.write(line + "\n") }
            }
        }
        // Shutting the lab down must not keep a finished run alive (seen after a hangup):
        // a watchdog ends the process if stopping takes longer than a few seconds.
        let watchdog = Thread { Thread.sleep(forTimeInterval: 5); Glibc.exit(0) }
        watchdog.start()
        if let running { await running.stop() }
    }

    /// The traffic flags as given (drive's option groups).
    func trafficFlags() throws -> TrafficSettings {
        var settings = try shape.settings()
        limits.fill(&settings)
        request.fill(&settings)
        engine.fill(&settings)
        return settings
    }

    /// `--replay` and its flags, with the request flags replay takes.
    func replaySettings() -> ReplaySettings? {
        guard let path = replay.replay else { return nil }
        var r = ReplaySettings(path: path)
        replay.timing.fill(&r)
        r.message = request.message ?? r.message
        r.stream = request.stream
        r.headers = request.headers
        return r
    }

    /// `http://host:port` of a URL (where a replay's paths go for `--target`).
    static func origin(of url: String) -> String {
        guard let scheme = url.range(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        let end = rest.firstIndex(of: "/") ?? rest.endIndex
        return String(url[..<end])
    }

    /// The themes: the chosen one first, then the other bundled ones for `t`.
    func dashboardSettings() throws -> DashboardSettings {
        let environment = ProcessInfo.processInfo.environment
        let noColor = !(environment["NO_COLOR"] ?? "").isEmpty
        let themes: [Theme]
        do {
            themes = try Themes.cycle(chosen: theme, noColor: noColor)
        } catch {
            Console.error("failover-lab: theme: \(error)")
            throw ExitCode(2)
        }
        var settings = DashboardSettings(themes: themes)
        settings.ascii = ascii
        settings.fps = fps
        settings.monochrome = noColor
        chartFlags.apply(to: &settings)
        settings.duration = limits.duration.flatMap(Units.parseDuration).map { Double($0) / 1e9 }
        return settings
    }

    /// Writes to stdout with write(2) (see Console): a hangup or a closed pipe must not trap.
    static func write(_ text: String) { Console.write(text) }
}

/// The driver's report, fed from its thread.
final class RunReport: @unchecked Sendable {
    private let lock = NSLock()
    private var builder = ReportBuilder()
    func add(_ r: RequestRecord) { lock.lock(); builder.add(r); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return builder.build().text }
}

/// `run --replay`: the file, and the timing flags `replay` takes.
struct RunReplayOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Send a records file's or an agentgateway access log's requests into the lab, at their recorded times.", valueName: "file"))
    var replay: String?

    @OptionGroup var timing: ReplayTimingOptions
}

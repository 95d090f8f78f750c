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
        With no arguments it opens the bundled seed lab (scenarios/http-429-lab.yaml) and sends \
        the lab's request at 2 requests/s. The first request gets the 429 and evicts the \
        http-429 provider; the next ones fail over to group 2. Press ? for the keys; q (or \
        Ctrl-C) quits, restores the terminal and prints the driver's report.

        --target URL watches traffic aimed at any gateway (not ours): codes, providers from \
        the responses, the timeline. When stdout is not a terminal, or with --headless, it \
        prints one line per request and a status line every few seconds instead of drawing.

        Themes: --theme NAME|FILE (bundled: default, light, high-contrast, mono); NO_COLOR \
        forces mono.
        """)

    @OptionGroup var lab: LabFileArguments

    @Option(help: ArgumentHelp("Drive and watch this URL instead of starting a lab (a gateway that is not ours).", valueName: "url"))
    var target: String?

    @Option(help: ArgumentHelp("Requests per second to start with (2/s, 120/m); + and - change it live.", valueName: "rate"))
    var rate = "2/s"

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

    @Option(help: ArgumentHelp("Quit by itself after this long (30s, 10m) and print the report.", valueName: "duration"))
    var duration: String?

    @Option(name: .customLong("stand-in"), help: ArgumentHelp("Start a stand-in with another behaviour, e.g. http-429=healthy, openai='slow 200ms' or openai='ttft 300ms tokens 200 rate 50/s jitter 10%' (repeatable).", valueName: "name=behavior"))
    var standInBehaviors: [String] = []

    @Flag(name: .customLong("real-upstreams"), help: "Send the OpenAI provider to the real api.openai.com over TLS (needs OPENAI_API_KEY) instead of the mock stand-in.")
    var realUpstreams = false

    @OptionGroup var balancer: BalancerFlags

    // Limits and timeouts of the lab's gateway (see LimitFlags in GatewayCommand.swift).
    @OptionGroup(title: "Limits and timeouts") var limits: LimitFlags

    func validate() throws {
        guard (1...60).contains(fps) else { throw ValidationError("--fps must be 1...60, got \(fps)") }
        if let port { guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535, got \(port)") } }
        guard let r = Units.parseRate(rate), r >= 0 else { throw ValidationError("--rate \(rate): not a rate; write 2/s, 2 or 120/m") }
        if let duration { guard Units.parseDuration(duration) != nil else { throw ValidationError("--duration \(duration): not a duration; write 30s, 10m") } }
        if target != nil && !lab.files.isEmpty { throw ValidationError("give either lab files or --target URL, not both") }
    }

    func run() async throws {
        let settings = try dashboardSettings()
        let startRate = Units.parseRate(rate) ?? 2
        let feed = Feed()
        let inbox = Inbox()
        let report = RunReport()

        // The lab (or the foreign gateway) and the URL the driver sends to.
        var running: RunningLab?
        let url: String
        var model: LabModel
        var hooks: LabHooks?
        if let target {
            guard target.hasPrefix("http://") || target.hasPrefix("https://") else {
                Console.error("failover-lab: --target \(target): give an http:// or https:// URL")
                throw ExitCode(2)
            }
            url = target
            model = LabModel(scenario: "external gateway", gatewayURL: target, plan: "open loop", rate: startRate, external: true)
        } else {
            let config = try lab.load()
            let started = try await startLab(config)
            running = started
            let plan = started.gateway.runtime.plan
            guard let route = plan.routes.first, let match = route.matches.first else {
                Console.error("failover-lab: the lab has no route to send traffic to; add an HTTPRoute")
                await started.stop()
                throw ExitCode(2)
            }
            url = started.gatewayURL + match.value
            let runtime = started.gateway.runtime
            runtime.subscribe { event in inbox.push(feed.event(event)) }
            let specs = config.scenario?.standIns ?? []
            hooks = LabHooks(
                runtime: runtime, backend: route.backendIndex,
                faults: { Dictionary(started.standIns.map { ($0.name, $0.behavior.shortName) }, uniquingKeysWith: { a, _ in a }) },
                setFault: { name, step in
                    guard let standIn = started.standIn(name) else { throw ValidationError("no stand-in named \(name)") }
                    let retryAfter = specs.first { $0.name == name }?.retryAfterSeconds ?? 60
                    let behavior = Self.behavior(for: step, retryAfter: retryAfter)
                    try await standIn.setBehavior(behavior)
                    return behavior.shortName
                })
            for assignment in standInBehaviors {
                guard let eq = assignment.firstIndex(of: "="), let standIn = started.standIn(String(assignment[..<eq])) else {
                    Console.error("failover-lab: --stand-in \(assignment): write NAME=BEHAVIOR with a stand-in of the lab (\(started.standIns.map(\.name).joined(separator: ", ")))")
                    await started.stop()
                    throw ExitCode(2)
                }
                do {
                    try await standIn.apply(StandInSetting.parse(String(assignment[assignment.index(after: eq)...])))
                } catch {
                    Console.error("failover-lab: --stand-in \(assignment): \(error)")
                    await started.stop()
                    throw ExitCode(2)
                }
            }
            let name = config.scenario?.name ?? ((config.files.first ?? "lab") as NSString).lastPathComponent
            model = LabModel(scenario: name, gatewayURL: url, plan: "open loop", rate: startRate)
        }

        // The driver: the lab's request at the demo pace, forever (until q).
        var driverConfig = DriverConfiguration(workload: .openLoop([Phase(.constant(rate: startRate))]), mix: RequestMix([RequestSpec.chat(url: url)]))
        driverConfig.timeout = 130_000_000_000  // the lab's route allows 120 s
        let external = target != nil
        let driver = Driver(configuration: driverConfig, sink: RecordSink(record: { record in
            report.add(record)
            if external { inbox.push(.request(Feed.entry(record, at: feed.now))) }
        }))

        let quit = QuitFlag()
        let signals = QuitSignals(flag: quit)
        let runner = DashboardRunner(model: model, settings: settings, feed: feed, inbox: inbox, driver: driver, hooks: hooks, quit: quit)
        let interactive = !headless && isatty(1) == 1 && isatty(0) == 1
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
        driver.stop()
        if !driver.wait(seconds: 2) {
            driver.stop(abortInFlight: true)
            driver.wait()
        }
        signals.cancel()
        Self.write("\nfailover-lab report (\(quit.value == "duration" ? "ran for \(duration ?? "")" : "stopped by \(quit.value ?? "q")"), traffic to \(url))\n")
        Self.write(report.text)
        // Shutting the lab down must not keep a finished run alive (seen after a hangup):
        // a watchdog ends the process if stopping takes longer than a few seconds.
        let watchdog = Thread { Thread.sleep(forTimeInterval: 5); Glibc.exit(0) }
        watchdog.start()
        if let running { await running.stop() }
    }

    /// The themes: the chosen one first, then the other bundled ones for `t`.
    func dashboardSettings() throws -> DashboardSettings {
        let environment = ProcessInfo.processInfo.environment
        let noColor = !(environment["NO_COLOR"] ?? "").isEmpty
        var themes: [Theme] = []
        do {
            if noColor {
                themes = [try Themes.resolve("mono")]
            } else {
                let first = try Themes.resolve(theme ?? "default")
                themes = [first]
                for path in Themes.bundledPaths() {
                    if let t = try? Theme.load(path: path), t.name != first.name { themes.append(t) }
                }
            }
        } catch let error as ThemeError {
            if theme == nil && !noColor {
                themes = [Theme.mono]  // no theme files found: still usable
            } else {
                Console.error("failover-lab: theme: \(error)")
                throw ExitCode(2)
            }
        }
        var settings = DashboardSettings(themes: themes)
        settings.ascii = ascii
        settings.fps = fps
        settings.monochrome = noColor
        chartFlags.apply(to: &settings)
        settings.duration = duration.flatMap(Units.parseDuration).map { Double($0) / 1e9 }
        return settings
    }

    func startLab(_ config: LabConfig) async throws -> RunningLab {
        var options = LabOptions()
        options.realUpstreams = realUpstreams
        // The balancer switches and --no-retry-hint, as `gateway` sets them.
        balancer.apply(to: &options.gateway)
        limits.apply(to: &options.gateway)
        options.accessLog = nil
        let ports = port.map { [$0] } ?? [8080, 0]
        var lastError: Error?
        for p in ports {
            options.port = p
            do {
                return try await RunningLab.start(config: config, options: options)
            } catch let errors as ConfigErrors {
                Console.error(errors.description)
                throw ExitCode(2)
            } catch {
                lastError = error
            }
        }
        Console.error("failover-lab: cannot start the lab's gateway on 127.0.0.1:\(ports.map(String.init).joined(separator: " or ")): \(lastError.map { "\($0)" } ?? "unknown error")")
        throw ExitCode(1)
    }

    /// Writes to stdout with C's stdio: after a hangup the terminal is gone, and a failed
    /// write must not crash the shutdown (FileHandle.write traps on EIO).
    static func write(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.write(1, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            bytes = bytes.dropFirst(n)
        }
    }

    /// What each `f` step does to a stand-in.
    static func behavior(for step: FaultStep, retryAfter: Int) -> StandInBehavior {
        switch step {
        case .healthy: return .healthy
        case .rateLimited: return .always429(retryAfter: retryAfter)
        case .serverErrors: return .serverErrors(status: 503, share: 1)
        case .slow: return .slow(delayMs: 1500, jitterMs: 500)
        case .down: return .down
        }
    }
}

/// The driver's report, fed from its thread.
final class RunReport: @unchecked Sendable {
    private let lock = NSLock()
    private var builder = ReportBuilder()
    func add(_ r: RequestRecord) { lock.lock(); builder.add(r); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return builder.build().text }
}

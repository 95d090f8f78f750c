import ArgumentParser
import Driver
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import TUI
import Watch

/// `failover-lab watch`: the dashboard on a gateway that is not ours to run (agentgateway,
/// one replica or several), fed only by what the gateway reports.
struct WatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Watch a running agentgateway (or ours), replica by replica, through what it reports.",
        discussion: """
        No gateway, stand-ins or traffic of ours: the dashboard reads the \
        gateway's own reports. Give any mix of sources; each flag repeats, \
        and NAME= says which replica it belongs to.

        --admin [NAME=]URL polls GET URL/config_dump every --interval \
        (agentgateway's admin port, 15000; ours is 15020): priority groups in \
        order, each provider's state (healthy, evicted with the countdown \
        from evictedUntil, probing), health, latency, in flight, requests, \
        times evicted. An admin port that does not answer shows as \
        unreachable and is retried.

        --access-log [NAME=]FILE|- follows the file like tail -F (waits for \
        it, survives rotation and truncation; read from its start), or \
        standard input. Lines that are not JSON or not scope=request are \
        skipped and counted. kubectl logs --prefix lines name their pod.

        --metrics [NAME=]URL scrapes agentgateway_requests_total (port 15020, \
        /metrics): request rates by backend and status, and a note when its \
        count disagrees with the access log's.

        --records [NAME=]FILE follows our own records (drive --record, run \
        --record) as they grow: each line a request row, named by its file \
        (shard-2.jsonl is shard-2), so the shards of a sharded run (drive \
        --shard K/N) show side by side, live.

        Without NAME=, an --admin URL is named by its host:port; a log or \
        metrics URL belongs to the one --admin replica when there is exactly \
        one. With access logs alone, a 429 marks the provider as likely \
        evicted for --assume-retry-after, shown as inferred; a replica's \
        /config_dump always wins over inference.

        Examples:
          kubectl port-forward deploy/agentgateway 15000 &
          failover-lab watch --admin http://127.0.0.1:15000
          failover-lab watch --admin gw-a=http://10.0.0.5:15000 \\
            --admin gw-b=http://10.0.0.6:15000 --access-log gw-a=a.log
          kubectl logs -f -l app=agentgateway --prefix \\
            | failover-lab watch --access-log -
          failover-lab watch --records shard-0.jsonl --records shard-1.jsonl
          failover-lab watch --admin http://127.0.0.1:15000 --json --duration 30s

        --json prints JSON lines: "provider" on every change of a provider on \
        a replica (its state, or its countdown by a whole second), "request" \
        per access-log line, "replica" when an admin port stops or starts \
        answering, "metrics", "note", and at the end "summary" (requests, \
        skipped_lines, by_replica). Groups are 1-based. --headless prints one \
        line per state change and per request. See docs/watch.md.
        """)

    @Option(name: .customLong("admin"), help: ArgumentHelp("An admin URL to poll (GET URL/config_dump), optionally NAME=URL (repeatable).", valueName: "[name=]url"))
    var admin: [String] = []

    @Option(name: .customLong("access-log"), help: ArgumentHelp("An access log to follow, or - for standard input, optionally NAME=FILE (repeatable).", valueName: "[name=]file|-"))
    var accessLog: [String] = []

    @Option(name: .customLong("metrics"), help: ArgumentHelp("A Prometheus /metrics URL to scrape, optionally NAME=URL (repeatable).", valueName: "[name=]url"))
    var metrics: [String] = []

    @Option(name: .customLong("records"), parsing: .upToNextOption, help: ArgumentHelp("Records files of drive or run (--record) to follow as they grow, e.g. a sharded run's, optionally NAME=FILE.", valueName: "[name=]file"))
    var records: [String] = []

    @Option(help: ArgumentHelp("Time between admin polls and metrics scrapes (500ms, 2s).", valueName: "duration"))
    var interval = "500ms"

    @Option(name: .customLong("assume-retry-after"), help: ArgumentHelp("With access logs alone: how long a 429 is taken to evict its provider (shown as inferred).", valueName: "duration"))
    var assumeRetryAfter = "60s"

    @Option(help: ArgumentHelp("Quit by itself after this long (30s, 10m); --json then prints its summary.", valueName: "duration"))
    var duration: String?

    @Flag(help: "Do not draw: one line per state change and per request.")
    var headless = false

    @Flag(help: "Do not draw: JSON lines (provider, request, replica, note, and a summary at the end).")
    var json = false

    @Option(help: ArgumentHelp("Theme: a bundled name (default, light, high-contrast, mono) or a theme file.", valueName: "name|file"))
    var theme: String?

    @Flag(help: "Draw with ASCII only (no box drawing or block characters).")
    var ascii = false

    static func seconds(_ text: String, flag: String, range: ClosedRange<Double>) throws -> Double {
        guard let ns = Units.parseDuration(text) else { throw ValidationError("\(flag) \(text): not a duration; write 500ms, 2s, 1m") }
        let s = Double(ns) / 1e9
        guard range.contains(s) else { throw ValidationError("\(flag) \(text): must be between \(Format.latency(range.lowerBound)) and \(Format.latency(range.upperBound))") }
        return s
    }

    func validate() throws {
        _ = try Self.seconds(interval, flag: "--interval", range: 0.05...3600)
        _ = try Self.seconds(assumeRetryAfter, flag: "--assume-retry-after", range: 0...86_400)
        if let duration { _ = try Self.seconds(duration, flag: "--duration", range: 0.1...31_536_000) }
        if headless && json { throw ValidationError("give --headless or --json, not both") }
        do { _ = try WatchSources.parse(admin: admin, accessLog: accessLog, metrics: metrics, records: records) } catch { throw ValidationError(error.description) }
    }

    func run() throws {
        let sources = try WatchSources.parse(admin: admin, accessLog: accessLog, metrics: metrics, records: records)
        let intervalSeconds = try Self.seconds(interval, flag: "--interval", range: 0.05...3600)
        let retryAfter = try Self.seconds(assumeRetryAfter, flag: "--assume-retry-after", range: 0...86_400)
        let limit = try duration.map { try Self.seconds($0, flag: "--duration", range: 0.1...31_536_000) }
        let inbox = WatchInbox()
        let start = ContinuousClock.now
        let engine = WatchEngine(sources: sources, interval: intervalSeconds, start: start) { inbox.push($0) }
        let quit = QuitFlag()
        let interactive = !headless && !json && isatty(1) == 1 && isatty(0) == 1
        var state = WatchState(assumeRetryAfter: retryAfter)
        state.reportingReplicas = Set(sources.admins.map(\.replica))
        state.wallStart = Date().timeIntervalSince1970
        var order: [String] = []
        for s in sources.admins + sources.logs + sources.metrics where !order.contains(s.replica) { order.append(s.replica) }
        let registered = state.register(replicas: order)
        engine.run()

        if interactive {
            try runDashboard(sources: sources, engine: engine, inbox: inbox, state: &state, start: start, limit: limit, quit: quit, registered: registered)
        } else {
            let signals = QuitSignals(flag: quit)
            defer { signals.cancel() }
            while quit.value == nil {
                let now = engine.now
                if let limit, now >= limit { break }
                // Standard input alone, and it ended: nothing more will come.
                let ended = engine.allEnded
                Self.emit(&state, inbox.take(), now: now, json: json)
                if ended { break }
                Thread.sleep(forTimeInterval: 0.1)
            }
            engine.stop()
            Self.emit(&state, inbox.take(), now: engine.now, json: json)
            if json {
                Self.write(WatchLines.summary(state, dropped: inbox.dropped) + "\n")
            } else {
                Self.write(Self.summaryText(state))
            }
        }
        // Standard input may still be blocked in a read: end here rather than wait for it.
        Glibc.exit(0)
    }

    /// Applies what came in and prints its lines in one write.
    static func emit(_ state: inout WatchState, _ events: [WatchEvent], now: Double, json: Bool) {
        var out = ""
        func add(_ outputs: [WatchOutput]) {
            for o in outputs {
                if let line = json ? WatchLines.json(o) : WatchLines.headless(o) { out += line + "\n" }
            }
        }
        for e in events { add(state.apply(e)) }
        add(state.tick(now: now))
        if !out.isEmpty { Self.write(out) }
    }

    static func summaryText(_ s: WatchState) -> String {
        var out = "\nwatch summary: \(s.totalRequests) requests, \(s.totalSkipped) skipped lines\n"
        for name in s.replicas {
            let c = s.counts[name] ?? ReplicaCounts()
            let codes = c.byStatus.sorted { $0.key < $1.key }.map { "\($0.key == 0 ? "none" : String($0.key))x\($0.value)" }.joined(separator: " ")
            out += "  \(name): \(c.requests) requests\(codes.isEmpty ? "" : " (" + codes + ")"), \(c.skippedLines) skipped lines, \(c.polls) polls (\(c.unreachablePolls) unreachable)\n"
        }
        return out
    }

    func runDashboard(sources: WatchSources, engine: WatchEngine, inbox: WatchInbox, state: inout WatchState,
                      start: ContinuousClock.Instant, limit: Double?, quit: QuitFlag, registered: [WatchOutput]) throws {
        var settings = try themes()
        settings.ascii = ascii
        settings.duration = limit
        let feed = Feed(start: start)
        let labInbox = Inbox()
        for o in registered { for e in Feed.events(o) { labInbox.push(e) } }
        let described = (sources.admins + sources.logs + sources.metrics).map { "\($0.replica)=\($0.location)" }
        var model = LabModel(scenario: "watch", gatewayURL: described.prefix(3).joined(separator: " ") + (described.count > 3 ? " ..." : ""),
                             plan: "watching", rate: 0)
        model.paused = false
        // The dashboard's keys for traffic have nothing to drive here: an idle driver answers them.
        let idle = Driver(configuration: DriverConfiguration(workload: .openLoop([Phase(.constant(rate: 0))]), mix: RequestMix([RequestSpec.chat(url: "http://127.0.0.1:9")])),
                          sink: RecordSink(record: { _ in }))
        let runner = DashboardRunner(model: model, settings: settings, feed: feed, inbox: labInbox, driver: idle, hooks: nil, quit: quit)
        let signals = QuitSignals(flag: quit)
        // The pump: watch events through the one state, out as the dashboard's events.
        let pumpState = PumpBox(state)
        let pump = Thread {
            while quit.value == nil {
                let events = inbox.take()
                pumpState.with { s in
                    var outputs: [WatchOutput] = []
                    for e in events { outputs += s.apply(e) }
                    outputs += s.tick(now: engine.now)
                    for o in outputs { for e in Feed.events(o) { labInbox.push(e) } }
                }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        pump.start()
        runner.runInteractive()
        engine.stop()
        signals.cancel()
        state = pumpState.value
        Self.write(Self.summaryText(state))
    }
}

extension WatchCommand {
    /// The chosen theme first, then the other bundled ones for `t`; NO_COLOR forces mono.
    func themes() throws -> DashboardSettings {
        let noColor = !(ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
        let themes: [Theme]
        do {
            themes = try Themes.cycle(chosen: theme, noColor: noColor)
        } catch {
            throw ValidationError("--theme \(theme ?? ""): \(error)")
        }
        var settings = DashboardSettings(themes: themes)
        settings.monochrome = noColor
        return settings
    }

    /// Writes to stdout with write(2) (see Console): a hangup or a closed pipe must not trap.
    static func write(_ text: String) { Console.write(text) }
}

/// The watch state shared by the pump thread and the end of the run.
final class PumpBox: @unchecked Sendable {
    private let lock = NSLock()
    private var state: WatchState
    init(_ s: WatchState) { state = s }
    func with(_ body: (inout WatchState) -> Void) { lock.lock(); body(&state); lock.unlock() }
    var value: WatchState { lock.lock(); defer { lock.unlock() }; return state }
}

import ArgumentParser
import Foundation
import TUI
import Watch

/// `run --target URL --admin URL`: drive a gateway that is not ours and show its providers'
/// state from its own admin port, merged with what the driver sees.
struct RemoteAdminFlags: ParsableArguments {
    @Option(name: .customLong("admin"), help: ArgumentHelp("With --target: poll this admin URL's /config_dump (agentgateway's port 15000, or ours) and show each provider's state from it; [NAME=]URL, repeatable for replicas.", valueName: "[name=]url"))
    var admin: [String] = []

    @Option(name: .customLong("admin-interval"), help: ArgumentHelp("With --admin: time between polls.", valueName: "duration"))
    var adminInterval = "500ms"

    func validate(target: String?) throws {
        guard !admin.isEmpty else { return }
        guard target != nil else { throw ValidationError("--admin URL goes with --target URL (a lab of ours shows its state already)") }
        _ = try WatchCommand.seconds(adminInterval, flag: "--admin-interval", range: 0.05...3600)
        do { _ = try WatchSources.parse(admin: admin, accessLog: [], metrics: []) } catch { throw ValidationError(error.description) }
    }

    /// Starts the polls; their provider states go to the dashboard's inbox as the same
    /// replica events `watch` gives. nil when no --admin was given.
    func start(inbox: Inbox, feed: Feed) throws -> WatchEngine? {
        guard !admin.isEmpty else { return nil }
        let sources = try WatchSources.parse(admin: admin, accessLog: [], metrics: [])
        let interval = try WatchCommand.seconds(adminInterval, flag: "--admin-interval", range: 0.05...3600)
        let box = PumpBox(WatchState())
        let engine = WatchEngine(sources: sources, interval: interval, start: feed.start) { event in
            box.with { state in
                for o in state.apply(event) {
                    for e in Feed.events(o) { inbox.push(e) }
                }
            }
        }
        engine.run()
        return engine
    }
}

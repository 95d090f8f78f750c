import Driver
import Foundation
import Gateway
import Lab
import Wire

/// What the dashboard may do to the lab it watches; absent with `run --target`.
public struct LabHooks: Sendable {
    public var runtime: GatewayRuntime
    public var backend: Int
    /// Each stand-in's current behaviour, by its short name.
    public var faults: @Sendable () -> [String: String]
    /// Switches a stand-in to a fault step; returns the new behaviour's short name.
    public var setFault: @Sendable (_ standIn: String, _ step: FaultStep) async throws -> String

    public init(runtime: GatewayRuntime, backend: Int, faults: @escaping @Sendable () -> [String: String],
                setFault: @escaping @Sendable (String, FaultStep) async throws -> String) {
        self.runtime = runtime
        self.backend = backend
        self.faults = faults
        self.setFault = setFault
    }
}

/// How the dashboard runs.
public struct DashboardSettings: Sendable {
    /// The themes `t` cycles through; the first is shown first.
    public var themes: [Theme]
    public var ascii = false
    /// The charts' dots when the terminal is UTF-8: braille, or blocks for fonts without braille.
    public var chartDots: ChartDots = .braille
    /// The charts' window to start with, in seconds.
    public var chartWindow = Charts.defaultWindow
    public var fps = 10
    /// NO_COLOR: attributes only, whatever the theme.
    public var monochrome = false
    /// Quit by itself after this many seconds (benchmarks, tests).
    public var duration: Double?
    /// Headless: seconds between status lines.
    public var statusEvery = 5.0

    public init(themes: [Theme]) {
        self.themes = themes.isEmpty ? [Theme.mono] : themes
    }
}

/// Set from signal handlers, read by the dashboard loop.
public final class QuitFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var reason: String?
    public init() {}
    public func set(_ why: String) { lock.lock(); if reason == nil { reason = why }; lock.unlock() }
    public var value: String? { lock.lock(); defer { lock.unlock() }; return reason }
}

/// SIGINT, SIGTERM and SIGHUP end the dashboard the way `q` does, so the terminal is restored.
public final class QuitSignals: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []

    public init(flag: QuitFlag) {
        for (sig, name) in [(SIGINT, "interrupt"), (SIGTERM, "terminate"), (SIGHUP, "hangup")] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { flag.set(name) }
            source.resume()
            sources.append(source)
        }
    }

    public func cancel() {
        for s in sources { s.cancel() }
        sources = []
        for sig in [SIGINT, SIGTERM, SIGHUP] { signal(sig, SIG_DFL) }
    }
}

/// The dashboard's loop: events in from the inbox, keys in from the terminal, frames out.
public final class DashboardRunner: @unchecked Sendable {
    let settings: DashboardSettings
    let feed: Feed
    let inbox: Inbox
    let driver: Driver
    let hooks: LabHooks?
    let quit: QuitFlag
    /// The lab's steps, when it has some and they run.
    let steps: StepRunner?
    let stepByKey: Bool
    /// Sends `s`'s one request (the lab's own); the traffic driver when nil.
    let sender: Driver?
    public private(set) var state: DashboardState

    public init(model: LabModel, settings: DashboardSettings, feed: Feed, inbox: Inbox, driver: Driver, hooks: LabHooks?, quit: QuitFlag,
                steps: StepRunner? = nil, stepByKey: Bool = false, sender: Driver? = nil) {
        self.settings = settings
        self.feed = feed
        self.inbox = inbox
        self.driver = driver
        self.hooks = hooks
        self.quit = quit
        self.steps = steps
        self.stepByKey = stepByKey
        self.sender = sender
        var model = model
        if let steps { model.steps = StepPanel(steps.view(), stepByKey: stepByKey) }
        self.state = DashboardState(model: model, themeIndex: 0, themeCount: settings.themes.count)
        self.state.chartWindow = Charts.windows.contains(settings.chartWindow) ? settings.chartWindow : Charts.defaultWindow
    }

    /// Starts the steps (unless presenter mode waits for `n`).
    func startSteps() {
        guard let steps, !stepByKey else { return }
        narrate(steps.start(), steps)
    }

    /// Takes in what happened since the last turn, and the balancer's view now.
    func refresh(now: Double) {
        for event in inbox.take() { state.model.apply(event) }
        if let steps { narrate(steps.poll(), steps) }
        refreshProviders(now: now)
    }

    /// The steps' actions as lines in the events panel, and the lab panel as it stands.
    func narrate(_ actions: [StepAction], _ steps: StepRunner) {
        let now = feed.now
        for line in Narration.lines(for: actions, steps: steps.steps) {
            state.model.apply(.step(line.text, passed: line.passed, at: now))
        }
        state.model.apply(.steps(StepPanel(steps.view(), stepByKey: stepByKey)))
    }

    /// The balancer's view now, and the time.
    func refreshProviders(now: Double) {
        if let hooks {
            let snapshot = hooks.runtime.snapshot(backend: hooks.backend)
            let plan = hooks.runtime.plan.backends[hooks.backend]
            let faults = hooks.faults()
            // The layout (names, stand-ins, their faults) once; provider state only through the
            // same replica events `watch` produces, so both mean the same by evicted and active.
            if state.model.groups.isEmpty { state.model.apply(.providers(feed.providers(snapshot, backend: plan, faults: faults))) }
            state.model.apply(.replica(feed.replica(snapshot, backend: plan, at: now)))
            for p in state.model.allProviders {
                if let standIn = p.standIn, let fault = faults[standIn], fault != p.fault {
                    state.model.apply(.fault(standIn: standIn, behavior: fault, at: now))
                }
            }
        }
        state.model.apply(.tick(now: now))
    }

    func execute(_ commands: [DashboardCommand]) {
        let now = feed.now
        for command in commands {
            switch command {
            case .setPaused(let paused):
                if paused { driver.pause() } else { driver.resume() }
                state.model.apply(.traffic(paused: paused, rate: state.model.rate, at: now))
            case .setScale(let factor):
                driver.setScale(factor)
                state.model.apply(.scale(factor, at: now))
            case .sendOne:
                (sender ?? driver).sendOne()
            case .nextStep:
                if let steps { narrate(steps.next(), steps) }
            case .previousStep:
                if let steps { narrate(steps.previous(), steps) }
            case .setFault(let standIn, let step):
                guard let hooks else { continue }
                let inbox = self.inbox, feed = self.feed
                Task {
                    do {
                        let name = try await hooks.setFault(standIn, step)
                        inbox.push(.fault(standIn: standIn, behavior: name, at: feed.now))
                    } catch {
                        inbox.push(.note("could not set stand-in \(standIn) to \(step.rawValue): \(error)", at: feed.now))
                    }
                }
            case .returnNow(let group, let index):
                hooks?.runtime.returnNow(backend: hooks!.backend, provider: ProviderIndex(group: group, index: index))
            case .clearCounters:
                state.model.apply(.clear(at: now))
            case .quit:
                quit.set("q")
            }
        }
    }

    /// Runs the ncurses dashboard until `q`, a signal or the duration. The terminal is
    /// restored on every way out of this function.
    public func runInteractive() {
        // Declared before the terminal's restore, so it prints after it.
        var frameTimes: FrameTimes? = FrameTimes.enabled() ? FrameTimes() : nil
        defer { if let frameTimes { FileHandle.standardError.write(Data((frameTimes.line + "\n").utf8)) } }
        let terminal = Terminal()
        terminal.start()
        defer { terminal.restore() }
        let glyphs = settings.ascii || !Terminal.localeIsUTF8() ? Glyphs.plain : Glyphs.unicode
        var themeIndex = state.themeIndex
        terminal.apply(settings.themes[themeIndex], monochrome: settings.monochrome)
        let interval = 1.0 / Double(max(1, min(60, settings.fps)))
        var nextFrame = feed.now
        var dirty = true
        startSteps()
        while quit.value == nil {
            let now = feed.now
            if let duration = settings.duration, now >= duration { quit.set("duration"); break }
            if now >= nextFrame || dirty {
                let t0 = frameTimes == nil ? 0 : Self.seconds()
                let c0 = frameTimes == nil ? 0 : FrameTimes.threadCPU()
                refresh(now: now)
                let t1 = frameTimes == nil ? 0 : Self.seconds()
                if state.themeIndex != themeIndex {
                    themeIndex = state.themeIndex
                    terminal.apply(settings.themes[themeIndex], monochrome: settings.monochrome)
                }
                let size = terminal.size
                var options = RenderOptions(glyphs: glyphs, selected: state.focus == .providers ? state.selected : nil, showHelp: state.showHelp, themeName: settings.themes[themeIndex].name,
                                            chartWindow: state.chartWindow, chartDots: settings.chartDots)
                options.selectedRequestAt = state.focus == .requests ? state.selectedRequestAt : nil
                options.waterfall = state.waterfall.map { $0.trace?.spans ?? [] }
                let screen = Dashboard.render(state.model, width: size.width, height: size.height, options: options)
                let t2 = frameTimes == nil ? 0 : Self.seconds()
                terminal.present(screen)
                if frameTimes != nil { frameTimes!.add(refresh: t1 - t0, render: t2 - t1, present: Self.seconds() - t2, cpu: FrameTimes.threadCPU() - c0) }
                dirty = false
                nextFrame = max(nextFrame + interval, now)
            }
            // Keys are read as they come; a key's effect shows at the latest one frame later.
            let wait = max(0, Int(((nextFrame - feed.now) * 1000).rounded(.up)))
            guard let input = terminal.read(timeoutMs: min(wait, 100)) else { continue }
            switch input {
            case .resize:
                terminal.invalidate()
                dirty = true
            case .key(let key):
                execute(state.handle(key))
                // A key that changes only the screen (help, selection, theme) redraws at once.
                if state.showHelp || key == .escape || Keymap.action(for: key).map(Self.redrawsAtOnce) == true { dirty = true }
            case .other:
                break
            }
        }
    }

    /// A monotonic clock in seconds, for frame times.
    static func seconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    static func redrawsAtOnce(_ action: KeyAction) -> Bool {
        switch action {
        case .toggleHelp, .selectNext, .selectPrevious, .nextTheme, .togglePause, .faster, .slower, .clearCounters, .nextStep, .previousStep,
             .switchFocus, .openWaterfall, .shorterWindow, .longerWindow: return true
        default: return false
        }
    }

    /// Runs without a terminal: one line per request, a status line every few seconds.
    public func runHeadless(write: (String) -> Void) {
        var lastStatus = 0.0
        if let steps, !stepByKey {
            for line in Narration.lines(for: steps.start(), steps: steps.steps) { write(Format.stamp(feed.now) + "  step   " + line.text + "\n") }
        }
        while quit.value == nil {
            let now = feed.now
            if let duration = settings.duration, now >= duration { quit.set("duration"); break }
            var out = ""
            for event in inbox.take() {
                state.model.apply(event)
                if let line = Headless.line(for: event) { out += line + "\n" }
            }
            if let steps {
                for line in Narration.lines(for: steps.poll(), steps: steps.steps) { out += Format.stamp(now) + "  step   " + line.text + "\n" }
            }
            state.model.apply(.tick(now: now))
            if now - lastStatus >= settings.statusEvery {
                lastStatus = now
                refreshProviders(now: now)
                out += Headless.status(state.model) + "\n"
            }
            if !out.isEmpty { write(out) }
            Thread.sleep(forTimeInterval: 0.1)
        }
        var out = ""
        for event in inbox.take() {
            state.model.apply(event)
            if let line = Headless.line(for: event) { out += line + "\n" }
        }
        refreshProviders(now: feed.now)
        out += Headless.status(state.model) + "\n"
        write(out)
    }
}

/// The steps' actions in words, for the events panel and headless lines. Pure.
public enum Narration {
    public static func lines(for actions: [StepAction], steps: [LabScript.Step]) -> [(text: String, passed: Bool?)] {
        var out: [(String, Bool?)] = []
        var ended: [Int: Bool] = [:]
        for action in actions {
            switch action {
            case .begin(let i):
                out.append(("step \(i + 1)/\(steps.count) begins: \(steps[i].name)", nil))
            case .end(let verdict):
                let failed = verdict.verdicts.filter { !$0.holds }
                // n or N cut it short: its window was the presenter's, not the step's.
                let cut = verdict.ending == .next
                var text = "step \(verdict.step + 1)/\(steps.count) " + (cut ? "cut short" : failed.isEmpty ? "held" : "failed")
                text += " (\(verdict.requests) request\(verdict.requests == 1 ? "" : "s"))"
                if let f = failed.first { text += ": " + (f.isUntil ? "until " : "") + f.expectation.text + ", measured " + f.measured }
                out.append((text, cut ? nil : failed.isEmpty))
                ended[verdict.step] = failed.isEmpty
            case .waitForNext(let after):
                out.append(("press n for step \(after + 2)/\(steps.count)", nil))
            case .finished:
                out.append(("lab finished: the lab panel and the report at q have every step's verdict", nil))
            case .setBehavior(let standIn, let behavior):
                out.append(("stand-in \(standIn) set to \(behavior.shortName)", nil))
            case .returnProvider(let provider):
                out.append(("\(provider) returned by the step", nil))
            case .send(let n):
                out.append(("step sends \(n) request\(n == 1 ? "" : "s")", nil))
            }
        }
        return out
    }
}

/// The lines headless mode prints. Pure.
public enum Headless {
    public static func line(for event: LabEvent) -> String? {
        switch event {
        case .request(let r):
            var line = Format.stamp(r.at) + "  " + (r.status.map(String.init) ?? "ERR") + "  " + (r.provider ?? "-")
            if let g = r.group { line += " (group \(g + 1))" }
            line += "  " + Format.latency(r.latency)
            if let t = r.tokens { line += "  \(t) tokens" }
            if r.attempts.count > 1 {
                // As the gateway wrote it: the same writer.
                line += "  attempts " + FailoverAttempts.value(r.attempts.map {
                    FailoverAttempts.Entry(provider: $0.provider, outcome: $0.status.map { .status($0) } ?? .init(word: $0.failure ?? "error"))
                })
            }
            if let e = r.error { line += "  error: " + e }
            return line
        case .health(let h):
            let e = EventEntry(at: h.at, subject: h.provider, kind: {
                switch h.kind {
                case .evicted(let d, let reason, let times): return .evicted(duration: d, reason: reason, times: times)
                case .returned: return .returned
                case .probeSent: return .probeSent
                case .probeFailed: return .probeFailed
                }
            }())
            return Format.stamp(h.at) + "  event  " + Panels.eventText(e).0
        case .fault(let standIn, let behavior, let at):
            return Format.stamp(at) + "  event  stand-in \(standIn) now \(behavior)"
        case .note(let text, let at):
            return Format.stamp(at) + "  event  " + text
        default:
            return nil
        }
    }

    public static func status(_ m: LabModel) -> String {
        var parts = ["status " + Format.clock(m.now), "\(m.total) requests", "achieved " + Format.rate(m.achievedRate)]
        let codes = m.statusTotals.sorted { $0.key < $1.key }.map { "\($0.key == 0 ? "error" : String($0.key))x\($0.value)" }
        if !codes.isEmpty { parts.append(codes.joined(separator: " ")) }
        if let active = m.activeGroup { parts.append("active group \(active + 1)") } else if !m.groups.isEmpty { parts.append("all evicted") }
        for p in m.allProviders {
            var s = "\(p.name) \(p.stateWord)"
            if case .evicted(let until, let reason) = p.state { s += " \(Format.countdown(until - m.now)) (\(reason))" }
            parts.append(s)
        }
        return parts.joined(separator: "  |  ")
    }
}

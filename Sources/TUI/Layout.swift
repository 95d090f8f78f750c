import Watch
import Wire
import Gateway
/// How to draw, beyond the model.
public struct RenderOptions: Sendable {
    public var glyphs: Glyphs
    /// Index into the model's providers of the selected one, if any.
    public var selected: Int?
    public var showHelp: Bool
    public var themeName: String
    /// The selected request row (by its time) when the requests panel has the focus.
    public var selectedRequestAt: Double?
    /// The spans of the request whose waterfall is open (drawn over the panels).
    public var waterfall: [SpanRecord]?
    /// The charts' time window in seconds (`<` and `>`).
    public var chartWindow: Int
    /// How the charts draw their dots when the glyphs are not ASCII (then they are ASCII too).
    public var chartDots: ChartDots

    public init(glyphs: Glyphs = .unicode, selected: Int? = 0, showHelp: Bool = false, themeName: String = "default",
                chartWindow: Int = Charts.defaultWindow, chartDots: ChartDots? = nil) {
        self.glyphs = glyphs
        self.selected = selected
        self.showHelp = showHelp
        self.themeName = themeName
        self.chartWindow = chartWindow
        self.chartDots = chartDots ?? .braille
    }
}

/// Lays the panels out on a Screen of the size the terminal has. Pure.
public enum Dashboard {
    public static let minimumWidth = 80
    public static let minimumHeight = 24

    /// Draws a whole frame.
    public static func render(_ model: LabModel, width: Int, height: Int, options: RenderOptions = RenderOptions()) -> Screen {
        var screen = Screen(width: width, height: height)
        guard width >= minimumWidth, height >= minimumHeight else {
            drawTooSmall(&screen)
            return screen
        }
        let g = options.glyphs
        Panels.header(&screen, model, y: 0, glyphs: g)
        let groupsHeight = min(Panels.groupsHeight(model), height - 2 - 9 - 4)
        Panels.groups(&screen, model, Rect(x: 0, y: 1, width: width, height: groupsHeight), options: options)
        // The lab panel (a lab with steps) under the groups, as tall as its text, leaving the
        // middle row at least 9 rows and the events 4.
        let labHeight = Panels.labHeight(model, width: width, limit: max(0, min(8, height - 2 - groupsHeight - 9 - 4)))
        if labHeight > 0 {
            Panels.lab(&screen, model, Rect(x: 0, y: 1 + groupsHeight, width: width, height: labHeight), glyphs: g)
        }
        let rest = height - 2 - groupsHeight - labHeight
        let eventsHeight = max(4, min(12, rest * 3 / 10))
        let middleHeight = rest - eventsHeight
        let middleY = 1 + groupsHeight + labHeight
        // The charts' column widens on wide terminals; the request log keeps about 96 columns.
        let rightWidth = min(max(32, width * 2 / 5), max(56, width - 96))
        let requests = Rect(x: 0, y: middleY, width: width - rightWidth, height: middleHeight)
        Panels.requests(&screen, model, requests, glyphs: g)
        Waterfall.markSelectedRequest(&screen, model, requests, selectedAt: options.selectedRequestAt, glyphs: g)
        let codes = model.statusTotals.count
        let statusHeight = min(max(5, 3 + codes + (codes > 1 ? 1 : 0)), middleHeight - 4)
        Panels.statusCodes(&screen, model, Rect(x: requests.maxX, y: middleY, width: rightWidth, height: statusHeight), glyphs: g)
        Charts.column(&screen, model, Rect(x: requests.maxX, y: middleY + statusHeight, width: rightWidth, height: middleHeight - statusHeight),
                      window: options.chartWindow, dots: g.ascii ? .ascii : options.chartDots, glyphs: g)
        Panels.events(&screen, model, Rect(x: 0, y: middleY + middleHeight, width: width, height: eventsHeight), glyphs: g)
        Panels.footer(&screen, y: height - 1, themeName: options.themeName, steps: model.steps != nil)
        if let spans = options.waterfall { Waterfall.draw(&screen, spans: spans, glyphs: g) }
        if options.showHelp { Panels.help(&screen, glyphs: g) }
        return screen
    }

    static func drawTooSmall(_ screen: inout Screen) {
        let lines = [
            "failover-lab needs at least \(minimumWidth)x\(minimumHeight);",
            "this terminal is \(screen.width)x\(screen.height).",
            "Enlarge it, or press q to quit.",
        ]
        let top = max(0, (screen.height - lines.count) / 2)
        for (i, line) in lines.enumerated() {
            let x = max(0, (screen.width - line.count) / 2)
            screen.put(line, x: x, y: top + i, role: i == 0 ? .warning : .text)
        }
    }
}

/// The panels, each drawing into its rectangle.
enum Panels {
    static func header(_ s: inout Screen, _ m: LabModel, y: Int, glyphs g: Glyphs) {
        s.fill(Rect(x: 0, y: y, width: s.width, height: 1), with: Cell(" ", role: .header))
        let state = m.paused ? " PAUSED " : "running "
        let help = "? help "
        let achieved = Format.rate(m.achievedRate)
        // From the fullest header to the most compact: the first that fits is drawn.
        // The plan's rate times the scale when it is a constant rate, else the plan and its scale.
        let pace = m.rate > 0 ? Format.rate(m.rate * m.scale) : (m.scale == 1 ? m.plan : m.plan + " " + Format.scale(m.scale))
        let full = m.rate > 0 ? "\(m.plan) \(pace)" : pace
        let variants: [(brand: Bool, parts: [String], help: Bool)] = [
            (true, [m.scenario, m.gatewayURL, "\(full), achieved \(achieved)", Format.clock(m.now)], true),
            (true, [m.scenario, m.gatewayURL, "\(pace) (got \(achieved))", Format.clock(m.now)], false),
            (false, [m.scenario, m.gatewayURL, "\(pace) (got \(achieved))", Format.clock(m.now)], false),
            (false, [m.scenario, m.gatewayURL, pace, Format.clock(m.now)], false),
        ]
        func length(_ v: (brand: Bool, parts: [String], help: Bool)) -> Int {
            let body = (v.brand ? ["failover-lab"] : []) + v.parts
            return 1 + body.joined(separator: g.separator).unicodeScalars.count + g.separator.count + state.count + (v.help ? help.count + 1 : 0)
        }
        let v = variants.first { length($0) <= s.width } ?? variants[variants.count - 1]
        var x = 1
        if v.brand { x += s.put("failover-lab", x: x, y: y, role: .header, attributes: .bold) }
        for (i, part) in v.parts.enumerated() {
            x += s.put((i == 0 && !v.brand ? "" : g.separator) + part, x: x, y: y, role: .header)
        }
        x += s.put(g.separator, x: x, y: y, role: .header)
        s.put(state, x: x, y: y, role: m.paused ? .paused : .header, attributes: m.paused ? [.bold, .reverse] : .bold)
        if v.help { s.put(help, x: s.width - help.count, y: y, role: .header) }
    }

    static func footer(_ s: inout Screen, y: Int, themeName: String, steps: Bool = false) {
        s.fill(Rect(x: 0, y: y, width: s.width, height: 1), with: Cell(" ", role: .footer))
        var hints = Keymap.hints
        // The step keys matter only to a lab with steps.
        if !steps { hints.removeAll { $0.word == "step" } }
        func length(_ h: [(keys: String, word: String)]) -> Int { h.reduce(1) { $0 + $1.keys.count + $1.word.count + 3 } }
        // On a narrow terminal the less needed hints go first; help and quit always stay.
        for word in ["focus", "trace", "window", "theme", "clear", "send", "return"] where length(hints) > s.width {
            hints.removeAll { $0.word == word }
        }
        var x = 1
        for (keys, word) in hints {
            if x + keys.count + word.count + 1 > s.width { break }
            x += s.put(keys, x: x, y: y, role: .key, attributes: .bold)
            x += s.put(" " + word + "  ", x: x, y: y, role: .footer)
        }
        let theme = "theme: " + themeName + " "
        if x + theme.count < s.width { s.put(theme, x: s.width - theme.count, y: y, role: .footer) }
    }

    // MARK: priority groups

    static func groupsHeight(_ m: LabModel) -> Int {
        if m.external && m.replicaNames.isEmpty { return 2 + 1 + max(1, m.seenProviders.count) }
        return 2 + metricsLines(m).count + m.groups.reduce(0) { $0 + 1 + 2 * max(1, $1.count) }
    }

    static func groups(_ s: inout Screen, _ m: LabModel, _ r: Rect, options: RenderOptions) {
        let g = options.glyphs
        s.box(r, title: groupsTitle(m), glyphs: g)
        let inner = r.inner
        var y = inner.y
        if m.external && m.replicaNames.isEmpty {
            s.put("Not our gateway: providers as the responses name them (x-failover-attempts).", x: inner.x + 1, y: y, role: .dim, maxWidth: inner.width - 1)
            y += 1
            for name in m.seenProviders where y < inner.maxY {
                let c = m.providerCounts[name] ?? ClassCounts()
                var x = inner.x + 2
                x += s.put(Format.pad(name, 24), x: x, y: y, role: .text, maxWidth: inner.maxX - x)
                countsLine(&s, c, x: x, y: y, limit: inner.maxX)
                y += 1
            }
            return
        }
        for line in metricsLines(m) where y < inner.maxY {
            s.put(line, x: inner.x + 1, y: y, role: .dim, maxWidth: inner.width - 1)
            y += 1
        }
        let active = m.activeGroup
        var flat = 0
        for (gi, group) in m.groups.enumerated() {
            guard y < inner.maxY else { return }
            var x = inner.x + 1
            x += s.put("Group \(gi + 1)", x: x, y: y, role: .title, attributes: .bold)
            if m.replicaNames.count > 1 {
                replicaGroupLine(&s, m, group: gi, x: x, y: y, limit: inner.maxX)
            } else if gi == active {
                s.put("  ACTIVE", x: x, y: y, role: .active, attributes: .bold)
            } else if active == nil && gi == 0 {
                s.put("  ALL EVICTED: failing open to group 1", x: x, y: y, role: .evicted, attributes: .bold)
            } else if let active, gi > active {
                s.put("  standby", x: x, y: y, role: .standby)
            } else {
                s.put("  evicted: skipped until a provider returns", x: x, y: y, role: .evicted)
            }
            y += 1
            for p in group {
                guard y + 1 < inner.maxY + 1 else { return }
                providerRows(&s, p, now: m.now, counts: m.providerCounts[p.name] ?? ClassCounts(), selected: options.selected == flat, x: inner.x, y: y, width: inner.width, glyphs: g)
                y += 2
                flat += 1
            }
        }
    }

    static func stateRole(_ p: ProviderStatus) -> Role {
        switch p.state {
        case .healthy: return .healthy
        case .evicted: return .evicted
        case .probing: return .probing
        }
    }

    static func providerRows(_ s: inout Screen, _ p: ProviderStatus, now: Double, counts: ClassCounts, selected: Bool, x x0: Int, y: Int, width: Int, glyphs g: Glyphs) {
        let limit = x0 + width
        var x = x0 + 1
        s.put(selected ? String(g.pointer) : " ", x: x, y: y, role: .selected, attributes: .bold)
        x += 2
        let role = stateRole(p)
        let dot: Unicode.Scalar
        switch p.state {
        case .healthy: dot = g.dotHealthy
        case .evicted: dot = g.dotEvicted
        case .probing: dot = g.dotProbing
        }
        s.put(String(dot), x: x, y: y, role: role, attributes: .bold)
        x += 2
        x += s.put(Format.pad(p.name, 22), x: x, y: y, role: selected ? .selected : .text, attributes: selected ? .reverse : [], maxWidth: 22)
        x += 1
        if p.replicas.count > 1 {
            replicaStates(&s, p.replicas, now: now, x: x, y: y, limit: limit)
        } else {
        x += s.put(Format.pad(p.stateWord, 8), x: x, y: y, role: role, attributes: .bold)
        if p.inferred { x += s.put("(inferred) ", x: x, y: y, role: .dim, maxWidth: limit - x) }
        switch p.state {
        case .evicted(let until, let reason):
            let total = max(p.evictedFor ?? 1, 0.001)
            let remaining = max(0, until - now)
            let barWidth = 12
            let filled = min(barWidth, max(0, Int(((total - remaining) / total * Double(barWidth)).rounded(.down))))
            s.put(String(repeating: String(g.barFull), count: filled), x: x, y: y, role: .bar)
            s.put(String(repeating: String(g.barEmpty), count: barWidth - filled), x: x + filled, y: y, role: .barEmpty)
            x += barWidth
            x += s.put(" " + Format.pad(remaining > 0 ? Format.countdown(remaining) : "due", 4, right: true), x: x, y: y, role: .evicted, attributes: .bold, maxWidth: limit - x)
            x += s.put("  " + reason, x: x, y: y, role: .evicted, maxWidth: limit - x)
            x += s.put("  evicted x\(p.timesEvicted)", x: x, y: y, role: .dim, maxWidth: limit - x)
        case .probing(let reason):
            x += s.put("probe let through after " + reason, x: x, y: y, role: .probing, maxWidth: limit - x)
            x += s.put("  evicted x\(p.timesEvicted)", x: x, y: y, role: .dim, maxWidth: limit - x)
        case .healthy:
            if p.timesEvicted > 0 { x += s.put("evicted x\(p.timesEvicted) so far", x: x, y: y, role: .dim, maxWidth: limit - x) }
        }
        }
        if let standIn = p.standIn {
            let text = "stand-in " + standIn + ": " + (p.fault ?? "?")
            let at = limit - 1 - text.unicodeScalars.count
            if at > x + 1 {
                s.put("stand-in " + standIn + ": ", x: at, y: y, role: .dim)
                s.put(p.fault ?? "?", x: at + text.unicodeScalars.count - (p.fault ?? "?").unicodeScalars.count, y: y, role: p.fault == "healthy" ? .healthy : .warning)
            }
        }
        // Second line: the numbers.
        x = x0 + 7
        let health = p.health.map { Format.fixed($0, 2) } ?? "-"
        let latency = p.latency.map(Format.latency) ?? "-"
        x += s.put("health " + Format.pad(health, 5), x: x, y: y + 1, role: .dim, maxWidth: limit - x)
        x += s.put("  latency " + Format.pad(latency, 7), x: x, y: y + 1, role: .dim, maxWidth: limit - x)
        x += s.put("  in-flight " + Format.pad(String(p.inFlight), 3), x: x, y: y + 1, role: .dim, maxWidth: limit - x)
        countsLine(&s, counts, x: x + 2, y: y + 1, limit: limit)
    }

    /// `gw-a /metrics: failover 200 12/s 429 0.5/s`, one line per replica scraped.
    static func metricsLines(_ m: LabModel) -> [String] {
        m.replicaNames.compactMap { name in
            guard let rates = m.replicaSnapshots[name]?.requestRates, !rates.isEmpty else { return nil }
            return name + " /metrics: " + WatchLines.rateText(rates)
        }
    }

    /// `Priority groups`, and with several replicas who reports (and who does not answer).
    static func groupsTitle(_ m: LabModel) -> String {
        guard m.replicaNames.count > 1 || m.replicaNames.contains(where: { m.unreachableReason($0) != nil }) else { return "Priority groups" }
        let names = m.replicaNames.map { m.unreachableReason($0) != nil ? $0 + " UNREACHABLE" : $0 }
        return "Priority groups" + (m.shownBackend.map { " of " + $0 } ?? "") + ", replicas: " + names.joined(separator: ", ")
    }

    /// A group's header with several replicas: where it is the active group.
    static func replicaGroupLine(_ s: inout Screen, _ m: LabModel, group gi: Int, x x0: Int, y: Int, limit: Int) {
        var x = x0 + 2
        for name in m.replicaNames {
            guard x < limit else { return }
            let active = m.activeGroup(on: name)
            let word: String, role: Role
            if m.unreachableReason(name) != nil { word = "unreachable"; role = .warning }
            else if active == gi { word = "ACTIVE"; role = .active }
            else if active == nil { word = gi == 0 ? "all evicted" : "-"; role = .evicted }
            else if gi > active! { word = "standby"; role = .standby }
            else { word = "skipped"; role = .evicted }
            x += s.put(name + " ", x: x, y: y, role: .dim, maxWidth: limit - x)
            x += s.put(word + "  ", x: x, y: y, role: role, attributes: role == .active ? .bold : [], maxWidth: limit - x)
        }
    }

    /// `gw-a evicted 41s  gw-b healthy`: the provider's state on each replica, side by side.
    static func replicaStates(_ s: inout Screen, _ states: [ReplicaState], now: Double, x x0: Int, y: Int, limit: Int) {
        var x = x0
        for r in states {
            guard x < limit - 1 else { return }
            x += s.put(r.replica + " ", x: x, y: y, role: .dim, maxWidth: limit - x)
            var word: String
            let role: Role
            switch r.state {
            case .healthy: word = "healthy"; role = .healthy
            case .evicted(let until, _):
                let left = until - now
                word = "evicted " + (left > 0 ? Format.countdown(left) : "due"); role = .evicted
            case .probing: word = r.probeSent ? "probing (probe out)" : "probing"; role = .probing
            }
            if r.inferred { word += " (inferred)" }
            if r.unreachable { word += " (unreachable)" }
            x += s.put(word + "   ", x: x, y: y, role: r.unreachable ? .dim : role, attributes: .bold, maxWidth: limit - x)
        }
    }

    static func countsLine(_ s: inout Screen, _ c: ClassCounts, x x0: Int, y: Int, limit: Int) {
        var x = x0
        let items: [(String, Int, Role)] = [("2xx", c.ok, .status2xx), ("429", c.rateLimited, .status429), ("4xx", c.clientError, .status4xx),
                                            ("5xx", c.serverError, .status5xx), ("err", c.noResponse, .statusError)]
        for (label, n, role) in items {
            guard x < limit - 1 else { return }
            x += s.put(label + " ", x: x, y: y, role: n > 0 ? role : .dim, maxWidth: limit - x)
            x += s.put(Format.pad(String(n), 4) + " ", x: x, y: y, role: n > 0 ? .text : .dim, maxWidth: limit - x)
        }
    }

    // MARK: requests

    static func requests(_ s: inout Screen, _ m: LabModel, _ r: Rect, glyphs g: Glyphs) {
        s.box(r, title: "Requests (\(m.total))", glyphs: g)
        let inner = r.inner
        guard inner.height > 1 else { return }
        let x0 = inner.x + 1
        let limit = inner.maxX
        let columns = Format.pad("time", 8) + Format.pad("code", 5) + Format.pad("provider", 17) + " " + Format.pad("gr", 2) + " "
            + Format.pad("lat", 6, right: true) + " " + Format.pad("tok", 4, right: true) + "  attempts"
        s.put(columns, x: x0, y: inner.y, role: .dim, maxWidth: limit - x0)
        let rows = m.requests.suffix(inner.height - 1)
        if rows.isEmpty {
            s.put("waiting for the first request...", x: x0, y: inner.y + 1, role: .dim, maxWidth: limit - x0)
            return
        }
        for (i, req) in rows.enumerated() {
            let y = inner.y + 1 + i
            var x = x0
            x += s.put(Format.pad(Format.stamp(req.at), 7) + " ", x: x, y: y, role: .dim, maxWidth: limit - x)
            x += s.put(Format.pad(req.status.map(String.init) ?? "ERR", 5), x: x, y: y, role: Role.status(req.status), attributes: .bold, maxWidth: limit - x)
            x += s.put(Format.pad(req.provider ?? "-", 17), x: x, y: y, role: .text, maxWidth: min(17, limit - x))
            x += s.put(" " + Format.pad(req.group.map { "g\($0 + 1)" } ?? "-", 2), x: x, y: y, role: .dim, maxWidth: limit - x)
            x += s.put(" " + Format.pad(Format.latency(req.latency), 6, right: true), x: x, y: y, role: .latency, maxWidth: limit - x)
            x += s.put(" " + Format.pad(req.tokens.map(String.init) ?? "-", 4, right: true), x: x, y: y, role: .dim, maxWidth: limit - x)
            x += 2
            if req.attempts.count > 1 {
                for (ai, a) in req.attempts.enumerated() {
                    guard x < limit else { break }
                    if ai > 0 { x += s.put(g.arrow, x: x, y: y, role: .dim, maxWidth: limit - x) }
                    x += s.put(a.provider + "=", x: x, y: y, role: .text, maxWidth: limit - x)
                    x += s.put(a.status.map(String.init) ?? a.failure ?? "error", x: x, y: y, role: Role.status(a.status), maxWidth: limit - x)
                }
            } else if let e = req.error {
                s.put(e, x: x, y: y, role: .statusError, maxWidth: limit - x)
            }
        }
    }

    // MARK: status codes

    static func statusCodes(_ s: inout Screen, _ m: LabModel, _ r: Rect, glyphs g: Glyphs) {
        s.box(r, title: r.width >= 42 ? "Status codes: since start, last 10s" : "Status codes", glyphs: g)
        let inner = r.inner
        guard inner.height > 0 else { return }
        let x0 = inner.x + 1
        let columns = Format.pad("code", 5) + Format.pad("total", 7, right: true) + Format.pad("%", 5, right: true)
            + Format.pad("10s", 7, right: true) + Format.pad("%", 5, right: true)
        s.put(columns, x: x0, y: inner.y, role: .dim, maxWidth: inner.width - 1)
        let recent = m.recentCodes(window: 10)
        let recentTotal = recent.values.reduce(0, +)
        let codes = Set(m.statusTotals.keys).union(recent.keys).sorted { a, b in (a == 0 ? Int.max : a) < (b == 0 ? Int.max : b) }
        if codes.isEmpty {
            s.put("none yet", x: x0, y: inner.y + 1, role: .dim)
            return
        }
        var y = inner.y + 1
        for code in codes {
            guard y < inner.maxY else { return }
            let n = m.statusTotals[code] ?? 0
            let rn = recent[code] ?? 0
            var x = x0
            x += s.put(Format.pad(code == 0 ? "error" : String(code), 5), x: x, y: y, role: Role.status(code == 0 ? nil : code), attributes: .bold)
            x += s.put(Format.pad(String(n), 7, right: true), x: x, y: y, role: .text)
            x += s.put(Format.pad(Format.percent(n, m.total), 5, right: true), x: x, y: y, role: .dim)
            x += s.put(Format.pad(String(rn), 7, right: true), x: x, y: y, role: .text)
            s.put(Format.pad(Format.percent(rn, recentTotal), 5, right: true), x: x, y: y, role: .dim, maxWidth: inner.maxX - x)
            y += 1
        }
        if codes.count > 1 && y < inner.maxY {
            var x = x0
            x += s.put(Format.pad("all", 5), x: x, y: y, role: .dim)
            x += s.put(Format.pad(String(m.total), 7, right: true), x: x, y: y, role: .text)
            x += s.put(Format.pad("", 5), x: x, y: y, role: .dim)
            s.put(Format.pad(String(recentTotal), 7, right: true), x: x, y: y, role: .text)
        }
    }

    // MARK: events

    static func eventText(_ e: EventEntry) -> (String, Role) {
        let who = e.subject ?? ""
        switch e.kind {
        case .evicted(let d, let reason, let times):
            return ("\(who) evicted for \(Format.countdown(d)) (\(reason), eviction \(times))", .evicted)
        case .returned: return ("\(who) returned to rotation", .healthy)
        case .probeSent: return ("\(who) eviction over: probe request sent", .probing)
        case .probeFailed: return ("\(who) probe failed", .evicted)
        case .fault(let behavior): return ("stand-in \(who) now \(behavior)", .warning)
        case .note(let text): return (text, .dim)
        case .step(let text, let passed): return (text, passed.map { $0 ? .healthy : .evicted } ?? .header)
        }
    }

    static func events(_ s: inout Screen, _ m: LabModel, _ r: Rect, glyphs g: Glyphs) {
        s.box(r, title: "Events", glyphs: g)
        let inner = r.inner
        let rows = m.events.suffix(inner.height)
        if rows.isEmpty {
            s.put("no evictions yet", x: inner.x + 1, y: inner.y, role: .dim)
            return
        }
        for (i, e) in rows.enumerated() {
            let y = inner.y + i
            var x = inner.x + 1
            x += s.put(Format.pad(Format.stamp(e.at), 8) + "  ", x: x, y: y, role: .dim)
            let (text, role) = eventText(e)
            s.put(text, x: x, y: y, role: role, maxWidth: inner.maxX - x)
        }
    }

    // MARK: help

    static func help(_ s: inout Screen, glyphs g: Glyphs) {
        let keyColumn = Keymap.table.map { $0.label.count }.max() ?? 8
        let lines = Keymap.table.map { ($0.label, $0.help) }
        let width = min(s.width - 4, max(60, keyColumn + 4 + (lines.map { $0.1.count }.max() ?? 0) + 2))
        let height = min(s.height - 2, lines.count + 6)
        let r = Rect(x: (s.width - width) / 2, y: (s.height - height) / 2, width: width, height: height)
        s.fill(r)
        s.box(r, title: "Keys (? or esc closes)", glyphs: g)
        var y = r.y + 1
        for (label, text) in lines where y < r.maxY - 3 {
            s.put(Format.pad(label, keyColumn), x: r.x + 2, y: y, role: .key, attributes: .bold)
            s.put(text, x: r.x + 4 + keyColumn, y: y, role: .text, maxWidth: r.maxX - 1 - (r.x + 4 + keyColumn))
            y += 1
        }
        y = r.maxY - 3
        var x = r.x + 2
        x += s.put("states: ", x: x, y: y, role: .dim)
        x += s.put(String(g.dotHealthy) + " healthy  ", x: x, y: y, role: .healthy)
        x += s.put(String(g.dotEvicted) + " evicted  ", x: x, y: y, role: .evicted)
        s.put(String(g.dotProbing) + " probing", x: x, y: y, role: .probing)
        s.put("Group 1 is used while any of its providers is in rotation.", x: r.x + 2, y: y + 1, role: .dim, maxWidth: r.width - 3)
    }
}

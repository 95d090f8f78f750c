import Driver
import Lab

/// The lab panel's content: the running step of a lab's script, what it says, and its
/// expectations so far. A value built from the step runner's view, so the panel is pure.
public struct StepPanel: Sendable, Hashable {
    /// An expectation's mark: held or failed once its step ended; while the step runs, one
    /// that holds so far is `holds` and one that does not yet is `undecided`.
    public enum Mark: Sendable, Hashable {
        case holds, fails, undecided
    }

    public struct Check: Sendable, Hashable {
        public var text: String
        public var measured: String
        public var mark: Mark

        public init(text: String, measured: String, mark: Mark) {
            self.text = text
            self.measured = measured
            self.mark = mark
        }
    }

    /// The step shown, from 0 (nil before the first began).
    public var index: Int?
    public var count: Int
    public var name = ""
    public var say: String?
    public var elapsed = 0.0
    /// Its `for:` or `timeout:`, seconds.
    public var length: Double?
    public var checks: [Check] = []
    /// `--step-by-key`: the step shown has ended; the next waits for `n`.
    public var waiting = false
    public var finished = false
    /// Steps that have ended, and of those the ones whose expectations all held.
    public var ended = 0
    public var held = 0
    public var stepByKey = false

    public init(index: Int?, count: Int) {
        self.index = index
        self.count = count
    }

    /// The panel for the step runner's view.
    public init(_ view: StepRunner.View, stepByKey: Bool) {
        self.init(index: view.index, count: view.count)
        name = view.name
        say = view.say
        elapsed = view.elapsed
        length = view.length
        waiting = view.waitingAfter != nil
        finished = view.finished
        self.stepByKey = stepByKey
        let verdicts = view.verdicts.compactMap { $0 }
        ended = verdicts.count
        held = verdicts.filter(\.passed).count
        if let after = view.waitingAfter, let verdict = view.verdicts[after] {
            checks = verdict.verdicts.map { Check(text: Self.text($0), measured: $0.measured, mark: $0.holds ? .holds : .fails) }
        } else {
            checks = view.live.map { Check(text: Self.text($0), measured: $0.measured, mark: $0.holds ? .holds : .undecided) }
        }
    }

    static func text(_ v: ExpectationVerdict) -> String {
        (v.isUntil ? "until " : "") + v.expectation.text
    }
}

extension Panels {
    /// The lab panel's height for this width: its text wrapped, at most `limit` rows.
    static func labHeight(_ m: LabModel, width: Int, limit: Int) -> Int {
        guard let panel = m.steps else { return 0 }
        let inner = max(1, width - 4)
        let rows = 1 + (panel.finished ? 0 : min(3, wrap(panel.say ?? "", width: inner).count)) + checkLines(panel, width: inner)
        return max(3, min(limit, rows + 2))
    }

    static func checkLines(_ panel: StepPanel, width: Int) -> Int {
        guard !panel.checks.isEmpty, !panel.finished else { return 0 }
        var lines = 1, x = 0
        for c in panel.checks {
            let n = c.text.count + c.measured.count + 6
            if x > 0 && x + n > width { lines += 1; x = 0 }
            x += n
        }
        return lines
    }

    /// Words to lines of at most `width` characters; a longer word is cut.
    static func wrap(_ text: String, width: Int) -> [String] {
        guard width > 0 else { return [] }
        var lines: [String] = []
        var line = ""
        for word in text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }) {
            let w = String(word.prefix(width))
            if line.isEmpty {
                line = w
            } else if line.count + 1 + w.count <= width {
                line += " " + w
            } else {
                lines.append(line)
                line = w
            }
        }
        if !line.isEmpty { lines.append(line) }
        return lines
    }

    static func lab(_ s: inout Screen, _ m: LabModel, _ r: Rect, glyphs g: Glyphs) {
        guard let p = m.steps, r.height >= 3 else { return }
        var title = "Lab"
        if p.finished {
            title += g.separator + "done: \(p.held) of \(p.count) steps held"
        } else if let i = p.index {
            title += g.separator + "step \(i + 1) of \(p.count)"
            if p.waiting {
                title += g.separator + (i + 1 < p.count ? "press n for step \(i + 2)" : "last step")
            } else if let length = p.length {
                title += g.separator + Format.fixed(min(p.elapsed, length), 1) + "s of " + Format.fixed(length, length < 10 ? 1 : 0) + "s"
            }
        } else {
            title += g.separator + (p.stepByKey ? "press n to start" : "starting")
        }
        s.box(r, title: title, glyphs: g)
        let inner = r.inner
        let x0 = inner.x + 1
        let width = max(1, inner.width - 2)
        var y = inner.y
        func room() -> Bool { y < inner.maxY }
        if p.finished {
            let all = p.held == p.count
            s.put(all ? "Every step held its expectations." : "\(p.count - p.held) step(s) did not hold; the events list which. q prints the verdicts.",
                  x: x0, y: y, role: all ? .healthy : .evicted, maxWidth: width)
            return
        }
        guard p.index != nil else {
            s.put(p.stepByKey ? "Presenter mode: n starts the first step, N goes back." : "The first step starts now.", x: x0, y: y, role: .dim, maxWidth: width)
            return
        }
        s.put(p.name, x: x0, y: y, role: .title, attributes: .bold, maxWidth: width)
        y += 1
        let checkRows = checkLines(p, width: width)
        let sayRoom = max(0, inner.maxY - y - checkRows)
        var said = wrap(p.say ?? "", width: width)
        if said.count > min(3, sayRoom) {
            said = Array(said.prefix(min(3, sayRoom)))
            if var last = said.popLast() {
                if last.count >= width { last = String(last.prefix(width - 1)) }
                said.append(last + (g.ascii ? "~" : "…"))
            }
        }
        for line in said where room() {
            s.put(line, x: x0, y: y, role: .text, maxWidth: width)
            y += 1
        }
        guard room(), !p.checks.isEmpty else { return }
        var x = x0
        for c in p.checks {
            let mark: String, role: Role
            switch c.mark {
            case .holds: (mark, role) = (g.ascii ? "ok" : "✓", .healthy)
            case .fails: (mark, role) = (g.ascii ? "FAIL" : "✗", .evicted)
            case .undecided: (mark, role) = (g.ascii ? ".." : "…", .dim)
            }
            let n = mark.count + 1 + c.text.count + 3 + c.measured.count + 2
            if x > x0 && x + n > x0 + width {
                y += 1
                x = x0
                guard room() else { return }
            }
            x += s.put(mark + " ", x: x, y: y, role: role, attributes: .bold)
            x += s.put(c.text, x: x, y: y, role: .text, maxWidth: x0 + width - x)
            x += s.put(" (" + c.measured + ")  ", x: x, y: y, role: .dim, maxWidth: x0 + width - x)
        }
    }
}

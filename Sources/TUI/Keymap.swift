/// A key the dashboard reacts to.
public enum Key: Hashable, Sendable {
    case char(Character)
    case up, down, left, right
    case escape

    /// The key's name in the help overlay; `Key(name:)` reads it back.
    public var name: String {
        switch self {
        case .char(" "): return "space"
        case .char("\t"): return "tab"
        case .char("\n"): return "enter"
        case .char(let c): return String(c)
        case .up: return "up"
        case .down: return "down"
        case .left: return "left"
        case .right: return "right"
        case .escape: return "esc"
        }
    }

    public init?(name: String) {
        switch name {
        case "space": self = .char(" ")
        case "tab": self = .char("\t")
        case "enter": self = .char("\n")
        case "up": self = .up
        case "down": self = .down
        case "left": self = .left
        case "right": self = .right
        case "esc": self = .escape
        default:
            guard name.count == 1, let c = name.first else { return nil }
            self = .char(c)
        }
    }
}

/// What a key does.
public enum KeyAction: Sendable, Hashable, CaseIterable {
    case togglePause
    case faster
    case slower
    case sendOne
    case selectPrevious
    case selectNext
    /// Moves the focus between the providers and the requests panel (what up/down select).
    case switchFocus
    /// Opens the selected request's trace waterfall.
    case openWaterfall
    case cycleFault
    case returnNow
    case nextTheme
    case shorterWindow
    case longerWindow
    case clearCounters
    case nextStep
    case previousStep
    case toggleHelp
    case quit
}

/// One row of the keymap: the keys, what they do, the help text and the footer's word.
public struct KeyBinding: Sendable, Hashable {
    public var keys: [Key]
    public var action: KeyAction
    public var help: String
    /// The word in the footer's hint line.
    public var hint: String

    /// The keys as the help overlay lists them, e.g. `up left`.
    public var label: String { keys.map(\.name).joined(separator: " ") }
}

/// The one keymap table: the key handler and the `?` overlay both read it.
public enum Keymap {
    public static let table: [KeyBinding] = [
        KeyBinding(keys: [.char(" ")], action: .togglePause, help: "pause or resume traffic", hint: "pause"),
        KeyBinding(keys: [.char("+"), .char("=")], action: .faster, help: "more traffic: a higher rate, or the plan faster", hint: "rate"),
        KeyBinding(keys: [.char("-")], action: .slower, help: "less traffic", hint: "rate"),
        KeyBinding(keys: [.char("s")], action: .sendOne, help: "send one request now", hint: "send"),
        KeyBinding(keys: [.up, .left, .char("k")], action: .selectPrevious, help: "select the previous provider (or request, after tab)", hint: "select"),
        KeyBinding(keys: [.down, .right, .char("j")], action: .selectNext, help: "select the next provider (or request, after tab)", hint: "select"),
        KeyBinding(keys: [.char("\t")], action: .switchFocus, help: "move the focus between providers and requests", hint: "focus"),
        KeyBinding(keys: [.char("\n")], action: .openWaterfall, help: "open the selected request's trace waterfall (esc closes)", hint: "trace"),
        KeyBinding(keys: [.char("f")], action: .cycleFault, help: "stand-in fault: healthy, 429, 5xx, slow, slow model, down", hint: "fault"),
        KeyBinding(keys: [.char("r")], action: .returnNow, help: "return the selected provider now (end its eviction)", hint: "return"),
        KeyBinding(keys: [.char("t")], action: .nextTheme, help: "next theme", hint: "theme"),
        KeyBinding(keys: [.char("<"), .char(",")], action: .shorterWindow, help: "charts: a shorter time window (down to 10s)", hint: "window"),
        KeyBinding(keys: [.char(">"), .char(".")], action: .longerWindow, help: "charts: a longer time window (up to 10m)", hint: "window"),
        KeyBinding(keys: [.char("c")], action: .clearCounters, help: "clear counters", hint: "clear"),
        KeyBinding(keys: [.char("n")], action: .nextStep, help: "next lab step (presenter mode: start it)", hint: "step"),
        KeyBinding(keys: [.char("N")], action: .previousStep, help: "run the lab step before again", hint: "step"),
        KeyBinding(keys: [.char("?"), .escape], action: .toggleHelp, help: "show or hide this help", hint: "help"),
        KeyBinding(keys: [.char("q")], action: .quit, help: "quit and print the report (Ctrl-C does too)", hint: "quit"),
    ]

    /// The action bound to a key, if any.
    public static func action(for key: Key) -> KeyAction? {
        // Enter arrives as CR or LF, depending on the terminal's mode.
        let key = key == .char("\r") ? .char("\n") : key
        return table.first { $0.keys.contains(key) }?.action
    }

    /// The footer's hints: the first key of each binding with its word, actions sharing a word merged.
    public static var hints: [(keys: String, word: String)] {
        var out: [(String, String)] = []
        for b in table {
            let first = b.keys[0]
            let shown = first == .up ? "arrows" : first == .down ? nil : first.name
            if let i = out.firstIndex(where: { $0.1 == b.hint }) {
                if let shown, !out[i].0.contains("arrows") { out[i].0 += "/" + shown }
            } else if let shown {
                out.append((shown, b.hint))
            }
        }
        return out
    }
}

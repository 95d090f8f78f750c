/// A key the dashboard reacts to.
public enum Key: Hashable, Sendable {
    case char(Character)
    case up, down, left, right
    case escape

    /// The key's name in the help overlay; `Key(name:)` reads it back.
    public var name: String {
        switch self {
        case .char(" "): return "space"
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
    case cycleFault
    case returnNow
    case nextTheme
    case shorterWindow
    case longerWindow
    case clearCounters
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
        KeyBinding(keys: [.char("+"), .char("=")], action: .faster, help: "raise the rate", hint: "rate"),
        KeyBinding(keys: [.char("-")], action: .slower, help: "lower the rate", hint: "rate"),
        KeyBinding(keys: [.char("s")], action: .sendOne, help: "send one request now", hint: "send"),
        KeyBinding(keys: [.up, .left, .char("k")], action: .selectPrevious, help: "select the previous provider", hint: "select"),
        KeyBinding(keys: [.down, .right, .char("j")], action: .selectNext, help: "select the next provider", hint: "select"),
        KeyBinding(keys: [.char("f")], action: .cycleFault, help: "cycle the selected provider's stand-in: healthy, 429, 5xx, slow, down", hint: "fault"),
        KeyBinding(keys: [.char("r")], action: .returnNow, help: "return the selected provider now (end its eviction)", hint: "return"),
        KeyBinding(keys: [.char("t")], action: .nextTheme, help: "next theme", hint: "theme"),
        KeyBinding(keys: [.char("<"), .char(",")], action: .shorterWindow, help: "charts: a shorter time window (down to 10s)", hint: "window"),
        KeyBinding(keys: [.char(">"), .char(".")], action: .longerWindow, help: "charts: a longer time window (up to 10m)", hint: "window"),
        KeyBinding(keys: [.char("c")], action: .clearCounters, help: "clear counters", hint: "clear"),
        KeyBinding(keys: [.char("?"), .escape], action: .toggleHelp, help: "show or hide this help", hint: "help"),
        KeyBinding(keys: [.char("q")], action: .quit, help: "quit and print the report (Ctrl-C does too)", hint: "quit"),
    ]

    /// The action bound to a key, if any.
    public static func action(for key: Key) -> KeyAction? {
        table.first { $0.keys.contains(key) }?.action
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

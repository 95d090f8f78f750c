import CShims
import Foundation

/// The ncurses terminal: it copies finished Screens out, changed cells only, and reads keys.
/// Only one exists at a time; `restore()` is safe to call more than once and from `atexit`.
public final class Terminal {
    private var previous: Screen?
    private var pairs: [Role: (pair: Int, attributes: attr_t)] = [:]
    public private(set) var colors = 0
    public private(set) var active = false

    /// True when the locale's character set is UTF-8 (box drawing and blocks can be used).
    public static func localeIsUTF8() -> Bool {
        guard let codeset = nl_langinfo(nl_item(CODESET)) else { return false }
        let name = String(cString: codeset).uppercased()
        return name == "UTF-8" || name == "UTF8"
    }

    public init() {}

    /// Takes over the terminal. Call `restore()` on every way out.
    public func start() {
        setlocale(LC_ALL, "")
        fl_nc_set_escdelay(25)
        _ = initscr()
        active = true
        Terminal.registerExitRestore()
        cbreak()
        noecho()
        _ = fl_nc_keypad(1)
        curs_set(0)
        // ncurses sets COLORS in start_color(): read before it, it is 0 and nothing is coloured.
        if has_colors() {
            start_color()
            use_default_colors()
            colors = Int(fl_nc_colors())
        }
    }

    /// Sets up one colour pair per role for a theme, mapped to this terminal's colours.
    public func apply(_ theme: Theme, monochrome: Bool = false) {
        pairs = [:]
        for (i, role) in Role.allCases.enumerated() {
            let style = theme.style(role)
            var attrs = Terminal.attributes(style.attributes)
            var pair = 0
            if colors > 0 && !monochrome {
                pair = i + 1
                let (fg, bg) = ColorMapping.pair(style, colors: colors)
                _ = fl_nc_init_pair(Int32(pair), Int32(fg), Int32(bg))
                // On 8 colours a bright colour loses its brightness: bold brings it back.
                if colors < 16, case .index(let n) = style.foreground, (8..<16).contains(n) { attrs |= fl_nc_attr_bold() }
            }
            pairs[role] = (pair, attrs)
        }
        previous = nil  // every cell's look may have changed
    }

    static func attributes(_ a: CellAttributes) -> attr_t {
        var out = fl_nc_attr_normal()
        if a.contains(.bold) { out |= fl_nc_attr_bold() }
        if a.contains(.dim) { out |= fl_nc_attr_dim() }
        if a.contains(.underline) { out |= fl_nc_attr_underline() }
        if a.contains(.reverse) { out |= fl_nc_attr_reverse() }
        return out
    }

    /// The terminal's size now.
    public var size: (width: Int, height: Int) {
        var rows: Int32 = 0, cols: Int32 = 0
        fl_nc_screen_size(&rows, &cols)
        return (Int(cols), Int(rows))
    }

    /// Forgets what is on the terminal, so the next frame repaints every cell (after a resize).
    public func invalidate() {
        previous = nil
        fl_nc_erase_all()
    }

    /// Copies a finished frame out: only the cells that changed since the last one.
    public func present(_ screen: Screen) {
        guard active else { return }
        for change in screen.changes(from: previous) {
            let look = pairs[change.cell.role] ?? (0, fl_nc_attr_normal())
            let attrs = look.attributes | Terminal.attributes(change.cell.attributes)
            // The bottom-right cell scrolls some terminals; ncurses handles it, but skip the error.
            _ = fl_nc_put_wide(Int32(change.y), Int32(change.x), wchar_t(bitPattern: change.cell.char.value), attrs, Int16(look.pair))
        }
        _ = fl_nc_move(Int32(max(0, screen.height - 1)), 0)
        _ = fl_nc_refresh()
        previous = screen
    }

    /// A key read within `timeoutMs` milliseconds, `.resize` after a resize, or nil.
    public enum Input: Equatable {
        case key(Key)
        case other
        case resize
    }

    public func read(timeoutMs: Int) -> Input? {
        fl_nc_timeout(Int32(timeoutMs))
        var value: UInt32 = 0
        let result = fl_nc_get_wch(&value)
        if result == fl_nc_err() { return nil }
        if result == fl_nc_key_code_yes() {
            let code = Int32(bitPattern: value)
            switch code {
            case fl_nc_key_resize(): return .resize
            case fl_nc_key_up(): return .key(.up)
            case fl_nc_key_down(): return .key(.down)
            case fl_nc_key_left(): return .key(.left)
            case fl_nc_key_right(): return .key(.right)
            default: return .other
            }
        }
        if value == 27 { return .key(.escape) }
        guard let scalar = Unicode.Scalar(value) else { return .other }
        return .key(.char(Character(scalar)))
    }

    /// Gives the terminal back as it was.
    public func restore() {
        guard active else { return }
        active = false
        Terminal.restoreNow()
    }

    // MARK: restore on every way out

    private nonisolated(unsafe) static var exitHookRegistered = false
    nonisolated(unsafe) static var cursesActive = false

    private static func registerExitRestore() {
        cursesActive = true
        guard !exitHookRegistered else { return }
        exitHookRegistered = true
        atexit { Terminal.restoreNow() }
    }

    static func restoreNow() {
        guard cursesActive else { return }
        cursesActive = false
        curs_set(1)
        endwin()
    }
}

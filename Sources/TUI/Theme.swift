import Foundation
import Lab
import Yams

/// A colour as a theme names it.
public enum ThemeColor: Sendable, Hashable, CustomStringConvertible {
    /// The terminal's own foreground or background.
    case terminalDefault
    /// An xterm-256 index (0-15 are the basic and bright colours).
    case index(Int)
    case rgb(UInt8, UInt8, UInt8)

    public static let basicNames = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"]

    /// Reads `default`, a basic name (`red`, `bright-red`), `0`-`255` or `#rrggbb`.
    public init?(parsing text: String) {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        if t == "default" || t == "none" { self = .terminalDefault; return }
        if let i = ThemeColor.basicNames.firstIndex(of: t) { self = .index(i); return }
        if t.hasPrefix("bright-"), let i = ThemeColor.basicNames.firstIndex(of: String(t.dropFirst(7))) { self = .index(i + 8); return }
        if let n = Int(t), (0...255).contains(n) { self = .index(n); return }
        if t.hasPrefix("#"), t.count == 7, let v = UInt32(t.dropFirst(), radix: 16) {
            self = .rgb(UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF))
            return
        }
        return nil
    }

    public var description: String {
        switch self {
        case .terminalDefault: return "default"
        case .index(let i) where i < 8: return ThemeColor.basicNames[i]
        case .index(let i) where i < 16: return "bright-" + ThemeColor.basicNames[i - 8]
        case .index(let i): return String(i)
        case .rgb(let r, let g, let b):
            return "#" + [r, g, b].map { v in let h = String(v, radix: 16); return h.count == 1 ? "0" + h : h }.joined()
        }
    }

    /// The colour's red, green, blue (xterm's values for indexed colours); nil for the default.
    public var components: (Int, Int, Int)? {
        switch self {
        case .terminalDefault: return nil
        case .rgb(let r, let g, let b): return (Int(r), Int(g), Int(b))
        case .index(let i): return ColorMapping.xterm(i)
        }
    }
}

/// How one role looks.
public struct RoleStyle: Sendable, Hashable {
    public var foreground: ThemeColor = .terminalDefault
    public var background: ThemeColor = .terminalDefault
    public var attributes: CellAttributes = []

    public init(foreground: ThemeColor = .terminalDefault, background: ThemeColor = .terminalDefault, attributes: CellAttributes = []) {
        self.foreground = foreground
        self.background = background
        self.attributes = attributes
    }

    public var description: String {
        var parts = ["fg " + foreground.description, "bg " + background.description]
        if attributes.contains(.bold) { parts.append("bold") }
        if attributes.contains(.dim) { parts.append("dim") }
        if attributes.contains(.underline) { parts.append("underline") }
        if attributes.contains(.reverse) { parts.append("reverse") }
        return parts.joined(separator: " ")
    }
}

/// A theme error: file, line and key, and what is wrong.
public struct ThemeError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var line: Int
    public var key: String
    public var message: String
    public var description: String { line > 0 ? "\(file):\(line): \(key): \(message)" : "\(file): \(message)" }
}

/// A palette and a style per role, read from `themes/NAME.yaml`.
public struct Theme: Sendable {
    public var name: String
    public var styles: [Role: RoleStyle]

    public init(name: String, styles: [Role: RoleStyle]) {
        self.name = name
        self.styles = styles
    }

    /// The style of a role; roles a theme leaves out look like `text`.
    public func style(_ role: Role) -> RoleStyle {
        styles[role] ?? styles[.text] ?? RoleStyle()
    }

    /// The theme `NO_COLOR` forces and the fallback when no theme file can be found: attributes only.
    public static let mono: Theme = {
        var s: [Role: RoleStyle] = [:]
        for role in Role.allCases { s[role] = RoleStyle() }
        s[.title] = RoleStyle(attributes: .bold)
        s[.header] = RoleStyle(attributes: .reverse)
        s[.footer] = RoleStyle(attributes: .reverse)
        s[.key] = RoleStyle(attributes: [.reverse, .bold])
        s[.dim] = RoleStyle(attributes: .dim)
        s[.border] = RoleStyle(attributes: .dim)
        s[.active] = RoleStyle(attributes: .bold)
        s[.standby] = RoleStyle(attributes: .dim)
        s[.evicted] = RoleStyle(attributes: .bold)
        s[.probing] = RoleStyle(attributes: .underline)
        s[.status429] = RoleStyle(attributes: [.bold, .underline])
        s[.status5xx] = RoleStyle(attributes: [.bold, .underline])
        s[.statusError] = RoleStyle(attributes: [.bold, .underline])
        s[.status2xx] = RoleStyle()
        s[.warning] = RoleStyle(attributes: .bold)
        s[.paused] = RoleStyle(attributes: [.bold, .reverse])
        s[.barEmpty] = RoleStyle(attributes: .dim)
        // Chart series told apart by attributes: group 1 plain, group 2 bold, and so on.
        s[.group2] = RoleStyle(attributes: .bold)
        s[.group3] = RoleStyle(attributes: .underline)
        s[.group4] = RoleStyle(attributes: [.bold, .underline])
        s[.latencyP99] = RoleStyle(attributes: .bold)
        return Theme(name: "mono", styles: s)
    }()

    /// Reads a theme file. Errors name the file, line and key.
    public static func load(path: String) throws -> Theme {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ThemeError(file: path, line: 0, key: "-", message: "cannot read the theme file (\(error.localizedDescription))")
        }
        let fallbackName = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        return try parse(text, file: path, defaultName: fallbackName)
    }

    public static func parse(_ text: String, file: String, defaultName: String) throws -> Theme {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ThemeError(file: file, line: Self.line(of: error), key: "-", message: "not valid YAML: \(error)")
        }
        guard let root, case .mapping(let top) = root else {
            throw ThemeError(file: file, line: 1, key: "-", message: "a theme is a mapping with name, palette and roles")
        }
        func line(_ n: Node) -> Int { n.mark?.line ?? 0 }
        var name = defaultName
        var palette: [String: ThemeColor] = [:]
        var rolesNode: (Node, Node)?
        for (k, v) in top {
            let key = k.string ?? "?"
            switch key {
            case "name":
                guard let s = v.string else { throw ThemeError(file: file, line: line(v), key: key, message: "must be a string") }
                name = s
            case "description":
                break
            case "palette":
                guard case .mapping(let entries) = v else { throw ThemeError(file: file, line: line(v), key: key, message: "must be a mapping of colour names to colours") }
                for (pk, pv) in entries {
                    let pname = pk.string ?? "?"
                    guard let value = pv.string, let color = ThemeColor(parsing: value) else {
                        throw ThemeError(file: file, line: line(pv), key: "palette.\(pname)", message: "bad colour '\(pv.string ?? "")': use default, a name (red, bright-red), 0-255 or #rrggbb")
                    }
                    palette[pname] = color
                }
            case "roles":
                rolesNode = (k, v)
            default:
                throw ThemeError(file: file, line: line(k), key: key, message: "unknown key; a theme has name, description, palette and roles")
            }
        }
        guard let (rolesKey, roles) = rolesNode else {
            throw ThemeError(file: file, line: 1, key: "roles", message: "missing: a theme needs roles")
        }
        guard case .mapping(let roleEntries) = roles else {
            throw ThemeError(file: file, line: line(rolesKey), key: "roles", message: "must be a mapping of role names to styles")
        }
        func color(_ node: Node, key: String) throws -> ThemeColor {
            guard let s = node.string else { throw ThemeError(file: file, line: line(node), key: key, message: "must be a colour") }
            if let c = palette[s] { return c }
            if let c = ThemeColor(parsing: s) { return c }
            throw ThemeError(file: file, line: line(node), key: key, message: "bad colour '\(s)': not in the palette, and not default, a name (red, bright-red), 0-255 or #rrggbb")
        }
        var styles: [Role: RoleStyle] = [:]
        for (rk, rv) in roleEntries {
            let roleName = rk.string ?? "?"
            guard let role = Role(rawValue: roleName) else {
                let known = Role.allCases.map(\.rawValue).joined(separator: ", ")
                throw ThemeError(file: file, line: line(rk), key: "roles.\(roleName)", message: "unknown role; known roles: \(known)")
            }
            var style = RoleStyle()
            switch rv {
            case .scalar:
                style.foreground = try color(rv, key: "roles.\(roleName)")
            case .mapping(let fields):
                for (fk, fv) in fields {
                    let field = fk.string ?? "?"
                    let key = "roles.\(roleName).\(field)"
                    switch field {
                    case "fg": style.foreground = try color(fv, key: key)
                    case "bg": style.background = try color(fv, key: key)
                    case "bold", "dim", "underline", "reverse":
                        guard let b = fv.bool else { throw ThemeError(file: file, line: line(fv), key: key, message: "must be true or false") }
                        let attr: CellAttributes = field == "bold" ? .bold : field == "dim" ? .dim : field == "underline" ? .underline : .reverse
                        if b { style.attributes.insert(attr) }
                    default:
                        throw ThemeError(file: file, line: line(fk), key: key, message: "unknown field; a role has fg, bg, bold, dim, underline, reverse")
                    }
                }
            default:
                throw ThemeError(file: file, line: line(rv), key: "roles.\(roleName)", message: "must be a colour or a mapping with fg, bg, bold, ...")
            }
            styles[role] = style
        }
        return Theme(name: name, styles: styles)
    }

    private static func line(of error: YamlError) -> Int {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return 0
        }
    }
}

/// Finds theme files: `--theme NAME|FILE`, the bundled `themes/` folder.
public enum Themes {
    /// The bundled themes, in the order `t` cycles through them.
    public static let bundledOrder = ["default", "light", "high-contrast", "mono"]

    /// The themes a dashboard cycles through with `t`: the chosen one (`default` when none),
    /// then the other bundled ones; with NO_COLOR only `mono`. When no theme was asked for
    /// and none can be found, the built-in mono keeps the dashboard usable; an asked-for
    /// theme that cannot be read is the caller's error.
    public static func cycle(chosen: String?, noColor: Bool) throws -> [Theme] {
        do {
            let first = try resolve(noColor ? "mono" : (chosen ?? "default"))
            var themes = [first]
            if !noColor {
                for path in bundledPaths() {
                    if let t = try? Theme.load(path: path), t.name != first.name { themes.append(t) }
                }
            }
            return themes
        } catch {
            guard chosen == nil else { throw error }
            return [Theme.mono]
        }
    }

    /// The `themes` folder, whether the binary runs from the checkout or is installed.
    public static func directory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        BundledFolder.find("themes", containing: "default.yaml", override: "FAILOVER_LAB_THEMES", environment: environment)
    }

    /// The bundled theme files that exist, default first.
    public static func bundledPaths() -> [String] {
        guard let dir = directory() else { return [] }
        var names = bundledOrder
        if let all = try? FileManager.default.contentsOfDirectory(atPath: dir) {
            for file in all.sorted() where file.hasSuffix(".yaml") {
                let n = String(file.dropLast(5))
                if !names.contains(n) { names.append(n) }
            }
        }
        return names.map { (dir as NSString).appendingPathComponent($0 + ".yaml") }.filter { FileManager.default.fileExists(atPath: $0) }
    }

    /// A theme by name (bundled) or path (any file).
    public static func resolve(_ nameOrPath: String) throws -> Theme {
        if nameOrPath.hasSuffix(".yaml") || nameOrPath.contains("/") {
            return try Theme.load(path: nameOrPath)
        }
        if let path = bundledPaths().first(where: { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension == nameOrPath }) {
            return try Theme.load(path: path)
        }
        if nameOrPath == "mono" { return Theme.mono }
        let known = bundledPaths().map { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension }
        throw ThemeError(file: "--theme \(nameOrPath)", line: 0, key: "--theme", message: "no such theme; bundled: \(known.isEmpty ? "none found (set FAILOVER_LAB_THEMES)" : known.joined(separator: ", ")), or give a file path")
    }
}

/// Maps theme colours onto what the terminal has. Pure.
public enum ColorMapping {
    /// xterm's red, green, blue for a 256-colour index.
    public static func xterm(_ i: Int) -> (Int, Int, Int) {
        let basic: [(Int, Int, Int)] = [
            (0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205), (0, 205, 205), (229, 229, 229),
            (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0), (92, 92, 255), (255, 0, 255), (0, 255, 255), (255, 255, 255),
        ]
        if i < 16 { return basic[max(0, i)] }
        if i < 232 {
            let n = i - 16
            let levels = [0, 95, 135, 175, 215, 255]
            return (levels[n / 36], levels[(n / 6) % 6], levels[n % 6])
        }
        let v = 8 + (i - 232) * 10
        return (v, v, v)
    }

    static func distance(_ a: (Int, Int, Int), _ b: (Int, Int, Int)) -> Int {
        let dr = a.0 - b.0, dg = a.1 - b.1, db = a.2 - b.2
        return 2 * dr * dr + 4 * dg * dg + 3 * db * db
    }

    /// The colour number to give ncurses on a terminal with `colors` colours; -1 is the terminal's default.
    public static func terminalColor(_ c: ThemeColor, colors: Int) -> Int {
        guard let rgb = c.components else { return -1 }
        if case .index(let i) = c, i < colors { return i }
        let limit = colors >= 256 ? 256 : colors >= 16 ? 16 : 8
        var best = 0, bestDistance = Int.max
        // Basic colours are tried first, so a pure colour keeps its basic number.
        for i in 0..<limit {
            let d = distance(rgb, xterm(i))
            if d < bestDistance { best = i; bestDistance = d }
        }
        return best
    }

    /// Foreground and background for a style; never the same visible colour on itself.
    public static func pair(_ style: RoleStyle, colors: Int) -> (fg: Int, bg: Int) {
        var fg = terminalColor(style.foreground, colors: colors)
        let bg = terminalColor(style.background, colors: colors)
        if fg >= 0 && bg >= 0 && (fg == bg || (colors <= 16 && fg % 8 == bg % 8)) {
            // Mapped down, they met: take black or white, whichever stands out on the background.
            let (r, g, b) = xterm(bg)
            fg = (r * 299 + g * 587 + b * 114) / 1000 > 128 ? 0 : 7
        }
        return (fg, bg)
    }
}

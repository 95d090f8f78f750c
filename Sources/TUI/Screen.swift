/// What a cell is drawn as: a role the theme turns into colours and attributes.
/// The raw value is the theme file's key; `code` is the cell's letter in snapshot files.
public enum Role: String, Sendable, CaseIterable, Hashable {
    case text
    case dim
    case border
    case title
    case header
    case footer
    case key
    case selected
    case active
    case standby
    case healthy
    case evicted
    case probing
    case bar
    case barEmpty = "bar.empty"
    case status2xx = "status.2xx"
    case status3xx = "status.3xx"
    case status4xx = "status.4xx"
    case status429 = "status.429"
    case status5xx = "status.5xx"
    case statusError = "status.error"
    case spark
    case latency
    /// The p99 line of the latency chart (`latency` draws p50).
    case latencyP99 = "latency.p99"
    /// Chart series of the providers of priority group 1, 2, 3, 4 (and again from 5).
    case group1 = "group.1"
    case group2 = "group.2"
    case group3 = "group.3"
    case group4 = "group.4"
    case warning
    case paused

    /// One letter per role for the colour-role layer of snapshots (`.` is `text`).
    public var code: Character {
        switch self {
        case .text: return "."
        case .dim: return "d"
        case .border: return "#"
        case .title: return "T"
        case .header: return "H"
        case .footer: return "F"
        case .key: return "K"
        case .selected: return "S"
        case .active: return "A"
        case .standby: return "s"
        case .healthy: return "g"
        case .evicted: return "e"
        case .probing: return "p"
        case .bar: return "b"
        case .barEmpty: return "_"
        case .status2xx: return "2"
        case .status3xx: return "3"
        case .status4xx: return "4"
        case .status429: return "9"
        case .status5xx: return "5"
        case .statusError: return "x"
        case .spark: return "k"
        case .latency: return "l"
        case .latencyP99: return "L"
        case .group1: return "a"
        case .group2: return "c"
        case .group3: return "f"
        case .group4: return "h"
        case .warning: return "w"
        case .paused: return "P"
        }
    }

    /// The chart colour of a 0-based priority group.
    public static func group(_ index: Int) -> Role {
        switch (index % 4 + 4) % 4 {
        case 0: return .group1
        case 1: return .group2
        case 2: return .group3
        default: return .group4
        }
    }

    /// The role of an HTTP status (nil: no response).
    public static func status(_ code: Int?) -> Role {
        guard let code, code > 0 else { return .statusError }
        switch code {
        case 429: return .status429
        case 200..<300: return .status2xx
        case 300..<400: return .status3xx
        case 400..<500: return .status4xx
        default: return .status5xx
        }
    }
}

/// Attributes a panel may add on top of its role's (selection uses reverse).
public struct CellAttributes: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let bold = CellAttributes(rawValue: 1)
    public static let reverse = CellAttributes(rawValue: 2)
    public static let underline = CellAttributes(rawValue: 4)
    public static let dim = CellAttributes(rawValue: 8)

    var code: Character {
        switch self {
        case []: return "."
        case .bold: return "b"
        case .reverse: return "r"
        case .underline: return "u"
        case .dim: return "d"
        default: return "*"
        }
    }
}

/// One character cell. Every character the dashboard draws is one column wide.
public struct Cell: Sendable, Hashable {
    public var char: Unicode.Scalar
    public var role: Role
    public var attributes: CellAttributes

    public init(_ char: Unicode.Scalar = " ", role: Role = .text, attributes: CellAttributes = []) {
        self.char = char
        self.role = role
        self.attributes = attributes
    }

    public static let blank = Cell()
}

/// A rectangle on the screen.
public struct Rect: Sendable, Hashable {
    public var x: Int
    public var y: Int
    public var width: Int
    public var height: Int

    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x
        self.y = y
        self.width = max(0, width)
        self.height = max(0, height)
    }

    /// The inside of a box drawn on this rectangle.
    public var inner: Rect { Rect(x: x + 1, y: y + 1, width: width - 2, height: height - 2) }
    public var maxX: Int { x + width }
    public var maxY: Int { y + height }
}

/// Line-drawing characters: Unicode box drawing, or ASCII when the locale is not UTF-8.
public struct Glyphs: Sendable, Hashable {
    public var horizontal: Unicode.Scalar
    public var vertical: Unicode.Scalar
    public var topLeft: Unicode.Scalar
    public var topRight: Unicode.Scalar
    public var bottomLeft: Unicode.Scalar
    public var bottomRight: Unicode.Scalar
    public var barFull: Unicode.Scalar
    public var barEmpty: Unicode.Scalar
    /// Sparkline levels, lowest first.
    public var spark: [Unicode.Scalar]
    public var pointer: Unicode.Scalar
    public var dotHealthy: Unicode.Scalar
    public var dotEvicted: Unicode.Scalar
    public var dotProbing: Unicode.Scalar
    public var arrow: String
    public var separator: String
    public var ascii: Bool

    public static let unicode = Glyphs(
        horizontal: "─", vertical: "│", topLeft: "┌", topRight: "┐", bottomLeft: "└", bottomRight: "┘",
        barFull: "█", barEmpty: "░", spark: ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"],
        pointer: "▸", dotHealthy: "●", dotEvicted: "✖", dotProbing: "◐", arrow: "→", separator: " · ", ascii: false)

    public static let plain = Glyphs(
        horizontal: "-", vertical: "|", topLeft: "+", topRight: "+", bottomLeft: "+", bottomRight: "+",
        barFull: "#", barEmpty: ".", spark: ["_", ".", ":", "-", "=", "+", "*", "#"],
        pointer: ">", dotHealthy: "o", dotEvicted: "x", dotProbing: "?", arrow: ">", separator: " | ", ascii: true)
}

/// The screen as a value: a grid of cells that panels draw into. The terminal copies a
/// finished Screen out; tests compare it as text plus a role layer.
public struct Screen: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public private(set) var cells: [Cell]

    public init(width: Int, height: Int) {
        self.width = max(0, width)
        self.height = max(0, height)
        cells = Array(repeating: .blank, count: self.width * self.height)
    }

    public subscript(x: Int, y: Int) -> Cell {
        get { cells[y * width + x] }
        set {
            guard x >= 0, y >= 0, x < width, y < height else { return }
            cells[y * width + x] = newValue
        }
    }

    /// Writes text from (x, y), clipped to `maxWidth` columns and the screen; returns the columns used.
    @discardableResult
    public mutating func put(_ text: String, x: Int, y: Int, role: Role = .text, attributes: CellAttributes = [], maxWidth: Int = .max) -> Int {
        guard y >= 0, y < height else { return 0 }
        var column = x
        let limit = min(width, maxWidth == .max ? width : x + maxWidth)
        for scalar in text.unicodeScalars {
            if column >= limit { break }
            // Keep every cell one column wide: control and combining characters are dropped.
            if scalar.value < 0x20 || (0x300...0x36F).contains(scalar.value) { continue }
            if column >= 0 { self[column, y] = Cell(scalar, role: role, attributes: attributes) }
            column += 1
        }
        return column - x
    }

    /// Fills a rectangle with one cell.
    public mutating func fill(_ rect: Rect, with cell: Cell = .blank) {
        for y in max(0, rect.y)..<min(height, rect.maxY) {
            for x in max(0, rect.x)..<min(width, rect.maxX) { self[x, y] = cell }
        }
    }

    /// Sets the role and attributes of a run of cells, keeping their characters.
    public mutating func paint(x: Int, y: Int, width w: Int, role: Role, attributes: CellAttributes = []) {
        guard y >= 0, y < height else { return }
        for column in max(0, x)..<min(width, x + w) {
            cells[y * width + column].role = role
            cells[y * width + column].attributes = attributes
        }
    }

    /// A box with a title on its top border.
    public mutating func box(_ rect: Rect, title: String? = nil, glyphs: Glyphs, titleRole: Role = .title) {
        guard rect.width >= 2, rect.height >= 2 else { return }
        let right = rect.maxX - 1, bottom = rect.maxY - 1
        for x in rect.x...right {
            self[x, rect.y] = Cell(glyphs.horizontal, role: .border)
            self[x, bottom] = Cell(glyphs.horizontal, role: .border)
        }
        for y in rect.y...bottom {
            self[rect.x, y] = Cell(glyphs.vertical, role: .border)
            self[right, y] = Cell(glyphs.vertical, role: .border)
        }
        self[rect.x, rect.y] = Cell(glyphs.topLeft, role: .border)
        self[right, rect.y] = Cell(glyphs.topRight, role: .border)
        self[rect.x, bottom] = Cell(glyphs.bottomLeft, role: .border)
        self[right, bottom] = Cell(glyphs.bottomRight, role: .border)
        if let title, rect.width > 4 {
            put(" " + title + " ", x: rect.x + 1, y: rect.y, role: titleRole, attributes: [], maxWidth: rect.width - 2)
        }
    }

    /// The characters, one line per row, trailing spaces kept so columns line up.
    public var text: String {
        var lines: [String] = []
        lines.reserveCapacity(height)
        for y in 0..<height {
            var line = String.UnicodeScalarView()
            for x in 0..<width { line.append(cells[y * width + x].char) }
            lines.append(String(line))
        }
        return lines.joined(separator: "\n")
    }

    /// The role of each cell as one letter (`Role.code`), one line per row.
    public var roleLayer: String {
        (0..<height).map { y in String((0..<width).map { cells[y * width + $0].role.code }) }.joined(separator: "\n")
    }

    /// The extra attributes of each cell as one letter, one line per row.
    public var attributeLayer: String {
        (0..<height).map { y in String((0..<width).map { cells[y * width + $0].attributes.code }) }.joined(separator: "\n")
    }

    /// One row's text, for tests and headless output.
    public func line(_ y: Int) -> String {
        var line = String.UnicodeScalarView()
        for x in 0..<width { line.append(cells[y * width + x].char) }
        return String(line)
    }

    /// The cells that differ from `previous` (all of them when the size changed), row by row.
    public func changes(from previous: Screen?) -> [(x: Int, y: Int, cell: Cell)] {
        var out: [(Int, Int, Cell)] = []
        let same = previous.map { $0.width == width && $0.height == height } ?? false
        for i in cells.indices where !same || previous!.cells[i] != cells[i] {
            out.append((i % width, i / width, cells[i]))
        }
        return out
    }
}

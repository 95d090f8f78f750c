/// A theme's legend: every role, a sample drawn in it, and what the theme says it looks like.
public enum ThemeLegend {
    public static func render(_ theme: Theme, width: Int = 80, glyphs: Glyphs = .unicode) -> Screen {
        let roles = Role.allCases
        var screen = Screen(width: width, height: roles.count + 3)
        screen.box(Rect(x: 0, y: 0, width: width, height: roles.count + 3), title: "Theme " + theme.name, glyphs: glyphs)
        screen.put("role          sample    style", x: 2, y: 1, role: .dim)
        for (i, role) in roles.enumerated() {
            let y = 2 + i
            screen.put(Format.pad(role.rawValue, 14), x: 2, y: y, role: .text)
            screen.put(sample(role, glyphs: glyphs), x: 16, y: y, role: role, attributes: theme.style(role).attributes)
            screen.put(theme.style(role).description, x: 26, y: y, role: .dim, maxWidth: width - 27)
        }
        return screen
    }

    static func sample(_ role: Role, glyphs g: Glyphs) -> String {
        switch role {
        case .healthy: return String(g.dotHealthy) + " healthy"
        case .evicted: return String(g.dotEvicted) + " evicted"
        case .probing: return String(g.dotProbing) + " probing"
        case .bar: return String(repeating: String(g.barFull), count: 6)
        case .barEmpty: return String(repeating: String(g.barEmpty), count: 6)
        case .status2xx: return "200"
        case .status3xx: return "304"
        case .status4xx: return "404"
        case .status429: return "429"
        case .status5xx: return "503"
        case .statusError: return "ERR"
        case .spark: return String(String.UnicodeScalarView(g.spark))
        case .group1, .group2, .group3, .group4: return g.ascii ? "######" : "⣀⣤⣶⣿⣿⣿"
        case .latencyP99: return "p99"
        case .latency: return "p50"
        case .border: return String(repeating: String(g.horizontal), count: 6)
        default: return "Sample"
        }
    }
}

import Foundation
import Testing
@testable import TUI

@Suite struct ThemeTests {
    @Test func bundledThemesLoadAndSetEveryRole() throws {
        for name in Themes.bundledOrder {
            let theme = try Themes.resolve(name)
            for role in Role.allCases {
                #expect(theme.styles[role] != nil, "\(name) does not set \(role.rawValue)")
            }
        }
    }

    @Test func badColourNamesFileLineAndKey() {
        let text = """
        name: broken
        palette:
          ok: "#5fd75f"
        roles:
          text: ok
          healthy: { fg: chartreuse }
        """
        do {
            _ = try Theme.parse(text, file: "themes/broken.yaml", defaultName: "broken")
            Issue.record("a bad colour was accepted")
        } catch let e as ThemeError {
            #expect(e.file == "themes/broken.yaml")
            #expect(e.line == 6)
            #expect(e.key == "roles.healthy.fg")
            #expect(e.description.hasPrefix("themes/broken.yaml:6: roles.healthy.fg:"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func badPaletteColour() {
        let text = "palette:\n  bad: \"#12345\"\nroles:\n  text: default\n"
        #expect(throws: ThemeError.self) { try Theme.parse(text, file: "t.yaml", defaultName: "t") }
        do { _ = try Theme.parse(text, file: "t.yaml", defaultName: "t") } catch let e as ThemeError {
            #expect(e.line == 2)
            #expect(e.key == "palette.bad")
        } catch {}
    }

    @Test func unknownRoleNamesFileLineAndKey() {
        let text = "name: x\nroles:\n  text: default\n  heathy: green\n"
        do {
            _ = try Theme.parse(text, file: "x.yaml", defaultName: "x")
            Issue.record("an unknown role was accepted")
        } catch let e as ThemeError {
            #expect(e.line == 4)
            #expect(e.key == "roles.heathy")
            #expect(e.message.contains("unknown role"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func colourForms() {
        #expect(ThemeColor(parsing: "default") == .terminalDefault)
        #expect(ThemeColor(parsing: "red") == .index(1))
        #expect(ThemeColor(parsing: "bright-white") == .index(15))
        #expect(ThemeColor(parsing: "208") == .index(208))
        #expect(ThemeColor(parsing: "#ff8000") == .rgb(255, 128, 0))
        #expect(ThemeColor(parsing: "256") == nil)
        #expect(ThemeColor(parsing: "#ff80") == nil)
        #expect(ThemeColor(parsing: "chartreuse") == nil)
    }

    @Test func mappingDownTo8Colours() {
        #expect(ColorMapping.terminalColor(.rgb(255, 95, 95), colors: 8) == 1)   // a light red is red
        #expect(ColorMapping.terminalColor(.rgb(95, 215, 95), colors: 8) == 2)   // a light green is green
        #expect(ColorMapping.terminalColor(.index(9), colors: 8) == 1)           // bright red is red
        #expect(ColorMapping.terminalColor(.index(208), colors: 256) == 208)
        #expect(ColorMapping.terminalColor(.terminalDefault, colors: 8) == -1)
    }

    @Test func mappedDownNeverUnreadable() throws {
        // Dark grey on black becomes black on black with 8 colours: the foreground must flip.
        let style = RoleStyle(foreground: .rgb(40, 40, 40), background: .index(0))
        let (fg, bg) = ColorMapping.pair(style, colors: 8)
        #expect(bg == 0)
        #expect(fg != bg)
        for name in Themes.bundledOrder {
            let theme = try Themes.resolve(name)
            for role in Role.allCases {
                for colors in [8, 16, 256] {
                    let (fg, bg) = ColorMapping.pair(theme.style(role), colors: colors)
                    #expect(fg < 0 || bg < 0 || fg != bg, "\(name) \(role.rawValue) on \(colors) colours is \(fg) on \(bg)")
                }
            }
        }
    }
}

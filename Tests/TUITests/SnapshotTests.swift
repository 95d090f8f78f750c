import Foundation
import Testing
@testable import TUI

@Suite struct SnapshotTests {
    let options = RenderOptions(glyphs: .unicode, selected: 0, showHelp: false, themeName: "default")

    @Test func beforeTheFirstRequest() {
        let screen = Dashboard.render(SeedLab.start(), width: 80, height: 24, options: options)
        #expect(screen.text.contains("waiting for the first request"))
        Snapshot.assert(screen, named: "seed-0-before-first-request")
    }

    @Test func rightAfterThe429() {
        let screen = Dashboard.render(SeedLab.first429(SeedLab.start()), width: 80, height: 24, options: options)
        #expect(screen.text.contains("evicted"))
        #expect(screen.text.contains(" 60s"))
        Snapshot.assert(screen, named: "seed-1-after-429")
    }

    @Test func afterFailover() {
        let model = SeedLab.afterFailover(SeedLab.start())
        Snapshot.assert(Dashboard.render(model, width: 80, height: 24, options: options), named: "seed-2-after-failover")
        Snapshot.assert(Dashboard.render(model, width: 120, height: 40, options: options), named: "seed-2-after-failover-120x40")
    }

    @Test func allEvicted() {
        let screen = Dashboard.render(SeedLab.allEvicted(SeedLab.start()), width: 80, height: 24, options: options)
        #expect(screen.text.contains("ALL EVICTED"))
        Snapshot.assert(screen, named: "seed-3-all-evicted")
    }

    @Test func asciiFallback() {
        var o = options
        o.glyphs = .plain
        let screen = Dashboard.render(SeedLab.afterFailover(SeedLab.start()), width: 80, height: 24, options: o)
        #expect(screen.text.unicodeScalars.allSatisfy { $0.isASCII })
        Snapshot.assert(screen, named: "seed-2-after-failover-ascii")
    }

    @Test func externalGateway() {
        var m = LabModel(scenario: "external gateway", gatewayURL: "http://gw.example:8080/http-429", plan: "open loop", rate: 2, external: true)
        m.apply(.request(RequestEntry(at: 0.1, status: 429, provider: "http-429-provider", group: nil, latency: 0.004)))
        m.apply(.request(RequestEntry(at: 0.6, status: 200, provider: "openai-provider", group: nil, latency: 0.9, tokens: 15)))
        m.apply(.tick(now: 1.2))
        let screen = Dashboard.render(m, width: 80, height: 24, options: options)
        #expect(screen.text.contains("Not our gateway"))
        #expect(m.seenProviders == ["http-429-provider", "openai-provider"])
        Snapshot.assert(screen, named: "external-gateway")
    }

    @Test func helpOverlay() {
        var o = options
        o.showHelp = true
        Snapshot.assert(Dashboard.render(SeedLab.afterFailover(SeedLab.start()), width: 80, height: 24, options: o), named: "help-overlay")
    }

    @Test func tooSmall() {
        let screen = Dashboard.render(SeedLab.start(), width: 60, height: 20, options: options)
        #expect(screen.text.contains("needs at least 80x24"))
        #expect(screen.text.contains("60x20"))
        Snapshot.assert(screen, named: "too-small-60x20")
    }

    @Test(arguments: Themes.bundledOrder)
    func themeLegend(name: String) throws {
        let theme = try Themes.resolve(name)
        #expect(theme.name == name)
        Snapshot.assert(ThemeLegend.render(theme), named: "legend-\(name)")
    }

    @Test func colouredStatusCodes() throws {
        let screen = Dashboard.render(SeedLab.afterFailover(SeedLab.start()), width: 120, height: 40, options: options)
        // The 429 row is drawn in the 429 role and the 200 rows in the 2xx role.
        let rows = screen.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let roles = screen.roleLayer.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let y429 = try #require(rows.firstIndex { $0.contains(" 429  http-429-provider ") })
        let x = rows[y429].unicodeScalars.distance(from: rows[y429].unicodeScalars.startIndex, to: rows[y429].unicodeScalars.firstIndex(of: "4")!)
        #expect(Array(roles[y429])[x] == Role.status429.code)
        let y200 = try #require(rows.firstIndex { $0.contains(" 200  openai-provider ") })
        #expect(Array(roles[y200])[x] == Role.status2xx.code)
    }

    @Test func screenDiffCopiesOnlyChangedCells() {
        let a = Dashboard.render(SeedLab.afterFailover(SeedLab.start()), width: 80, height: 24, options: options)
        var model = SeedLab.afterFailover(SeedLab.start())
        model.apply(.tick(now: 6.45))  // same second: nothing visible changes
        let b = Dashboard.render(model, width: 80, height: 24, options: options)
        #expect(b.changes(from: a).isEmpty)
        model.apply(.tick(now: 9.5))
        let c = Dashboard.render(model, width: 80, height: 24, options: options)
        let changed = c.changes(from: a)
        #expect(!changed.isEmpty)
        #expect(changed.count < 80 * 24 / 4)
        #expect(c.changes(from: nil).count == 80 * 24)
    }
}

@Suite struct KeymapTests {
    /// The help overlay's key column, read back from the rendered screen.
    func helpRows() -> [(keys: [String], help: String)] {
        let screen = Dashboard.render(SeedLab.start(), width: 100, height: 30, options: RenderOptions(glyphs: .plain, showHelp: true))
        var rows: [(keys: [String], help: String)] = []
        let lines = screen.text.split(separator: "\n").map { Array(String($0).unicodeScalars) }
        // The overlay is the box titled "Keys"; read its rows between its left and right borders.
        guard let top = lines.firstIndex(where: { String(String.UnicodeScalarView($0)).contains("+ Keys (") }) else { return [] }
        let topLine = String(String.UnicodeScalarView(lines[top]))
        let left = topLine.unicodeScalars.distance(from: topLine.unicodeScalars.startIndex, to: topLine.range(of: "+ Keys (")!.lowerBound.samePosition(in: topLine.unicodeScalars)!)
        for line in lines[(top + 1)...] {
            guard line.count > left, line[left] == "|" else { break }
            let rest = line[(left + 1)...]
            guard let right = rest.firstIndex(of: "|") else { continue }
            let inside = String(String.UnicodeScalarView(rest[..<right])).drop { $0 == " " }
            guard let gap = inside.range(of: "  ") else { continue }
            let keys = inside[..<gap.lowerBound].split(separator: " ").map(String.init)
            let help = inside[gap.upperBound...].trimmingCharacters(in: .whitespaces)
            if !keys.isEmpty && !help.isEmpty && !inside.hasPrefix("states:") { rows.append((keys, help)) }
        }
        return rows
    }

    @Test func everyKeyInTheTableIsInTheHelp() {
        let rows = helpRows()
        for binding in Keymap.table {
            let row = rows.first { $0.help == binding.help }
            #expect(row != nil, "help lacks \(binding.label)")
            #expect(row?.keys == binding.keys.map(\.name), "help shows other keys for \(binding.help)")
        }
    }

    @Test func everyKeyInTheHelpIsInTheTable() throws {
        let rows = helpRows()
        #expect(rows.count == Keymap.table.count)
        for row in rows {
            for name in row.keys {
                let key = try #require(Key(name: name), "help names a key \(name) that cannot be read")
                let action = Keymap.action(for: key)
                #expect(action != nil, "help lists \(name) but the table has no action for it")
                #expect(Keymap.table.first { $0.action == action }?.help == row.help)
            }
        }
    }

    @Test func noKeyIsBoundTwice() {
        let keys = Keymap.table.flatMap(\.keys)
        #expect(Set(keys).count == keys.count)
    }

    @Test func everyActionHasAKey() {
        for action in KeyAction.allCases {
            #expect(Keymap.table.contains { $0.action == action }, "\(action) has no key")
        }
    }

    @Test func footerHintsComeFromTheTable() {
        let words = Set(Keymap.hints.map(\.word))
        #expect(words == Set(Keymap.table.map(\.hint)))
    }
}

import ArgumentParser
import TUI

/// How the dashboard draws its charts (`run`).
struct ChartFlags: ParsableArguments {
    @Option(name: .customLong("charts"), help: ArgumentHelp("Chart dots: braille (finest), or block for fonts without braille. --ascii draws them in ASCII.", valueName: "braille|block"))
    var charts: String = "braille"

    @Option(name: .customLong("chart-window"), help: ArgumentHelp("The charts' time window to start with: 10s, 30s, 1m, 2m, 5m or 10m; < and > change it live.", valueName: "window"))
    var chartWindow: String = "1m"

    var dots: ChartDots? { ChartDots(rawValue: charts).flatMap { $0 == .ascii ? nil : $0 } }

    /// The window in seconds, if it is one of the charts' windows.
    var window: Int? {
        let labels = Charts.windows.map { (Charts.duration($0), $0) } + Charts.windows.map { ("\($0)s", $0) }
        return labels.first { $0.0 == chartWindow }?.1
    }

    func validate() throws {
        if dots == nil { throw ValidationError("--charts must be braille or block, not '\(charts)' (--ascii draws ASCII)") }
        if window == nil {
            throw ValidationError("--chart-window must be one of \(Charts.windows.map(Charts.duration).joined(separator: ", ")), not '\(chartWindow)'")
        }
    }

    func apply(to settings: inout DashboardSettings) {
        settings.chartDots = dots ?? .braille
        settings.chartWindow = window ?? Charts.defaultWindow
    }
}

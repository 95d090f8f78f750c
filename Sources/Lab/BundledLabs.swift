import Foundation

/// Finds the lab files that ship with failover-lab, whether the binary runs from the
/// checkout (`.build/...`) or is installed (`PREFIX/bin` with `PREFIX/share/failover-lab`).
public enum BundledLabs {
    /// The seed lab's file name.
    public static let seedLab = "http-429-lab.yaml"

    /// The `scenarios` folder, or nil when none can be found.
    public static func scenariosDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        BundledFolder.find("scenarios", containing: seedLab, override: "FAILOVER_LAB_SCENARIOS", environment: environment)
    }

    /// A bundled lab by file name (`http-429-lab.yaml`) or short name (`http-429-lab`).
    public static func path(of name: String) -> String? {
        guard let dir = scenariosDirectory() else { return nil }
        let file = name.hasSuffix(".yaml") ? name : name + ".yaml"
        let path = (dir as NSString).appendingPathComponent(file)
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }
}

/// Finds a folder that ships with failover-lab (`scenarios`, `themes`): an environment
/// override, `PREFIX/share/failover-lab/NAME` beside an installed binary, the checkout
/// above a `.build/<triple>/<config>/failover-lab` binary, or the checkout it was built from.
public enum BundledFolder {
    public static func find(_ name: String, containing marker: String, override variable: String,
                            environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        var candidates: [String] = []
        if let override = environment[variable] { candidates.append(override) }
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        candidates.append(executable.appendingPathComponent("../share/failover-lab/\(name)").standardized.path)
        var dir = executable
        for _ in 0..<5 {
            candidates.append(dir.appendingPathComponent(name).path)
            dir = dir.deletingLastPathComponent()
        }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(source.appendingPathComponent(name).path)
        return candidates.first { FileManager.default.fileExists(atPath: ($0 as NSString).appendingPathComponent(marker)) }
    }
}

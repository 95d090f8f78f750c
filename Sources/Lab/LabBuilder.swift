import Gateway
import Upstreams

/// Why a lab did not start, worded for the user; `exitCode` is 2 for a bad file or flag, 1
/// for a start that failed (a port taken).
public struct LabStartError: Error, CustomStringConvertible {
    public var description: String
    public var exitCode: Int32

    public init(_ description: String, exitCode: Int32) {
        self.description = description
        self.exitCode = exitCode
    }
}

/// Everything a command may ask of the lab it starts. `run`, `gateway` and `test` all fill
/// one of these from their flags and start the lab with `LabBuilder.start`, so a setting
/// cannot be taken by one command and dropped by another.
public struct LabSettings: Sendable {
    public var options = LabOptions()
    /// Ports to try in order (`run`: 8080, then a free one).
    public var ports: [Int] = [8080]
    /// `--stand-in NAME=BEHAVIOUR`, in the order given: applied once the stand-ins run,
    /// before any traffic.
    public var standInSettings: [String] = []

    public init() {}
}

/// The one way a command starts a lab.
public enum LabBuilder {
    /// Starts `config`'s lab with `settings`: the first port of `settings.ports` that can be
    /// opened, then each `--stand-in` setting. On an error nothing is left running.
    public static func start(config: LabConfig, settings: LabSettings) async throws(LabStartError) -> RunningLab {
        var options = settings.options
        var lastError: Error?
        var lab: RunningLab?
        let ports = settings.ports.isEmpty ? [options.port] : settings.ports
        for port in ports {
            options.port = port
            do {
                lab = try await RunningLab.start(config: config, options: options)
                break
            } catch let errors as ConfigErrors {
                throw LabStartError(errors.description, exitCode: 2)
            } catch let admin as AdminPortError {
                throw LabStartError("failover-lab: \(admin)", exitCode: 1)
            } catch {
                lastError = error
            }
        }
        guard let lab else {
            let tried = ports.map { $0 == 0 ? "a free port" : String($0) }.joined(separator: " or ")
            throw LabStartError("failover-lab: cannot start the lab's gateway on \(options.host) port \(tried): \(lastError.map { "\($0)" } ?? "unknown error")", exitCode: 1)
        }
        for assignment in settings.standInSettings {
            do {
                try await apply(assignment, to: lab)
            } catch {
                await lab.stop()
                throw error
            }
        }
        return lab
    }

    /// Applies one `NAME=BEHAVIOUR` to the running lab's stand-in.
    static func apply(_ assignment: String, to lab: RunningLab) async throws(LabStartError) {
        let names = lab.standIns.map(\.name).joined(separator: ", ")
        guard let eq = assignment.firstIndex(of: "="), let standIn = lab.standIn(String(assignment[..<eq])) else {
            throw LabStartError("failover-lab: --stand-in \(assignment): write NAME=BEHAVIOR with a stand-in of the lab (\(names.isEmpty ? "it has none" : names))", exitCode: 2)
        }
        do {
            try await standIn.apply(StandInSetting.parse(String(assignment[assignment.index(after: eq)...])))
        } catch {
            throw LabStartError("failover-lab: --stand-in \(assignment): \(error)", exitCode: 2)
        }
    }
}

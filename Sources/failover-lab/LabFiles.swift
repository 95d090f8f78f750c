import ArgumentParser
import Foundation
import Gateway
import Lab

/// Lab files named on the command line, defaulting to the bundled seed lab.
struct LabFileArguments: ParsableArguments {
    @Argument(help: ArgumentHelp(
        "Lab files: multi-document YAML with HTTPRoute, AgentgatewayBackend, policies, Secret and an optional Scenario. Default: the bundled seed lab (scenarios/http-429-lab.yaml). A bundled lab can be named by its short name (health-policy-lab).",
        valueName: "file"))
    var files: [String] = []

    /// The files to read, resolving short names of bundled labs.
    func resolved() throws -> [String] {
        if files.isEmpty {
            guard let seed = BundledLabs.path(of: BundledLabs.seedLab) else {
                throw ValidationError("cannot find the bundled seed lab (scenarios/\(BundledLabs.seedLab)); name a lab file, or set FAILOVER_LAB_SCENARIOS to the scenarios folder")
            }
            return [seed]
        }
        return files.map { file in
            if FileManager.default.fileExists(atPath: file) { return file }
            return BundledLabs.path(of: file) ?? file
        }
    }

    /// Reads and validates the files; prints errors with file:line and exits non-zero on failure.
    func load() throws -> LabConfig {
        let paths = try resolved()
        do {
            // The Lab target's reading also checks the Scenario's steps and traffic.
            let config = try LabFiles.load(files: paths)
            for warning in config.warnings { Console.error(warning.description) }
            return config
        } catch let errors as ConfigErrors {
            Console.error(errors.description)
            throw ExitCode(2)
        }
    }
}

/// Writes whole lines, unbuffered, to standard error or output. Uses write(2): a closed
/// terminal (EIO after a hangup) or pipe must not crash the program the way
/// FileHandle.write does.
enum Console {
    static func out(_ line: String) { write(STDOUT_FILENO, line + "\n") }

    static func error(_ line: String) { write(STDERR_FILENO, line + "\n") }

    /// Text as it is (no newline added) to standard output.
    static func write(_ text: String) { write(STDOUT_FILENO, text) }

    private static func write(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }
}

/// Waits for SIGINT or SIGTERM.
enum Signals {
    static func waitForTermination() async -> Int32 {
        await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            let queue = DispatchQueue(label: "signals")
            let box = SignalBox(continuation: continuation)
            for sig in [SIGINT, SIGTERM] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
                source.setEventHandler { box.resume(sig) }
                source.resume()
                box.sources.append(source)
            }
        }
    }

    private final class SignalBox: @unchecked Sendable {
        // Touched only on the signal queue after setup.
        var continuation: CheckedContinuation<Int32, Never>?
        var sources: [DispatchSourceSignal] = []
        init(continuation: CheckedContinuation<Int32, Never>) { self.continuation = continuation }
        func resume(_ sig: Int32) {
            continuation?.resume(returning: sig)
            continuation = nil
        }
    }
}

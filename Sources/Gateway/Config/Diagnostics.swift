/// A place in a manifest file, for messages a user can act on.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public let file: String
    public let line: Int
    public let column: Int

    public init(file: String, line: Int, column: Int = 0) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `file:line`, or just `file` when the problem is with the file as a whole.
    public var description: String { line > 0 ? "\(file):\(line)" : file }
}

/// One error or warning about the configuration.
public struct ConfigDiagnostic: Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable { case error, warning }
    public let severity: Severity
    public let location: SourceLocation
    public let message: String

    public init(severity: Severity, location: SourceLocation, message: String) {
        self.severity = severity
        self.location = location
        self.message = message
    }

    public var description: String { "\(location): \(severity.rawValue): \(message)" }
}

/// Thrown when a configuration has errors; nothing starts.
public struct ConfigErrors: Error, CustomStringConvertible, Sendable {
    public let diagnostics: [ConfigDiagnostic]

    public init(diagnostics: [ConfigDiagnostic]) {
        self.diagnostics = diagnostics
    }

    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

import Yams

/// Reads Yams nodes with their positions, collecting errors and warnings with file:line.
/// Each mapping is read against the list of fields we know; the rest are warned about.
final class YAMLReader {
    let file: String
    private(set) var diagnostics: [ConfigDiagnostic] = []

    init(file: String) {
        self.file = file
    }

    var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }

    func location(_ node: Node?) -> SourceLocation {
        SourceLocation(file: file, line: node?.mark?.line ?? 0, column: node?.mark?.column ?? 0)
    }

    func error(_ node: Node?, _ message: String) {
        diagnostics.append(ConfigDiagnostic(severity: .error, location: location(node), message: message))
    }

    func error(at location: SourceLocation, _ message: String) {
        diagnostics.append(ConfigDiagnostic(severity: .error, location: location, message: message))
    }

    func warning(at location: SourceLocation, _ message: String) {
        diagnostics.append(ConfigDiagnostic(severity: .warning, location: location, message: message))
    }

    func warning(_ node: Node?, _ message: String) {
        diagnostics.append(ConfigDiagnostic(severity: .warning, location: location(node), message: message))
    }

    /// A mapping's fields; unknown keys are warnings (errors when `strict`), a non-mapping is an error.
    func mapping(_ node: Node?, at path: String, known: [String], strict: Bool = false) -> Fields? {
        guard let node else { return nil }
        guard case .mapping(let mapping) = node else {
            error(node, "\(path) must be a mapping, found \(describe(node))")
            return nil
        }
        var values: [String: Node] = [:]
        var keys: [String: Node] = [:]
        for (key, value) in mapping {
            guard let name = key.string else {
                error(key, "\(path) has a key that is not a string")
                continue
            }
            if !known.contains(name) {
                if strict {
                    error(key, "unknown field \(path).\(name); use \(known.joined(separator: ", "))")
                } else {
                    warning(key, "unknown field \(path).\(name) is ignored")
                }
                continue
            }
            values[name] = value
            keys[name] = key
        }
        return Fields(reader: self, path: path, node: node, values: values)
    }

    /// The items of a sequence; a non-sequence is an error.
    func sequence(_ node: Node?, at path: String) -> [Node] {
        guard let node else { return [] }
        guard case .sequence(let seq) = node else {
            error(node, "\(path) must be a list, found \(describe(node))")
            return []
        }
        return Array(seq)
    }

    /// A plain decimal whole number, read without Yams' integer constructor: that one also
    /// reads sexagesimal (`1:1:1:...`), whose arithmetic traps on overflow.
    static func integer(_ node: Node) -> Int? {
        guard case .scalar(let scalar) = node, scalar.style == .any || scalar.style == .plain else { return nil }
        let text = scalar.string
        let digits = text.hasPrefix("-") || text.hasPrefix("+") ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.utf8.count <= 18, digits.allSatisfy({ ("0"..."9").contains($0) }) else { return nil }
        return Int(text)
    }

    func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let s): return s.string.isEmpty ? "an empty value" : "\"\(s.string)\""
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }
}

/// The known fields of one YAML mapping.
struct Fields {
    let reader: YAMLReader
    let path: String
    let node: Node
    let values: [String: Node]

    var location: SourceLocation { reader.location(node) }

    subscript(_ key: String) -> Node? { values[key] }

    func has(_ key: String) -> Bool { values[key] != nil }

    func mapping(_ key: String, known: [String]) -> Fields? {
        reader.mapping(values[key], at: "\(path).\(key)", known: known)
    }

    func sequence(_ key: String) -> [Node] {
        reader.sequence(values[key], at: "\(path).\(key)")
    }

    func string(_ key: String) -> String? {
        guard let node = values[key] else { return nil }
        guard case .scalar(let scalar) = node else {
            reader.error(node, "\(path).\(key) must be a string, found \(reader.describe(node))")
            return nil
        }
        return scalar.string
    }

    func requiredString(_ key: String) -> String? {
        guard has(key) else {
            reader.error(node, "\(path).\(key) is required")
            return nil
        }
        guard let value = string(key) else { return nil }
        if value.isEmpty { reader.error(values[key], "\(path).\(key) must not be empty") }
        return value
    }

    func int(_ key: String, range: ClosedRange<Int>? = nil) -> Int? {
        guard let node = values[key] else { return nil }
        guard let value = YAMLReader.integer(node) else {
            reader.error(node, "\(path).\(key) must be a whole number, found \(reader.describe(node))")
            return nil
        }
        if let range, !range.contains(value) {
            reader.error(node, "\(path).\(key) must be between \(range.lowerBound) and \(range.upperBound), found \(value)")
            return nil
        }
        return value
    }

    func number(_ key: String, range: ClosedRange<Double>) -> Double? {
        guard let node = values[key] else { return nil }
        guard case .scalar = node, let value = node.float else {
            reader.error(node, "\(path).\(key) must be a number, found \(reader.describe(node))")
            return nil
        }
        guard range.contains(value) else {
            reader.error(node, "\(path).\(key) must be between \(range.lowerBound) and \(range.upperBound), found \(value)")
            return nil
        }
        return value
    }

    /// A Go duration of at most `maximum` (366 days unless given): timeouts, backoffs and
    /// evictions turn into timer nanoseconds later, and nothing sensible is longer.
    func duration(_ key: String, maximum: Duration = Fields.longestDuration) -> Duration? {
        guard let text = string(key) else { return nil }
        do {
            let value = try GoDuration.parse(text)
            guard value <= maximum else {
                let hours = Int(maximum.components.seconds / 3600)  // checked: Int64 to Int, no Double
                let shown = maximum == .seconds(hours * 3600) ? "\(hours)h" : maximum.compactDescription
                reader.error(values[key], "\(path).\(key) must be at most \(shown), found \"\(text)\"")
                return nil
            }
            return value
        } catch {
            reader.error(values[key], "\(path).\(key): \(error)")
            return nil
        }
    }

    /// The longest duration a lab file may give: 366 days (8784h).
    static let longestDuration = Duration.seconds(366 * 86_400)
}

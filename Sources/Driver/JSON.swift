import Foundation
import Wire

/// A JSON value: what records and access-log lines read into, and what `--json` reports are
/// built from. Text is parsed by Foundation's `JSONSerialization`; objects built in code keep
/// their keys in order for the writer below, objects read from text have them sorted (Foundation
/// does not keep the order). Lookups are linear, which is what small records want.
/// The engine does not use this for responses: see `ModelUsageScanner`.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.number(a), .number(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public subscript(key: String) -> JSONValue? {
        guard case let .object(members) = self else { return nil }
        for (k, v) in members where k == key { return v }
        return nil
    }

    public var string: String? { if case let .string(s) = self { return s } else { return nil } }
    public var number: Double? { if case let .number(n) = self { return n } else { return nil } }
    public var int: Int? {
        guard case let .number(n) = self, n.isFinite, n.rounded() == n, abs(n) < 9e18 else { return nil }
        return Int(n)
    }
    public var bool: Bool? { if case let .bool(b) = self { return b } else { return nil } }
    public var array: [JSONValue]? { if case let .array(a) = self { return a } else { return nil } }
    public var isNull: Bool { if case .null = self { return true } else { return false } }

    /// Parses one JSON document (surrounding whitespace allowed) with `JSONSerialization`.
    public static func parse(_ text: String) throws(JSONError) -> JSONValue {
        try parse(data: Data(text.utf8))
    }

    /// Parses one JSON document from UTF-8 bytes.
    public static func parse(bytes: [UInt8]) throws(JSONError) -> JSONValue {
        try parse(data: Data(bytes))
    }

    /// Parses one JSON document from UTF-8 data.
    public static func parse(data: Data) throws(JSONError) -> JSONValue {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            var reason = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
            if reason.hasSuffix(".") { reason.removeLast() }
            throw JSONError(message: reason)
        }
        return try JSONValue(foundation: object)
    }

    /// The class `JSONSerialization` gives `true` and `false` (an `NSNumber` subclass).
    private static let booleanClass = ObjectIdentifier(type(of: NSNumber(value: true)))

    /// Converts what `JSONSerialization` returns.
    init(foundation object: Any) throws(JSONError) {
        switch object {
        case is NSNull:
            self = .null
        case let s as String:
            self = .string(s)
        case let n as NSNumber:
            self = ObjectIdentifier(type(of: n)) == JSONValue.booleanClass ? .bool(n.boolValue) : .number(n.doubleValue)
        case let items as [Any]:
            var out: [JSONValue] = []
            out.reserveCapacity(items.count)
            for item in items { out.append(try JSONValue(foundation: item)) }
            self = .array(out)
        case let members as [String: Any]:
            var out: [(String, JSONValue)] = []
            out.reserveCapacity(members.count)
            for (key, value) in members.sorted(by: { $0.key < $1.key }) { out.append((key, try JSONValue(foundation: value))) }
            self = .object(out)
        default:
            throw JSONError(message: "unexpected \(type(of: object)) from JSONSerialization")
        }
    }

    /// The value as compact JSON.
    public var serialized: String {
        var out = ""
        JSONValue.write(self, into: &out)
        return out
    }

    static func write(_ value: JSONValue, into out: inout String) {
        switch value {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .number(n): out += JSONValue.formatNumber(n)
        case let .string(s): JSONValue.writeString(s, into: &out)
        case let .array(items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                write(item, into: &out)
            }
            out += "]"
        case let .object(members):
            out += "{"
            for (i, (k, v)) in members.enumerated() {
                if i > 0 { out += "," }
                writeString(k, into: &out)
                out += ":"
                write(v, into: &out)
            }
            out += "}"
        }
    }

    static func formatNumber(_ n: Double) -> String {
        if n.isFinite, n.rounded() == n, abs(n) < 1e15 { return String(Int64(n)) }
        return n.isFinite ? "\(n)" : "null"
    }

    /// Appends `s` as a JSON string literal (Wire's one escaper, which the access log uses too).
    public static func writeString(_ s: String, into out: inout String) {
        JSONString.append(s, to: &out)
    }
}

/// Why a JSON text did not parse (Wire's, shared with the response scanner).
public typealias JSONError = Wire.JSONError

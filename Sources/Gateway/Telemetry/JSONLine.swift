import Foundation
import Wire

/// Builds one JSON object on one line with its fields in the order given, as
/// agentgateway's access log prints them. Values are escaped per RFC 8259.
public struct JSONLine {
    private(set) var bytes: [UInt8] = [UInt8(ascii: "{")]
    private var first = true

    public init() {
        bytes.reserveCapacity(512)
    }

    /// Field names are the program's own constants, so they are copied without escaping.
    private mutating func key(_ name: StaticString) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    public mutating func add(_ name: StaticString, _ value: String?) {
        guard let value else { return }
        key(name)
        Self.appendString(value, to: &bytes)
    }

    public mutating func add(_ name: StaticString, _ value: Int?) {
        guard let value else { return }
        key(name)
        bytes.append(contentsOf: String(value).utf8)
    }

    public mutating func add(_ name: StaticString, _ value: Double?) {
        guard let value, value.isFinite else { return }
        key(name)
        bytes.append(contentsOf: String(value).utf8)
    }

    public mutating func add(_ name: StaticString, _ value: Bool?) {
        guard let value else { return }
        key(name)
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    /// A field of 16 (or, with `low`, 32) lowercase hex digits: trace and span ids,
    /// written in place.
    mutating func addHex(_ name: StaticString, _ high: UInt64, _ low: UInt64? = nil) {
        key(name)
        bytes.append(UInt8(ascii: "\""))
        Hex.append(high, to: &bytes)
        if let low { Hex.append(low, to: &bytes) }
        bytes.append(UInt8(ascii: "\""))
    }

    /// The finished object's UTF-8, without a newline.
    public func finishBytes() -> [UInt8] { bytes + [UInt8(ascii: "}")] }

    /// Closes the object and hands over its bytes without copying them.
    public mutating func takeBytes() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        defer { bytes = [] }
        return bytes
    }

    /// A timestamp field, RFC 3339 with milliseconds in UTC, written in place.
    mutating func addTimestamp(_ name: StaticString, _ date: Date) {
        key(name)
        bytes.append(UInt8(ascii: "\""))
        RequestLog.appendTimestamp(date, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    /// The finished object, without a newline.
    public func finish() -> String { String(decoding: finishBytes(), as: UTF8.self) }

    /// Appends `value` as a JSON string (Wire's one escaper, inlined here).
    @inline(__always)
    static func appendString(_ value: String, to out: inout [UInt8]) {
        JSONString.append(value, to: &out)
    }

    /// `value` as a JSON string literal.
    static func quoted(_ value: String) -> [UInt8] {
        var out: [UInt8] = []
        appendString(value, to: &out)
        return out
    }
}

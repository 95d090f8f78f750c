import Foundation
import Wire

/// The body of `POST /v1/traces`: an `ExportTraceServiceRequest` of opentelemetry-proto
/// (opentelemetry/proto/collector/trace/v1), in protobuf or in OTLP's JSON mapping. Written
/// by hand: the message is small and its field numbers are fixed by the spec; the tests
/// decode both forms with the official `opentelemetry-proto` package.
public enum OTLPEncoding: String, Sendable {
    case protobuf = "http/protobuf"
    case json = "http/json"

    public var contentType: String { self == .protobuf ? "application/x-protobuf" : "application/json" }

    /// One request carrying `spans` under one resource (`service.name`) and one scope.
    public func encode(_ spans: [SpanRecord], serviceName: String) -> [UInt8] {
        switch self {
        case .protobuf: return OTLPProtobuf.request(spans, serviceName: serviceName)
        case .json: return OTLPJSON.request(spans, serviceName: serviceName)
        }
    }

    static let scopeName = "failover-lab"
}

/// Protobuf wire format: varints, fixed64 and length-delimited fields, into one buffer.
/// A nested message is written in place and its length put in front of it afterwards
/// (one shift of its bytes), so a batch costs no allocation per field.
struct OTLPProtobuf {
    var out: [UInt8] = []

    static func request(_ spans: [SpanRecord], serviceName: String) -> [UInt8] {
        var w = OTLPProtobuf()
        w.out.reserveCapacity(spans.count * 400)
        for span in spans { w.message(2) { w in w.span(span) } }  // ScopeSpans.spans
        return request(encodedSpans: w.out, serviceName: serviceName)
    }

    /// The request around spans already encoded as `ScopeSpans.spans` fields: one
    /// `ResourceSpans` (the resource's `service.name`) with one `ScopeSpans`.
    static func request(encodedSpans spans: [UInt8], serviceName: String) -> [UInt8] {
        var resource = OTLPProtobuf()
        resource.message(1) { w in w.keyValue(1, "service.name", .string(serviceName)) }  // ResourceSpans.resource
        var scope = OTLPProtobuf()
        scope.message(1) { w in w.string(1, OTLPEncoding.scopeName) }  // ScopeSpans.scope { name }
        let scopeSpansLength = scope.out.count + spans.count
        var scopeSpansHead = OTLPProtobuf()
        scopeSpansHead.tag(2, 2)  // ResourceSpans.scope_spans
        scopeSpansHead.varint(UInt64(scopeSpansLength))
        let resourceSpansLength = resource.out.count + scopeSpansHead.out.count + scopeSpansLength
        var w = OTLPProtobuf()
        w.out.reserveCapacity(resourceSpansLength + 16)
        w.tag(1, 2)  // ExportTraceServiceRequest.resource_spans
        w.varint(UInt64(resourceSpansLength))
        w.out += resource.out
        w.out += scopeSpansHead.out
        w.out += scope.out
        w.out += spans
        return w.out
    }

    static func encode(_ span: SpanRecord) -> [UInt8] {
        var w = OTLPProtobuf()
        w.span(span)
        return w.out
    }

    mutating func span(_ span: SpanRecord) {
        id(1, span.traceID.high, span.traceID.low)
        id(2, span.spanID.value, nil)
        if let parent = span.parentSpanID { id(4, parent.value, nil) }
        string(5, span.name)
        tag(6, 0); varint(UInt64(span.kind.rawValue))
        fixed64(7, span.start)
        fixed64(8, span.end)
        for a in span.attributes { keyValue(9, a.key, a.value) }
        for e in span.events {
            message(11) { w in
                w.fixed64(1, e.time)
                w.string(2, e.name)
                for a in e.attributes { w.keyValue(3, a.key, a.value) }
            }
        }
        if span.isError {
            message(15) { w in
                if let m = span.statusMessage { w.string(2, m) }
                w.tag(3, 0); w.varint(2)  // STATUS_CODE_ERROR
            }
        }
    }

    /// A `KeyValue`: its lengths are known from the key and value, so it is written
    /// front to back with no shift (attributes are most of a span's bytes), the framing
    /// bytes around the key and the value each in one append.
    mutating func keyValue(_ field: UInt64, _ key: String, _ value: SpanRecord.Value) {
        let keyCount = key.utf8.count
        let anyLength: Int
        switch value {
        case .string(let s): anyLength = 1 + Self.varintSize(UInt64(s.utf8.count)) + s.utf8.count
        case .bool: anyLength = 2
        case .int(let i): anyLength = 1 + Self.varintSize(UInt64(bitPattern: i))
        case .double: anyLength = 9
        }
        let kvLength = 1 + Self.varintSize(UInt64(keyCount)) + keyCount + 1 + Self.varintSize(UInt64(anyLength)) + anyLength
        framing { p in
            var n = Self.put(field << 3 | 2, p)
            n += Self.put(UInt64(kvLength), p + n)
            p[n] = 0x0A  // KeyValue.key
            n += 1
            return n + Self.put(UInt64(keyCount), p + n)
        }
        appendUTF8(key)
        framing { p in
            p[0] = 0x12  // KeyValue.value: AnyValue
            var n = 1 + Self.put(UInt64(anyLength), p + 1)
            switch value {
            case .string(let s):
                p[n] = 0x0A
                n += 1
                n += Self.put(UInt64(s.utf8.count), p + n)
            case .bool(let b):
                p[n] = 0x10; p[n + 1] = b ? 1 : 0
                n += 2
            case .int(let i):
                p[n] = 0x18
                n += 1
                n += Self.put(UInt64(bitPattern: i), p + n)
            case .double(let d):
                p[n] = 0x21
                n += 1
                for k in 0..<8 { p[n + k] = UInt8(truncatingIfNeeded: d.bitPattern >> UInt64(8 * k)) }
                n += 8
            }
            return n
        }
        if case .string(let s) = value { appendUTF8(s) }
    }

    /// Up to 32 bytes made by `fill` (which returns how many it wrote) on the stack and
    /// appended at once: one capacity check instead of one a byte.
    @inline(__always)
    mutating func framing(_ fill: (UnsafeMutablePointer<UInt8>) -> Int) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { b in
            let n = fill(b.baseAddress!)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: b[0..<n]))
        }
    }

    /// Writes `value` as a varint at `p`; returns its length (at most 10).
    @inline(__always)
    static func put(_ value: UInt64, _ p: UnsafeMutablePointer<UInt8>) -> Int {
        var v = value
        var n = 0
        while v >= 0x80 {
            p[n] = UInt8(truncatingIfNeeded: v) | 0x80
            v >>= 7
            n += 1
        }
        p[n] = UInt8(truncatingIfNeeded: v)
        return n + 1
    }

    /// A string's bytes, copied in one go when it is stored contiguously (native strings are).
    mutating func appendUTF8(_ s: String) {
        if s.utf8.withContiguousStorageIfAvailable({ out.append(contentsOf: $0) }) == nil {
            out.append(contentsOf: s.utf8)
        }
    }

    static func varintSize(_ value: UInt64) -> Int {
        var n = 1
        var v = value >> 7
        while v != 0 { n += 1; v >>= 7 }
        return n
    }

    /// A trace id (two halves) or a span id (`low` nil), big-endian bytes.
    mutating func id(_ field: UInt64, _ high: UInt64, _ low: UInt64?) {
        framing { p in
            var n = Self.put(field << 3 | 2, p)
            p[n] = low == nil ? 8 : 16
            n += 1
            for k in 0..<8 { p[n + k] = UInt8(truncatingIfNeeded: high >> UInt64(56 - 8 * k)) }
            n += 8
            if let low {
                for k in 0..<8 { p[n + k] = UInt8(truncatingIfNeeded: low >> UInt64(56 - 8 * k)) }
                n += 8
            }
            return n
        }
    }

    mutating func tag(_ field: UInt64, _ wireType: UInt64) {
        varint(field << 3 | wireType)
    }

    mutating func varint(_ value: UInt64) {
        if value < 0x80 {
            out.append(UInt8(truncatingIfNeeded: value))
        } else {
            framing { Self.put(value, $0) }
        }
    }

    mutating func littleEndian(_ value: UInt64) {
        framing { p in
            for k in 0..<8 { p[k] = UInt8(truncatingIfNeeded: value >> UInt64(8 * k)) }
            return 8
        }
    }

    mutating func bigEndian(_ value: UInt64) {
        framing { p in
            for k in 0..<8 { p[k] = UInt8(truncatingIfNeeded: value >> UInt64(56 - 8 * k)) }
            return 8
        }
    }

    mutating func fixed64(_ field: UInt64, _ value: UInt64) {
        framing { p in
            let n = Self.put(field << 3 | 1, p)
            for k in 0..<8 { p[n + k] = UInt8(truncatingIfNeeded: value >> UInt64(8 * k)) }
            return n + 8
        }
    }

    mutating func string(_ field: UInt64, _ value: String) {
        tag(field, 2)
        varint(UInt64(value.utf8.count))
        appendUTF8(value)
    }

    /// A length-delimited sub-message written by `body`.
    mutating func message(_ field: UInt64, _ body: (inout OTLPProtobuf) -> Void) {
        tag(field, 2)
        let start = out.count
        body(&self)
        let length = out.count - start
        if length < 0x80 {
            out.insert(UInt8(truncatingIfNeeded: length), at: start)
        } else {
            var prefix: [UInt8] = []
            var v = UInt64(length)
            while v >= 0x80 { prefix.append(UInt8(truncatingIfNeeded: v) | 0x80); v >>= 7 }
            prefix.append(UInt8(truncatingIfNeeded: v))
            out.insert(contentsOf: prefix, at: start)
        }
    }
}

/// OTLP's JSON mapping: lowerCamelCase names, ids as hex strings, 64-bit integers as
/// decimal strings, enums as numbers (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding).
enum OTLPJSON {
    static func request(_ spans: [SpanRecord], serviceName: String) -> [UInt8] {
        var o: [UInt8] = []
        for (i, span) in spans.enumerated() {
            if i > 0 { o.append(0x2C) }
            encode(span, &o)
        }
        return request(encodedSpans: o, serviceName: serviceName)
    }

    /// The request around span objects already encoded and separated by commas.
    static func request(encodedSpans spans: [UInt8], serviceName: String) -> [UInt8] {
        var o: [UInt8] = []
        o.reserveCapacity(spans.count + 160 + serviceName.utf8.count)
        put("{\"resourceSpans\":[{\"resource\":{\"attributes\":[", &o)
        keyValue("service.name", .string(serviceName), &o)
        put("]},\"scopeSpans\":[{\"scope\":{\"name\":", &o)
        o += JSONLine.quoted(OTLPEncoding.scopeName)
        put("},\"spans\":[", &o)
        o += spans
        put("]}]}]}", &o)
        return o
    }

    static func encode(_ span: SpanRecord, _ o: inout [UInt8]) {
        put("{\"traceId\":\"\(span.traceID.hex)\",\"spanId\":\"\(span.spanID.hex)\"", &o)
        if let parent = span.parentSpanID { put(",\"parentSpanId\":\"\(parent.hex)\"", &o) }
        put(",\"name\":", &o)
        o += JSONLine.quoted(span.name)
        put(",\"kind\":\(span.kind.rawValue),\"startTimeUnixNano\":\"\(span.start)\",\"endTimeUnixNano\":\"\(span.end)\",\"attributes\":[", &o)
        attributes(span.attributes, &o)
        put("],\"events\":[", &o)
        for (i, e) in span.events.enumerated() {
            if i > 0 { o.append(0x2C) }
            put("{\"timeUnixNano\":\"\(e.time)\",\"name\":", &o)
            o += JSONLine.quoted(e.name)
            put(",\"attributes\":[", &o)
            attributes(e.attributes, &o)
            put("]}", &o)
        }
        put("]", &o)
        if span.isError {
            put(",\"status\":{\"code\":2", &o)
            if let m = span.statusMessage {
                put(",\"message\":", &o)
                o += JSONLine.quoted(m)
            }
            put("}", &o)
        }
        put("}", &o)
    }

    static func attributes(_ list: [SpanRecord.Attribute], _ o: inout [UInt8]) {
        for (i, a) in list.enumerated() {
            if i > 0 { o.append(0x2C) }
            keyValue(a.key, a.value, &o)
        }
    }

    static func keyValue(_ key: String, _ value: SpanRecord.Value, _ o: inout [UInt8]) {
        put("{\"key\":", &o)
        o += JSONLine.quoted(key)
        put(",\"value\":{", &o)
        switch value {
        case .string(let s):
            put("\"stringValue\":", &o)
            o += JSONLine.quoted(s)
        case .int(let i): put("\"intValue\":\"\(i)\"", &o)
        case .bool(let b): put("\"boolValue\":\(b)", &o)
        case .double(let d): put(d.isFinite ? "\"doubleValue\":\(d)" : "\"doubleValue\":0", &o)
        }
        put("}}", &o)
    }

    static func put(_ s: String, _ o: inout [UInt8]) { o.append(contentsOf: s.utf8) }
}

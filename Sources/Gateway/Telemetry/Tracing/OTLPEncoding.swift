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

/// Protobuf wire format: varints, fixed64 and length-delimited fields.
enum OTLPProtobuf {
    static func request(_ spans: [SpanRecord], serviceName: String) -> [UInt8] {
        var resource: [UInt8] = []
        message(1, keyValue("service.name", .string(serviceName)), into: &resource)  // Resource.attributes
        var scope: [UInt8] = []
        string(1, OTLPEncoding.scopeName, into: &scope)  // InstrumentationScope.name
        var scopeSpans: [UInt8] = []
        message(1, scope, into: &scopeSpans)  // ScopeSpans.scope
        for span in spans { message(2, encode(span), into: &scopeSpans) }  // ScopeSpans.spans
        var resourceSpans: [UInt8] = []
        message(1, resource, into: &resourceSpans)  // ResourceSpans.resource
        message(2, scopeSpans, into: &resourceSpans)  // ResourceSpans.scope_spans
        var out: [UInt8] = []
        message(1, resourceSpans, into: &out)  // ExportTraceServiceRequest.resource_spans
        return out
    }

    static func encode(_ span: SpanRecord) -> [UInt8] {
        var out: [UInt8] = []
        bytes(1, span.traceID.bytes, into: &out)
        bytes(2, span.spanID.bytes, into: &out)
        if let parent = span.parentSpanID { bytes(4, parent.bytes, into: &out) }
        string(5, span.name, into: &out)
        tag(6, 0, into: &out); varint(UInt64(span.kind.rawValue), into: &out)
        fixed64(7, span.start, into: &out)
        fixed64(8, span.end, into: &out)
        for a in span.attributes { message(9, keyValue(a.key, a.value), into: &out) }
        for e in span.events {
            var event: [UInt8] = []
            fixed64(1, e.time, into: &event)
            string(2, e.name, into: &event)
            for a in e.attributes { message(3, keyValue(a.key, a.value), into: &event) }
            message(11, event, into: &out)
        }
        if span.isError {
            var status: [UInt8] = []
            if let m = span.statusMessage { string(2, m, into: &status) }
            tag(3, 0, into: &status); varint(2, into: &status)  // STATUS_CODE_ERROR
            message(15, status, into: &out)
        }
        return out
    }

    static func keyValue(_ key: String, _ value: SpanRecord.Value) -> [UInt8] {
        var any: [UInt8] = []
        switch value {
        case .string(let s): string(1, s, into: &any)
        case .bool(let b): tag(2, 0, into: &any); varint(b ? 1 : 0, into: &any)
        case .int(let i): tag(3, 0, into: &any); varint(UInt64(bitPattern: i), into: &any)
        case .double(let d): tag(4, 1, into: &any); littleEndian(d.bitPattern, into: &any)
        }
        var kv: [UInt8] = []
        string(1, key, into: &kv)
        message(2, any, into: &kv)
        return kv
    }

    static func tag(_ field: UInt64, _ wireType: UInt64, into out: inout [UInt8]) {
        varint(field << 3 | wireType, into: &out)
    }

    static func varint(_ value: UInt64, into out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(truncatingIfNeeded: v))
    }

    static func littleEndian(_ value: UInt64, into out: inout [UInt8]) {
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: value >> UInt64(8 * i))) }
    }

    static func fixed64(_ field: UInt64, _ value: UInt64, into out: inout [UInt8]) {
        tag(field, 1, into: &out)
        littleEndian(value, into: &out)
    }

    static func bytes(_ field: UInt64, _ value: [UInt8], into out: inout [UInt8]) {
        tag(field, 2, into: &out)
        varint(UInt64(value.count), into: &out)
        out.append(contentsOf: value)
    }

    static func string(_ field: UInt64, _ value: String, into out: inout [UInt8]) {
        bytes(field, Array(value.utf8), into: &out)
    }

    static func message(_ field: UInt64, _ value: [UInt8], into out: inout [UInt8]) {
        bytes(field, value, into: &out)
    }
}

/// OTLP's JSON mapping: lowerCamelCase names, ids as hex strings, 64-bit integers as
/// decimal strings, enums as numbers (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding).
enum OTLPJSON {
    static func request(_ spans: [SpanRecord], serviceName: String) -> [UInt8] {
        var o: [UInt8] = []
        put("{\"resourceSpans\":[{\"resource\":{\"attributes\":[", &o)
        keyValue("service.name", .string(serviceName), &o)
        put("]},\"scopeSpans\":[{\"scope\":{\"name\":", &o)
        o += JSONLine.quoted(OTLPEncoding.scopeName)
        put("},\"spans\":[", &o)
        for (i, span) in spans.enumerated() {
            if i > 0 { o.append(0x2C) }
            encode(span, &o)
        }
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

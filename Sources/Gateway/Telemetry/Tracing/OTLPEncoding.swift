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

/// A growable byte buffer written through a pointer: one capacity check per field, no
/// uniqueness check or generic append per write (what an `[UInt8]` costs). A class, so an
/// event loop keeps one and reuses it for every request's spans.
final class ProtoBytes {
    @exclusivity(unchecked) private(set) var base: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked) private(set) var capacity: Int
    @exclusivity(unchecked) var count = 0

    init(capacity: Int = 1024) {
        self.capacity = max(capacity, 64)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// Room for `k` more bytes.
    @inline(__always)
    func ensure(_ k: Int) {
        if k > capacity &- count { grow(k) }
    }

    private func grow(_ k: Int) {
        // A span's bytes are bounded by what the gateway holds of its request (headers,
        // body limits), so this cannot overflow before the allocation fails.
        let needed = count + k
        var next = capacity
        while next < needed { next = next <= Int.max / 2 ? next * 2 : needed }
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: next)
        bigger.update(from: base, count: count)
        base.deallocate()
        base = bigger
        capacity = next
    }

    @inline(__always)
    func append(_ byte: UInt8) {
        ensure(1)
        base[count] = byte
        count += 1
    }

    @inline(__always)
    func append(_ bytes: UnsafeRawBufferPointer) {
        guard let from = bytes.baseAddress, bytes.count > 0 else { return }
        ensure(bytes.count)
        (base + count).update(from: from.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        count += bytes.count
    }

    /// Makes room for `k` bytes at `offset` by moving what follows it.
    func open(_ k: Int, at offset: Int) {
        ensure(k)
        (base + offset + k).update(from: base + offset, count: count - offset)
        count += k
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
    var array: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }
}

/// Protobuf wire format: varints, fixed64 and length-delimited fields, into one buffer.
/// A nested message is written in place and its length put in front of it afterwards
/// (one shift of its bytes), so a batch costs no allocation per field.
struct OTLPProtobuf: WireSink {
    let buffer: ProtoBytes

    init(buffer: ProtoBytes = ProtoBytes()) {
        self.buffer = buffer
    }

    /// What was written, as an array.
    var out: [UInt8] { buffer.array }

    mutating func appendWireByte(_ byte: UInt8) { buffer.append(byte) }
    mutating func appendWireBytes(_ bytes: UnsafeRawBufferPointer) { buffer.append(bytes) }

    static func request(_ spans: [SpanRecord], serviceName: String) -> [UInt8] {
        var w = OTLPProtobuf(buffer: ProtoBytes(capacity: spans.count * 400))
        for span in spans { w.message(2) { w in w.span(span) } }  // ScopeSpans.spans
        return w.buffer.bytes.withMemoryRebound(to: UInt8.self) { request(encodedSpans: $0, serviceName: serviceName) }
    }

    /// The request around spans already encoded as `ScopeSpans.spans` fields: one
    /// `ResourceSpans` (the resource's `service.name`) with one `ScopeSpans`.
    static func request(encodedSpans spans: some Collection<UInt8>, serviceName: String) -> [UInt8] {
        requestPrefix(spansLength: spans.count, serviceName: serviceName) + spans
    }

    /// What comes before `spansLength` bytes of encoded spans in a request: the exporter
    /// sends it and the batch's bytes as they are, without joining them.
    static func requestPrefix(spansLength: Int, serviceName: String) -> [UInt8] {
        var resource = OTLPProtobuf()
        resource.message(1) { w in w.keyValue(1, "service.name", .string(serviceName)) }  // ResourceSpans.resource
        var scope = OTLPProtobuf()
        scope.message(1) { w in w.string(1, OTLPEncoding.scopeName) }  // ScopeSpans.scope { name }
        let scopeSpansLength = scope.buffer.count + spansLength
        let scopeSpansHead = OTLPProtobuf()
        scopeSpansHead.tag(2, 2)  // ResourceSpans.scope_spans
        scopeSpansHead.varint(UInt64(scopeSpansLength))
        let resourceSpansLength = resource.buffer.count + scopeSpansHead.buffer.count + scopeSpansLength
        let head = OTLPProtobuf()
        head.tag(1, 2)  // ExportTraceServiceRequest.resource_spans
        head.varint(UInt64(resourceSpansLength))
        var out: [UInt8] = []
        out.reserveCapacity(head.buffer.count + resourceSpansLength - spansLength)
        out += head.buffer.bytes
        out += resource.buffer.bytes
        out += scopeSpansHead.buffer.bytes
        out += scope.buffer.bytes
        return out
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
    /// bytes around the key and the value each written at once.
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

    /// At most 32 bytes written by `fill` (which returns how many) straight into the buffer.
    @inline(__always)
    func framing(_ fill: (UnsafeMutablePointer<UInt8>) -> Int) {
        buffer.ensure(32)
        buffer.count += fill(buffer.base + buffer.count)
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
    func appendUTF8(_ s: String) {
        if s.utf8.withContiguousStorageIfAvailable({ buffer.append(UnsafeRawBufferPointer($0)) }) == nil {
            for b in s.utf8 { buffer.append(b) }
        }
    }

    static func varintSize(_ value: UInt64) -> Int {
        var n = 1
        var v = value >> 7
        while v != 0 { n += 1; v >>= 7 }
        return n
    }

    /// A trace id (two halves) or a span id (`low` nil), big-endian bytes.
    func id(_ field: UInt64, _ high: UInt64, _ low: UInt64?) {
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

    func tag(_ field: UInt64, _ wireType: UInt64) {
        varint(field << 3 | wireType)
    }

    func varint(_ value: UInt64) {
        framing { Self.put(value, $0) }
    }

    func fixed64(_ field: UInt64, _ value: UInt64) {
        framing { p in
            let n = Self.put(field << 3 | 1, p)
            for k in 0..<8 { p[n + k] = UInt8(truncatingIfNeeded: value >> UInt64(8 * k)) }
            return n + 8
        }
    }

    func string(_ field: UInt64, _ value: String) {
        tag(field, 2)
        varint(UInt64(value.utf8.count))
        appendUTF8(value)
    }

    /// A length-delimited sub-message written by `body`.
    mutating func message(_ field: UInt64, _ body: (inout OTLPProtobuf) -> Void) {
        tag(field, 2)
        let start = buffer.count
        body(&self)
        let length = UInt64(buffer.count - start)
        let k = Self.varintSize(length)
        buffer.open(k, at: start)
        _ = Self.put(length, buffer.base + start)
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
        requestPrefix(serviceName: serviceName) + spans + requestSuffix
    }

    /// What comes before the span objects of a request.
    static func requestPrefix(serviceName: String) -> [UInt8] {
        var o: [UInt8] = []
        put("{\"resourceSpans\":[{\"resource\":{\"attributes\":[", &o)
        keyValue("service.name", .string(serviceName), &o)
        put("]},\"scopeSpans\":[{\"scope\":{\"name\":", &o)
        o += JSONLine.quoted(OTLPEncoding.scopeName)
        put("},\"spans\":[", &o)
        return o
    }

    /// What comes after them.
    static let requestSuffix = Array("]}]}]}".utf8)

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

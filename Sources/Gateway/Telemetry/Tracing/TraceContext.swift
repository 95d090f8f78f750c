import Foundation

/// A W3C trace id: 16 bytes, as two big-endian halves.
public struct TraceID: Sendable, Hashable {
    public var high: UInt64
    public var low: UInt64
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }
    public var isValid: Bool { high != 0 || low != 0 }
    /// 32 lowercase hex digits.
    public var hex: String { Hex.string(high) + Hex.string(low) }
}

/// A W3C span id: 8 bytes, big-endian.
public struct SpanID: Sendable, Hashable {
    public var value: UInt64
    public init(_ value: UInt64) { self.value = value }
    public var isValid: Bool { value != 0 }
    /// 16 lowercase hex digits.
    public var hex: String { Hex.string(value) }
}

/// The W3C `traceparent` header (https://www.w3.org/TR/trace-context/#traceparent-header):
/// `00-<trace id>-<parent id>-<flags>`, lowercase hex.
public struct TraceParent: Sendable, Hashable {
    public var traceID: TraceID
    public var spanID: SpanID
    public var sampled: Bool

    public init(traceID: TraceID, spanID: SpanID, sampled: Bool) {
        self.traceID = traceID
        self.spanID = spanID
        self.sampled = sampled
    }

    /// Reads a header value from a client: nil when it is not a valid `traceparent` (it is
    /// then ignored, as the W3C spec asks). Versions above 00 are read as 00 when their
    /// first 55 characters have 00's shape and the next one, if any, is `-`.
    public init?<Bytes: Collection>(header: Bytes) where Bytes.Element == UInt8 {
        let b = Array(header.prefix(56))
        guard b.count >= 55, b[2] == 0x2D, b[35] == 0x2D, b[52] == 0x2D,
              let version = Hex.value(b[0..<2]), version != 0xFF,
              let high = Hex.value(b[3..<19]), let low = Hex.value(b[19..<35]),
              let span = Hex.value(b[36..<52]), let flags = Hex.value(b[53..<55])
        else { return nil }
        if version == 0 { guard header.count == 55 else { return nil } }
        else if b.count > 55 { guard b[55] == 0x2D else { return nil } }
        let trace = TraceID(high: high, low: low)
        guard trace.isValid, span != 0 else { return nil }
        self.init(traceID: trace, spanID: SpanID(span), sampled: flags & 1 == 1)
    }

    /// The header value, version 00.
    public var header: String {
        "00-\(traceID.hex)-\(spanID.hex)-\(sampled ? "01" : "00")"
    }

    /// Appends the header value to `out`, without a `String` in between.
    public func write(into out: inout [UInt8]) {
        out.append(contentsOf: [0x30, 0x30, 0x2D])
        Hex.append(traceID.high, to: &out)
        Hex.append(traceID.low, to: &out)
        out.append(0x2D)
        Hex.append(spanID.value, to: &out)
        out.append(contentsOf: [0x2D, 0x30, sampled ? 0x31 : 0x30])
    }
}

/// Lowercase hex, both ways, for ids.
enum Hex {
    /// The lowercase hex digit of a nibble (0...15), by arithmetic.
    @inline(__always)
    static func digit(_ nibble: UInt64) -> UInt8 {
        let n = UInt8(truncatingIfNeeded: nibble & 0xF)
        return n < 10 ? 0x30 &+ n : 0x57 &+ n
    }

    /// 16 digits at `to` (which has room for them).
    @inline(__always)
    static func write(_ value: UInt64, to: UnsafeMutablePointer<UInt8>) {
        for i in 0..<16 { to[i] = digit(value >> UInt64(60 - 4 * i)) }
    }

    static func append(_ value: UInt64, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { b in
            write(value, to: b.baseAddress!)
            out.append(contentsOf: b)
        }
    }

    static func string(_ value: UInt64) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(16)
        append(value, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The value of up to 16 lowercase hex digits; nil for anything else (uppercase too,
    /// which the W3C spec does not allow).
    static func value(_ digits: ArraySlice<UInt8>) -> UInt64? {
        guard !digits.isEmpty, digits.count <= 16 else { return nil }
        var v: UInt64 = 0
        for c in digits {
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x61...0x66: d = c - 0x61 + 10
            default: return nil
            }
            v = v << 4 | UInt64(d)
        }
        return v
    }
}

/// Which requests are recorded (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`). Not
/// recursive (no `indirect` box): exchanges copy it for each request.
public enum TraceSampler: Sendable, Equatable {
    case alwaysOn
    case alwaysOff
    /// A share of trace ids, 0...1.
    case ratio(Double)
    /// The client's `traceparent` decides when there is one; `root` otherwise.
    case parentBased(root: Root)

    /// The sampler of a request without a parent.
    public enum Root: Sendable, Equatable {
        case alwaysOn
        case alwaysOff
        case ratio(Double)
    }

    /// Whether a request in trace `id` is recorded; `parent` is the client's flag, if any.
    public func samples(_ id: TraceID, parent: Bool?) -> Bool {
        switch self {
        case .alwaysOn: return true
        case .alwaysOff: return false
        case .ratio(let r): return Self.ratio(r, id)
        case .parentBased(let root):
            if let parent { return parent }
            switch root {
            case .alwaysOn: return true
            case .alwaysOff: return false
            case .ratio(let r): return Self.ratio(r, id)
            }
        }
    }

    /// The low 8 bytes of the id against the ratio's share of 2^64, as other SDKs do.
    static func ratio(_ r: Double, _ id: TraceID) -> Bool {
        if r >= 1 { return true }
        if !(r > 0) { return false }
        let threshold = UInt64(exactly: (r * 18_446_744_073_709_551_616.0).rounded(.down)) ?? UInt64.max
        return id.low < threshold
    }
}

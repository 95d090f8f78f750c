import NIOCore

extension ByteBuffer {
    /// A `traceparent` value (version 00) written in place: each try sends one.
    mutating func writeTraceParent(_ p: TraceParent) {
        writeStaticString("00-")
        writeHex16(p.traceID.high)
        writeHex16(p.traceID.low)
        writeInteger(UInt8(ascii: "-"))
        writeHex16(p.spanID.value)
        writeStaticString(p.sampled ? "-01" : "-00")
    }

    /// 16 lowercase hex digits.
    private mutating func writeHex16(_ value: UInt64) {
        var shift = 60
        while shift >= 0 {
            writeInteger(Hex.digits[Int((value >> UInt64(shift)) & 0xF)])
            shift -= 4
        }
    }
}

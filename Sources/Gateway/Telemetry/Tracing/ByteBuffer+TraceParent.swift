import NIOCore

extension ByteBuffer {
    /// A `traceparent` value (version 00) written in place: each try sends one. The 55
    /// bytes are made on the stack and written in one go.
    mutating func writeTraceParent(_ p: TraceParent) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 55) { b in
            b[0] = 0x30; b[1] = 0x30; b[2] = 0x2D
            Hex.write(p.traceID.high, to: b.baseAddress! + 3)
            Hex.write(p.traceID.low, to: b.baseAddress! + 19)
            b[35] = 0x2D
            Hex.write(p.spanID.value, to: b.baseAddress! + 36)
            b[52] = 0x2D; b[53] = 0x30; b[54] = p.sampled ? 0x31 : 0x30
            writeBytes(UnsafeRawBufferPointer(b))
        }
    }
}

import NIOCore
import Wire

/// Wire's writers (`x-failover-attempts`) write straight into the response buffer.
extension ByteBuffer: WireSink {
    @inlinable public mutating func appendWireByte(_ byte: UInt8) { writeInteger(byte) }
    @inlinable public mutating func appendWireBytes(_ bytes: UnsafeRawBufferPointer) { writeBytes(bytes) }
}

import NIOCore

/// The header fields of one HTTP/1.1 message as they came off the wire: one byte array and
/// the ranges of each name and value in it. Nothing is decoded until it is asked for, and
/// fields are forwarded by copying their bytes.
struct WireHeaders {
    /// A field: where its name and value are in `bytes`.
    struct Field {
        var nameStart: Int32
        var nameEnd: Int32
        var valueStart: Int32
        var valueEnd: Int32
    }

    private(set) var bytes: [UInt8] = []
    private(set) var fields: [Field] = []

    init() {}

    init(_ pairs: [(String, String)]) {
        for (name, value) in pairs {
            appendName(Array(name.utf8)[...])
            appendValue(Array(value.utf8)[...])
        }
    }

    var count: Int { fields.count }
    var isEmpty: Bool { fields.isEmpty }

    // MARK: Building (the parser's callbacks hand names and values over in pieces)

    mutating func reserve(bytes: Int, fields: Int) {
        self.bytes.reserveCapacity(bytes)
        self.fields.reserveCapacity(fields)
    }

    /// Empties the fields, keeping the storage when nothing else holds it.
    mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        fields.removeAll(keepingCapacity: true)
    }

    /// Starts a new field whose name begins with `piece`.
    mutating func appendName<C: Collection>(_ piece: C) where C.Element == UInt8 {
        let start = Int32(bytes.count)
        bytes.append(contentsOf: piece)
        let end = Int32(bytes.count)
        fields.append(Field(nameStart: start, nameEnd: end, valueStart: end, valueEnd: end))
    }

    /// More of the last field's name.
    mutating func continueName(_ piece: UnsafeRawBufferPointer) {
        guard !fields.isEmpty else { return }
        bytes.append(contentsOf: piece)
        let end = Int32(bytes.count)
        fields[fields.count - 1].nameEnd = end
        fields[fields.count - 1].valueStart = end
        fields[fields.count - 1].valueEnd = end
    }

    /// The last field's value, or more of it.
    mutating func appendValue<C: Collection>(_ piece: C) where C.Element == UInt8 {
        guard !fields.isEmpty else { return }
        bytes.append(contentsOf: piece)
        fields[fields.count - 1].valueEnd = Int32(bytes.count)
    }

    // MARK: Reading

    func name(at index: Int) -> String {
        let f = fields[index]
        return String(decoding: bytes[Int(f.nameStart)..<Int(f.nameEnd)], as: UTF8.self)
    }

    func value(at index: Int) -> String {
        let f = fields[index]
        return String(decoding: bytes[Int(f.valueStart)..<Int(f.valueEnd)], as: UTF8.self)
    }

    /// Whether field `index` is named `lowercased` (an ASCII name in lower case), ignoring case.
    func nameIs(_ lowercased: StaticString, at index: Int) -> Bool {
        let f = fields[index]
        let length = Int(f.nameEnd - f.nameStart)
        guard length == lowercased.utf8CodeUnitCount else { return false }
        let want = lowercased.utf8Start
        return bytes.withUnsafeBufferPointer { b in
            var i = 0
            let base = Int(f.nameStart)
            while i < length {
                var c = b[base + i]
                if c >= 0x41 && c <= 0x5A { c |= 0x20 }
                if c != want[i] { return false }
                i += 1
            }
            return true
        }
    }

    /// The index of the first field named `lowercased`.
    func index(of lowercased: StaticString) -> Int? {
        for i in fields.indices where nameIs(lowercased, at: i) { return i }
        return nil
    }

    /// The first value of the field named `lowercased`.
    func first(_ lowercased: StaticString) -> String? {
        index(of: lowercased).map(value(at:))
    }

    func contains(_ lowercased: StaticString) -> Bool { index(of: lowercased) != nil }

    /// Whether field `index`'s value, without case, is `lowercased` or lists it (comma-separated).
    func valueHasToken(_ lowercased: String, at index: Int) -> Bool {
        value(at: index).lowercased().split(separator: ",").contains { $0.trimmingWhitespace() == lowercased }
    }

    /// Every field as (name, value) strings, in order.
    var pairs: [(String, String)] { fields.indices.map { (name(at: $0), value(at: $0)) } }

    /// Writes field `index` as `name: value\r\n`.
    func write(fieldAt index: Int, to out: inout ByteBuffer) {
        let f = fields[index]
        bytes.withUnsafeBufferPointer { b in
            out.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(b)[Int(f.nameStart)..<Int(f.nameEnd)]))
            out.writeStaticString(": ")
            out.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(b)[Int(f.valueStart)..<Int(f.valueEnd)]))
            out.writeStaticString("\r\n")
        }
    }
}

extension Substring {
    func trimmingWhitespace() -> Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return s
    }
}

extension ByteBuffer {
    /// Writes a header line `name: value\r\n`.
    @inline(__always)
    mutating func writeHeader(_ name: StaticString, _ value: String) {
        writeStaticString(name)
        writeStaticString(": ")
        writeString(value)
        writeStaticString("\r\n")
    }

    /// Writes a header line `name: value\r\n` with a decimal value.
    @inline(__always)
    mutating func writeHeader(_ name: StaticString, _ value: Int) {
        writeStaticString(name)
        writeStaticString(": ")
        writeDecimal(value)
        writeStaticString("\r\n")
    }

    /// Writes `value` in decimal ASCII without building a String.
    mutating func writeDecimal(_ value: Int) {
        if value < 0 {
            writeInteger(UInt8(ascii: "-"))
            writeDecimal(-value)
            return
        }
        if value < 10 {
            writeInteger(UInt8(ascii: "0") &+ UInt8(value))
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch
        var n = value
        var count = 0
        withUnsafeMutableBytes(of: &digits) { scratch in
            while n > 0 {
                scratch[23 - count] = UInt8(ascii: "0") &+ UInt8(n % 10)
                n /= 10
                count += 1
            }
            writeBytes(UnsafeRawBufferPointer(rebasing: scratch[(24 - count)...]))
        }
    }

    /// Writes `value` in lower-case hexadecimal (a chunk size).
    mutating func writeHex(_ value: Int) {
        let digits: StaticString = "0123456789abcdef"
        var shift = (Int.bitWidth - value.leadingZeroBitCount + 3) / 4 * 4 - 4
        if shift < 0 { shift = 0 }
        while shift >= 0 {
            writeInteger(digits.utf8Start[(value >> shift) & 0xF])
            shift -= 4
        }
    }
}

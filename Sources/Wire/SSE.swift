/// Server-sent events as the OpenAI chat API uses them: each event one `data: JSON` line
/// and a blank line, the stream ending with `data: [DONE]`. The writer (stand-ins) and the
/// reader of whole bodies (driver, gateway usage) in one place. The driver's incremental
/// per-chunk timer (`StreamTiming`) keeps its own byte state machine: it runs on every
/// chunk as it arrives, where a line splitter would have to buffer.
public enum SSE {
    /// The last event of a stream.
    public static let done = "data: [DONE]\n\n"

    /// One event carrying `payload` (which must not hold a newline: JSON written compactly).
    public static func event(_ payload: String) -> String { "data: " + payload + "\n\n" }

    /// Calls `body` with the payload of each `data:` line in a whole body: after `data:` and
    /// its optional spaces, without a trailing CR; `[DONE]` and empty payloads included.
    @inlinable
    public static func forEachData(in bytes: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> Void) {
        var start = 0
        let n = bytes.count
        while start < n {
            var end = start
            while end < n, bytes[end] != 0x0A { end += 1 }
            // "data:"
            if end - start >= 5, bytes[start] == 0x64, bytes[start + 1] == 0x61, bytes[start + 2] == 0x74,
               bytes[start + 3] == 0x61, bytes[start + 4] == 0x3A {
                var from = start + 5
                while from < end, bytes[from] == 0x20 { from += 1 }
                var to = end
                if to > from, bytes[to - 1] == 0x0D { to -= 1 }
                body(UnsafeBufferPointer(rebasing: bytes[from..<to]))
            }
            start = end + 1
        }
    }
}

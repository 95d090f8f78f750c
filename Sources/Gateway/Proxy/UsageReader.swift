import Wire

/// Reads `model` and `usage` from a chat completion, or from the chunks of a
/// Server-Sent Events stream, for the access log: with the driver's scanner and SSE
/// reader (Wire), so the log and the driver's records read a response the same way.
enum UsageReader {
    struct Usage {
        var model: String?
        var inputTokens: Int?
        var outputTokens: Int?
    }

    static func read(_ bytes: some Collection<UInt8>, contentType: String?) -> Usage {
        let stream = contentType.map(isEventStream) == true
        return bytes.withContiguousStorageIfAvailable { read($0, stream: stream) }
            ?? Array(bytes).withUnsafeBufferPointer { read($0, stream: stream) }
    }

    static func read(_ bytes: UnsafeBufferPointer<UInt8>, stream: Bool) -> Usage {
        var usage = Usage()
        guard stream else {
            merge(bytes, into: &usage)
            return usage
        }
        // A stream's copy keeps its tail, so its first line may be cut: that event does not
        // scan and is skipped; the usage chunk comes last.
        SSE.forEachData(in: bytes) { payload in
            guard !(payload.count == 6 && payload.elementsEqual("[DONE]".utf8)) else { return }
            merge(payload, into: &usage)
        }
        return usage
    }

    /// `text/event-stream`, with or without parameters (compared without Foundation).
    static func isEventStream(_ contentType: String) -> Bool {
        contentType.utf8.starts(with: "text/event-stream".utf8)
    }

    /// What one JSON object says; a later object's facts replace an earlier one's.
    private static func merge(_ bytes: UnsafeBufferPointer<UInt8>, into usage: inout Usage) {
        var scanner = ModelUsageScanner(bytes: bytes)
        guard let found = try? scanner.modelAndUsage() else { return }
        if let model = found.model { usage.model = model }
        if let prompt = found.usage?.prompt { usage.inputTokens = prompt }
        if let completion = found.usage?.completion { usage.outputTokens = completion }
    }
}

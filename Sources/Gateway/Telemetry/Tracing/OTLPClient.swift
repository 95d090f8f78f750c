import Foundation
import Wire

/// Blocking HTTP/1.1 POSTs to the collector on one kept-alive connection, on the
/// exporter's thread only (the data path never touches it). A connection is reused while
/// the collector answers with a `content-length` and without `connection: close`; a post
/// on a reused connection that the collector had closed meanwhile is sent once more on a
/// new one. The answer is hostile input: only its status line, `content-length` (checked)
/// and `connection` are read, and at most 64 KiB of it.
final class OTLPClient {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let endpoint: OTLPEndpoint
    private let head: [UInt8]
    private let timeout: Duration
    private var fd: Int32 = -1

    static let maxAnswer = 64 * 1024

    init(endpoint: OTLPEndpoint, contentType: String, headers: [(String, String)], timeout: Duration) {
        self.endpoint = endpoint
        self.timeout = timeout
        var h = "POST \(endpoint.path) HTTP/1.1\r\nhost: \(endpoint.host.contains(":") ? "[\(endpoint.host)]" : endpoint.host):\(endpoint.port)\r\ncontent-type: \(contentType)\r\n"
        for (k, v) in headers { h += "\(k): \(v)\r\n" }
        head = Array(h.utf8)
    }

    deinit { disconnect() }

    /// Posts the body made of `parts`, in order; the collector's status on a 2xx.
    func post(_ parts: [UnsafeRawBufferPointer]) -> Result<Int, Failure> {
        let reused = fd >= 0
        switch attempt(parts) {
        case .success(let status): return .success(status)
        case .failure(let failure):
            // A kept-alive connection the collector closed while idle: once more, fresh.
            if reused && failure.stale { return attempt(parts).mapError(\.failure) }
            return .failure(failure.failure)
        }
    }

    private struct AttemptFailure: Error {
        var failure: Failure
        /// Nothing came back on a reused connection: it was closed before this post.
        var stale: Bool
    }

    private func attempt(_ parts: [UnsafeRawBufferPointer]) -> Result<Int, AttemptFailure> {
        if fd < 0, let failure = connect() { return .failure(.init(failure: failure, stale: false)) }
        let length = parts.reduce(0) { $0 + $1.count }
        var request = head
        request += Array("content-length: \(length)\r\n\r\n".utf8)
        let sent = request.withUnsafeBytes { headBytes in sendAll([headBytes] + parts) }
        if let why = sent {
            disconnect()
            return .failure(.init(failure: Failure(description: "send: \(why)"), stale: true))
        }
        return readAnswer()
    }

    /// Connects to the endpoint's first address that takes the connection; nil on success.
    private func connect() -> Failure? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(endpoint.host, String(endpoint.port), &hints, &list)
        guard rc == 0, let first = list else {
            return Failure(description: "cannot resolve \(endpoint.host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        let micros = TraceClock.nanos(timeout) / 1000
        var tv = timeval(tv_sec: Int(clamping: micros / 1_000_000), tv_usec: Int(clamping: micros % 1_000_000))
        while let ai = cursor {
            let s = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
            if s >= 0 {
                // On Linux the send timeout bounds connect(2) too.
                setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                if Glibc.connect(s, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 {
                    var one: Int32 = 1
                    setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                    fd = s
                    return nil
                }
                lastError = String(cString: strerror(errno))
                close(s)
            }
            cursor = ai.pointee.ai_next
        }
        return Failure(description: "connect: \(lastError)")
    }

    private func disconnect() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    /// Writes every part in one `sendmsg`, resuming after short writes; nil when all went out.
    private func sendAll(_ parts: [UnsafeRawBufferPointer]) -> String? {
        var vectors = parts.filter { $0.count > 0 }.map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
        var first = 0
        while first < vectors.count {
            // sendmsg with MSG_NOSIGNAL: a collector that closed the connection is an
            // EPIPE here, not a SIGPIPE that would end the whole process.
            let n = vectors[first...].withUnsafeMutableBufferPointer { v -> Int in
                var message = msghdr()
                message.msg_iov = v.baseAddress
                message.msg_iovlen = v.count
                return sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                return String(cString: strerror(errno))
            }
            var left = n
            while first < vectors.count && left >= vectors[first].iov_len {
                left -= vectors[first].iov_len
                first += 1
            }
            if left > 0 {
                vectors[first].iov_base = vectors[first].iov_base + left
                vectors[first].iov_len -= left
            }
        }
        return nil
    }

    /// Reads the answer's head and its `content-length` bytes of body; keeps the connection
    /// when both came whole and the collector did not ask to close it.
    private func readAnswer() -> Result<Int, AttemptFailure> {
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var headEnd: Int?
        while headEnd == nil {
            guard answer.count < Self.maxAnswer else {
                disconnect()
                return .failure(.init(failure: Failure(description: "the collector's answer has no end of head in 64 KiB"), stale: false))
            }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                let why = n < 0 ? String(cString: strerror(errno)) : "closed"
                disconnect()
                return .failure(.init(failure: Failure(description: "no answer: \(why)"), stale: answer.isEmpty))
            }
            let searchFrom = max(0, answer.count - 3)
            answer += buffer[0..<n]
            headEnd = OTLPAnswerHead.endOfHead(answer, from: searchFrom)
        }
        let head = OTLPAnswerHead(answer[..<headEnd!])
        guard let status = head.status else {
            disconnect()
            return .failure(.init(failure: Failure(description: "not an HTTP answer"), stale: false))
        }
        // The body: read and dropped when its length is known and small; else the connection goes.
        var keep = head.keepAlive
        if let length = head.contentLength, length <= Self.maxAnswer {
            var have = answer.count - headEnd!
            while have < length {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, min($0.count, length - have)) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { keep = false; break }
                have += n
            }
            if have > length { keep = false }  // more than it said: not an answer to trust further
        } else {
            keep = false
        }
        if !keep { disconnect() }
        guard (200..<300).contains(status) else {
            return .failure(.init(failure: Failure(description: "the collector answered \(status)"), stale: false))
        }
        return .success(status)
    }
}

/// The parts of a collector's answer head the exporter reads: hostile bytes.
public struct OTLPAnswerHead: Sendable {
    /// 100...599, or nil when the status line is not HTTP/1.x's.
    public var status: Int?
    /// A `content-length` of digits only that fits; nil when absent, repeated differently or bad.
    public var contentLength: Int?
    /// HTTP/1.1 without `connection: close`, with no `transfer-encoding`.
    public var keepAlive = false

    /// The index just past the first CRLF CRLF at or after `from`.
    public static func endOfHead(_ bytes: [UInt8], from: Int) -> Int? {
        guard bytes.count >= 4 else { return nil }
        var i = max(from, 0)
        while i + 3 < bytes.count {
            if bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return i + 4 }
            i += 1
        }
        return nil
    }

    public init(_ head: ArraySlice<UInt8>) {
        let lines = head.split(separator: 10, omittingEmptySubsequences: true).map { $0.last == 13 ? $0.dropLast() : $0 }
        guard let statusLine = lines.first, statusLine.count >= 12,
              statusLine.starts(with: Array("HTTP/1.".utf8)),
              statusLine[statusLine.startIndex + 8] == 0x20 else { return }
        let digits = statusLine[(statusLine.startIndex + 9)..<(statusLine.startIndex + 12)]
        guard digits.allSatisfy({ (0x30...0x39).contains($0) }) else { return }
        let code = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard (100...599).contains(code) else { return }
        status = code
        var http11 = statusLine[statusLine.startIndex + 7] == 0x31
        var lengths: Set<Int> = []
        var badLength = false
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: 0x3A) else { continue }
            let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
            let value = String(decoding: line[line.index(after: colon)...], as: UTF8.self).trimmingCharacters(in: .whitespaces).lowercased()
            switch name {
            case "content-length":
                // Digits only, at most 18 of them: fits an Int, never traps.
                if !value.isEmpty, value.utf8.count <= 18, value.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let n = Int(value) {
                    lengths.insert(n)
                } else {
                    badLength = true
                }
            case "connection":
                if value.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == "close" }) { http11 = false }
            case "transfer-encoding":
                http11 = false
            default:
                continue
            }
        }
        if !badLength && lengths.count == 1 { contentLength = lengths.first }
        keepAlive = http11 && contentLength != nil
    }
}

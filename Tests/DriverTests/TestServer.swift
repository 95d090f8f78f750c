import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A tiny HTTP/1.1 server on 127.0.0.1, port 0, thread per connection, for engine tests.
/// It counts the connections it accepts, so tests can see keep-alive at work.
final class TestServer: @unchecked Sendable {
    struct Request: Sendable {
        var method: String
        var path: String
        var headers: [String: String]
        var body: [UInt8]
    }

    struct Response: Sendable {
        var status = 200
        var headers: [(String, String)] = [("Content-Type", "application/json")]
        var body = "{}"
        /// Wait this long before answering.
        var delay: Double = 0
        /// Reset the connection instead of answering.
        var reset = false
        /// Answer as a stream instead of `body`: the head at once, then each part as it comes
        /// (chunked transfer encoding, one chunk and one write per part, Nagle off), after its pause.
        var stream: [StreamPart]?
    }

    struct StreamPart: Sendable {
        /// Seconds to wait before sending it.
        var pause: Double
        var text: String
    }

    let port: UInt16
    private let listenFD: Int32
    private let lock = NSLock()
    private var _connections = 0
    private var _requests = 0
    private var clientFDs: Set<Int32> = []
    private var stopped = false
    private let handler: @Sendable (Request) -> Response

    var connections: Int { lock.withLock { _connections } }
    var requests: Int { lock.withLock { _requests } }

    init(handler: @escaping @Sendable (Request) -> Response) throws {
        self.handler = handler
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 512) == 0 else { close(fd); throw POSIXError(.EADDRINUSE) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        port = UInt16(bigEndian: addr.sin_port)
        listenFD = fd
        let t = Thread { [self] in acceptLoop() }
        t.start()
    }

    var base: String { "http://127.0.0.1:\(port)" }

    func stop() {
        lock.lock()
        stopped = true
        let fds = clientFDs
        lock.unlock()
        // The accept thread closes the socket when it leaves, so its number cannot be reused under it.
        shutdown(listenFD, Int32(SHUT_RDWR))
        for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    private func acceptLoop() {
        defer { close(listenFD) }
        while true {
            let c = accept(listenFD, nil, nil)
            if c < 0 {
                if errno == EINTR, !lock.withLock({ stopped }) { continue }
                return
            }
            lock.lock()
            if stopped { lock.unlock(); close(c); return }
            _connections += 1
            clientFDs.insert(c)
            lock.unlock()
            let t = Thread { [self] in serve(c) }
            t.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer {
            lock.withLock { _ = clientFDs.remove(fd) }
            close(fd)
        }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            // Read a head.
            var headEnd: Int?
            while headEnd == nil {
                if let r = find(buffer, [13, 10, 13, 10]) { headEnd = r; break }
                let n = read(fd, &chunk, chunk.count)
                if n <= 0 { return }
                buffer.append(contentsOf: chunk[0..<n])
            }
            let head = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
            var lines = head.components(separatedBy: "\r\n")
            let requestLine = lines.removeFirst().split(separator: " ")
            guard requestLine.count >= 2 else { return }
            var headers: [String: String] = [:]
            for l in lines {
                guard let colon = l.firstIndex(of: ":") else { continue }
                headers[l[..<colon].lowercased()] = l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            let length = Int(headers["content-length"] ?? "0") ?? 0
            let bodyStart = headEnd! + 4
            while buffer.count < bodyStart + length {
                let n = read(fd, &chunk, chunk.count)
                if n <= 0 { return }
                buffer.append(contentsOf: chunk[0..<n])
            }
            let body = Array(buffer[bodyStart..<bodyStart + length])
            buffer.removeFirst(bodyStart + length)
            lock.withLock { _requests += 1 }
            let response = handler(Request(method: String(requestLine[0]), path: String(requestLine[1]),
                                           headers: headers, body: body))
            if response.delay > 0 { usleep(UInt32(response.delay * 1e6)) }
            if response.reset {
                var linger = linger(l_onoff: 1, l_linger: 0)
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
                return
            }
            if let parts = response.stream {
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                var head = "HTTP/1.1 \(response.status) X\r\nTransfer-Encoding: chunked\r\n"
                for (k, v) in response.headers { head += "\(k): \(v)\r\n" }
                guard sendAll(fd, head + "\r\n") else { return }
                for part in parts {
                    if part.pause > 0 { usleep(UInt32(part.pause * 1e6)) }
                    guard part.text.utf8.count > 0 else { continue }
                    guard sendAll(fd, String(part.text.utf8.count, radix: 16) + "\r\n" + part.text + "\r\n") else { return }
                }
                guard sendAll(fd, "0\r\n\r\n") else { return }
                continue
            }
            var out = "HTTP/1.1 \(response.status) X\r\nContent-Length: \(response.body.utf8.count)\r\n"
            for (k, v) in response.headers { out += "\(k): \(v)\r\n" }
            out += "\r\n" + response.body
            guard sendAll(fd, out) else { return }
        }
    }

    private func sendAll(_ fd: Int32, _ text: String) -> Bool {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    private func find(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] {
            if Array(hay[i..<i + needle.count]) == needle { return i }
        }
        return nil
    }
}

/// Collects records from a driver run, thread-safely.
final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var _records: [RequestRecord] = []
    var records: [RequestRecord] { lock.withLock { _records } }
    func add(_ r: RequestRecord) { lock.withLock { _records.append(r) } }
    var sink: RecordSink { RecordSink(record: { [self] in add($0) }) }
}

import Driver

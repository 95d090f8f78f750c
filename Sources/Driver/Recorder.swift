#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Appends records to a JSONL file. Lines are buffered per engine loop turn and written with
/// one `write` on `flush`, so a killed run loses at most the requests still in flight.
public final class Recorder: @unchecked Sendable {
    public let path: String
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var failed: String?
    private let lock = SimpleLock()

    public struct OpenError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Creates (or truncates) `path`; `-` writes to standard output.
    public init(path: String) throws(OpenError) {
        self.path = path
        if path == "-" {
            fd = 1
        } else {
            let f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard f >= 0 else {
                throw OpenError(description: "--record \(path): cannot create the file: \(String(cString: strerror(errno)))")
            }
            fd = f
        }
        buffer.reserveCapacity(1 << 16)
    }

    deinit {
        flush()
        if fd > 2 { close(fd) }
    }

    /// Queues one record as a line.
    public func record(_ r: RequestRecord) {
        let line = r.jsonLine
        lock.withLock {
            buffer.append(contentsOf: line.utf8)
            buffer.append(0x0A)
        }
    }

    /// Writes what is queued.
    public func flush() {
        lock.withLock {
            guard !buffer.isEmpty, failed == nil else { return }
            var done = 0
            buffer.withUnsafeBytes { raw in
                while done < raw.count {
                    let n = write(fd, raw.baseAddress! + done, raw.count - done)
                    if n < 0 {
                        if errno == EINTR { continue }
                        failed = "--record \(path): write failed: \(String(cString: strerror(errno)))"
                        return
                    }
                    done += n
                }
            }
            buffer.removeAll(keepingCapacity: true)
        }
    }

    /// The write error, if one happened.
    public var error: String? { lock.withLock { failed } }

    /// A sink that records to this file.
    public var sink: RecordSink {
        RecordSink(record: { [self] in record($0) }, flush: { [self] in flush() })
    }
}

/// A pthread mutex; enough for the few counters shared between the engine and its readers.
public final class SimpleLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    public init() { pthread_mutex_init(mutex, nil) }
    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }
    @inline(__always) public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// Reads a file line by line (streaming), giving 1-based line numbers. A line longer than
/// `maxLineBytes` is never held: it is skipped, its number still counts, and `overlong`
/// hears of it (a hostile file of one endless line must not take the machine's memory).
public final class LineReader {
    private let file: UnsafeMutablePointer<FILE>
    public private(set) var lineNumber = 0
    /// Bytes read so far, and the most to read (lines starting before it are read whole).
    private var consumed: Int64 = 0
    /// The byte count this reader stops at, if any (see `init(path:limit:)`).
    public let limit: Int64?
    /// The longest line kept (records and access-log lines are a few hundred bytes).
    public static let maxLineBytes = 16 << 20
    /// Called with the number of each line longer than `maxLineBytes`, which is skipped.
    public var overlong: ((Int) -> Void)?
    /// Lines skipped for their length.
    public private(set) var overlongLines = 0

    private var buffer = [UInt8](repeating: 0, count: 1 << 16)
    private var bufferStart = 0
    private var bufferEnd = 0
    private var atEOF = false
    private var line: [UInt8] = []

    public struct OpenError: Error, CustomStringConvertible {
        public var description: String
    }

    /// `limit`: stop at that many bytes. `snapshotLimit`: stop at the size the file had when
    /// opened, so a file that grows while it is read (a gateway's access log being replayed
    /// against that gateway) still ends; ignored for what cannot seek (pipes).
    public init(path: String, limit: Int64? = nil, snapshotLimit: Bool = false) throws(OpenError) {
        guard let f = fopen(path, "r") else {
            throw OpenError(description: "\(path): cannot open: \(String(cString: strerror(errno)))")
        }
        file = f
        if let limit {
            self.limit = limit
        } else if snapshotLimit, fseeko(f, 0, SEEK_END) == 0 {
            let size = Int64(ftello(f))
            self.limit = size >= 0 ? size : nil
            rewind(f)
        } else {
            self.limit = nil
        }
    }

    deinit {
        fclose(file)
    }

    /// Refills the buffer; false at the end of the file.
    private func fill() -> Bool {
        guard !atEOF else { return false }
        let n = buffer.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
        bufferStart = 0
        bufferEnd = n
        if n == 0 { atEOF = true }
        return n > 0
    }

    /// The next line without its newline, or nil at the end of the file.
    public func next() -> String? {
        while true {
            if let limit, consumed >= limit { return nil }
            line.removeAll(keepingCapacity: line.count <= 1 << 20)
            var length = 0 // bytes of this line, newline included, kept or not
            var tooLong = false
            var ended = false
            while !ended {
                if bufferStart == bufferEnd, !fill() { break }
                let chunk = buffer.withUnsafeBufferPointer { b -> (Int, Bool) in
                    let base = b.baseAddress! + bufferStart
                    let available = bufferEnd - bufferStart
                    if let nl = memchr(base, 0x0A, available) {
                        return (base.distance(to: nl.assumingMemoryBound(to: UInt8.self)) + 1, true)
                    }
                    return (available, false)
                }
                let (take, foundNewline) = chunk
                if foundNewline, length == 0 {
                    // The common case: the whole line is in the buffer; no copy before the String.
                    let from = bufferStart
                    var to = bufferStart + take
                    bufferStart = to
                    consumed += Int64(take)
                    lineNumber += 1
                    // (The buffer is far smaller than `maxLineBytes`: such a line is never too long.)
                    while to > from, buffer[to - 1] == 0x0A || buffer[to - 1] == 0x0D { to -= 1 }
                    return buffer.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[from..<to]), as: UTF8.self) }
                }
                if !tooLong {
                    if line.count + take > Self.maxLineBytes + 2 {
                        tooLong = true
                        line.removeAll()
                    } else {
                        line.append(contentsOf: buffer[bufferStart..<(bufferStart + take)])
                    }
                }
                bufferStart += take
                length += take
                ended = foundNewline
            }
            guard length > 0 else { return nil }
            consumed += Int64(length)
            lineNumber += 1
            if tooLong {
                overlongLines += 1
                overlong?(lineNumber)
                continue
            }
            var len = line.count
            while len > 0, line[len - 1] == 0x0A || line[len - 1] == 0x0D { len -= 1 }
            return String(decoding: line[0..<len], as: UTF8.self)
        }
    }
}

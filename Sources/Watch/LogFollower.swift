import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Splits bytes into lines. A line longer than `maxLine` is given cut at `maxLine + 1`
/// bytes, so the reader can tell it is too long without holding all of it.
public struct LineSplitter: Sendable {
    public let maxLine: Int
    private var partial: [UInt8] = []

    public init(maxLine: Int) { self.maxLine = max(1, maxLine) }

    /// Calls `line` for every complete line in `bytes` (without the newline).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ line: (ArraySlice<UInt8>) -> Void) {
        let b = bytes.bindMemory(to: UInt8.self)
        guard let base = b.baseAddress else { return }
        var start = 0
        while start < b.count {
            // memchr: the newline search is most of the splitting at thousands of lines a second.
            let found = memchr(base + start, Int32(UInt8(ascii: "\n")), b.count - start)
            let nl: Int? = found.map { UnsafeRawPointer($0) - UnsafeRawPointer(base) }
            let end = nl ?? b.count
            if partial.isEmpty, nl != nil {
                line(Array(b[start..<min(end, start + maxLine + 1)])[...])
            } else {
                let room = maxLine + 1 - partial.count
                if room > 0 { partial.append(contentsOf: b[start..<min(end, start + room)]) }
                if nl != nil {
                    line(partial[...])
                    partial.removeAll(keepingCapacity: true)
                }
            }
            start = end + 1
        }
    }

    /// What is left without a newline (at the end of a file that will not grow).
    public mutating func flush(_ line: (ArraySlice<UInt8>) -> Void) {
        if !partial.isEmpty { line(partial[...]) }
        partial.removeAll()
    }
}

/// Follows a file like `tail -F`: waits for it to exist, reads what is appended, and
/// reopens it when it is replaced (rotation) or starts again after a truncation. `-` reads
/// standard input to its end. Runs on its own thread until `stop()`.
public final class LogFollower: @unchecked Sendable {
    public enum Notice: Sendable {
        case waiting(String)
        case opened(String)
        case rotated(String)
        case truncated(String)
        case ended(String)
    }

    public let path: String
    /// Existing content is read too (a lab's log from its start); `fromEnd` skips it.
    public let fromEnd: Bool
    private let lock = NSLock()
    private var stopped = false
    private let poll: Double

    public init(path: String, fromEnd: Bool = false, poll: Double = 0.1) {
        self.path = path
        self.fromEnd = fromEnd
        self.poll = poll
    }

    public func stop() { lock.lock(); stopped = true; lock.unlock() }
    var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    /// Reads until stopped (or standard input ends), giving each line to `line`.
    public func run(maxLine: Int, line: (ArraySlice<UInt8>) -> Void, notice: (Notice) -> Void) {
        var splitter = LineSplitter(maxLine: maxLine)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 8)
        defer { buffer.deallocate() }
        if path == "-" {
            while !isStopped {
                let n = read(0, buffer.baseAddress, buffer.count)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { break }
                splitter.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), line)
            }
            splitter.flush(line)
            notice(.ended("standard input"))
            return
        }
        var fd: Int32 = -1
        var identity: (dev: UInt64, ino: UInt64)?
        var offset: Int64 = 0
        var saidWaiting = false
        var first = true
        defer { if fd >= 0 { close(fd) } }
        while !isStopped {
            if fd < 0 {
                fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else {
                    if !saidWaiting { notice(.waiting(path)); saidWaiting = true }
                    sleepPoll()
                    continue
                }
                var st = stat()
                _ = fstat(fd, &st)
                identity = (UInt64(st.st_dev), UInt64(st.st_ino))
                offset = 0
                if first && fromEnd { offset = Int64(st.st_size); _ = lseek(fd, off_t(offset), SEEK_SET) }
                first = false
                notice(.opened(path))
            }
            // Read all there is now.
            var readAny = false
            while true {
                let n = read(fd, buffer.baseAddress, buffer.count)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { break }
                readAny = true
                offset += Int64(n)
                splitter.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), line)
                if isStopped { return }
            }
            if readAny { continue }
            // At the end: was the file truncated, or replaced by another?
            var now = stat()
            if stat(path, &now) != 0 {
                // Moved away and not yet recreated: keep the old one until a new one appears.
                sleepPoll()
                continue
            }
            if (UInt64(now.st_dev), UInt64(now.st_ino)) != identity! {
                // Rotated: what the old file still had was read above; continue with the new one.
                splitter.flush(line)
                close(fd)
                fd = -1
                notice(.rotated(path))
                continue
            }
            if Int64(now.st_size) < offset {
                splitter.flush(line)
                _ = lseek(fd, 0, SEEK_SET)
                offset = 0
                notice(.truncated(path))
                continue
            }
            sleepPoll()
        }
    }

    private func sleepPoll() {
        Thread.sleep(forTimeInterval: poll)
    }
}

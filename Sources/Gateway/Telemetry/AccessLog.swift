import Foundation
import NIOConcurrencyHelpers

/// Appends access-log lines to a file descriptor, whole lines per `write(2)`, so a line
/// is either wholly in the file or not at all, even if the process is killed.
public final class AccessLogWriter: Sendable {
    private let fd: Int32
    private let ownsDescriptor: Bool
    private let lock = NIOLock()

    /// Standard output.
    public static let standardOutput = AccessLogWriter(fd: STDOUT_FILENO, owns: false)

    private init(fd: Int32, owns: Bool) {
        self.fd = fd
        self.ownsDescriptor = owns
    }

    /// Opens `path` for appending, creating it if needed.
    public convenience init(path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw AccessLogError(path: path, reason: String(cString: strerror(errno)))
        }
        self.init(fd: fd, owns: true)
    }

    deinit {
        if ownsDescriptor { close(fd) }
    }

    /// Appends lines that each end with a newline, in one `write(2)` when the kernel takes it.
    func write(lines bytes: [UInt8]) {
        lock.withLock {
            bytes.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                    if n < 0 {
                        if errno == EINTR { continue }
                        return
                    }
                    offset += n
                }
            }
        }
    }
}

/// The access log could not be opened.
public struct AccessLogError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "cannot open access log \(path): \(reason)" }
}

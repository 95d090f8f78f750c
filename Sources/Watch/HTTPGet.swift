import CShims
import Foundation

/// A blocking HTTP GET with libcurl's easy interface, for the admin and metrics polls.
///
/// Why libcurl easy: the project links libcurl already (CShims, the driver), a poll is one
/// GET every half second per source on that source's own thread, and this is some 60 lines.
/// NIO has no HTTP client (a pipeline, a handler and a promise would be more code), and the
/// driver's engine is built for load and records, not for reading a body.
public final class HTTPGet {
    public struct Response: Sendable {
        public var status: Int
        public var body: [UInt8]
    }

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    private static let global: Void = { _ = curl_global_init(3) }()  // CURL_GLOBAL_ALL, once
    private let easy: UnsafeMutableRawPointer
    private let box = Body()
    public let maxBytes: Int

    final class Body {
        var bytes: [UInt8] = []
        var limit = 0
        var overLimit = false
    }

    /// `timeout` covers the whole exchange.
    public init?(timeout: Double, maxBytes: Int) {
        _ = Self.global
        guard let easy = curl_easy_init() else { return nil }
        self.easy = easy
        self.maxBytes = maxBytes
        box.limit = maxBytes
        let ms = Int(max(50, min(timeout, 600)) * 1000)  // checked: clamped to 50 ms...10 min
        _ = fl_curl_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = fl_curl_setopt_long(easy, CURLOPT_TIMEOUT_MS, ms)
        _ = fl_curl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, min(ms, 2000))
        _ = fl_curl_setopt_long(easy, CURLOPT_HTTPGET, 1)
        _ = fl_curl_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0)
        // A fresh connection each poll: "reachable" means the port takes connections now, not
        // that an old keep-alive connection survived the listener. Two a second cost nothing.
        _ = fl_curl_setopt_long(easy, CURLOPT_FORBID_REUSE, 1)
        _ = fl_curl_setopt_string(easy, CURLOPT_ACCEPT_ENCODING, "")  // gzip if the server offers it
        _ = fl_curl_setopt_data_callback(easy, CURLOPT_WRITEFUNCTION, bodyCallback)
        _ = fl_curl_setopt_pointer(easy, CURLOPT_WRITEDATA, Unmanaged.passUnretained(box).toOpaque())
    }

    deinit { curl_easy_cleanup(easy) }

    public func get(_ url: String) -> Result<Response, Failure> {
        box.bytes.removeAll(keepingCapacity: true)
        box.overLimit = false
        _ = fl_curl_setopt_string(easy, CURLOPT_URL, url)
        let code = curl_easy_perform(easy)
        if box.overLimit { return .failure(Failure(description: "answer larger than \(maxBytes >> 20) MiB")) }
        guard code == CURLE_OK else {
            return .failure(Failure(description: String(cString: curl_easy_strerror(code)).lowercased()))
        }
        var status = 0
        _ = fl_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        return .success(Response(status: status, body: box.bytes))
    }
}

private let bodyCallback: fl_curl_data_callback = { ptr, size, count, userdata in
    let n = size * count
    guard let userdata, let ptr else { return n }
    let box = Unmanaged<HTTPGet.Body>.fromOpaque(userdata).takeUnretainedValue()
    guard box.bytes.count + n <= box.limit else {
        box.overLimit = true
        return 0  // libcurl ends the transfer with a write error
    }
    box.bytes.append(contentsOf: UnsafeRawBufferPointer(start: ptr, count: n))
    return n
}

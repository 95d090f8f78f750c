import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Testing
@testable import Gateway

/// Collects one upstream answer, as an exchange would.
private final class AnswerCollector: UpstreamResponseDelegate, @unchecked Sendable {
    var status = 0
    var body = ""
    let done: EventLoopPromise<Void>
    init(done: EventLoopPromise<Void>) { self.done = done }
    func upstreamHead(_ head: MessageHead, on connection: UpstreamConnection) { status = head.status }
    func upstreamBody(_ buffer: ByteBuffer, on connection: UpstreamConnection) { body += String(buffer: buffer) }
    func upstreamEnd(on connection: UpstreamConnection) { done.succeed() }
    func upstreamFailed(_ error: Error, on connection: UpstreamConnection) { done.fail(error) }
    func upstreamReadComplete(on connection: UpstreamConnection) {}
}

/// Answers every request on a TLS connection with a fixed completion.
private final class TLSAnswer: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    var seen = ""
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        seen += String(buffer: unwrapInboundIn(data))
        guard seen.contains("\r\n\r\n{}") else { return }
        seen = ""
        let body = #"{"model":"gpt-4o-mini","usage":{"prompt_tokens":1,"completion_tokens":2}}"#
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n\(String(body.utf8.count, radix: 16))\r\n\(body)\r\n0\r\n\r\n")), promise: nil)
    }
}

extension OverSockets {
    @Suite("TLS to an upstream (the path --real-upstreams takes)", .serialized)
    struct TLSUpstreamTests {
        /// A throwaway self-signed certificate for `localhost`, made with openssl.
        static func selfSigned() throws -> (key: NIOSSLPrivateKey, certificate: NIOSSLCertificate) {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let openssl = Process()
            openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            openssl.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                                 "-addext", "subjectAltName=DNS:localhost",
                                 "-keyout", dir.appendingPathComponent("key.pem").path, "-out", dir.appendingPathComponent("cert.pem").path]
            openssl.standardOutput = FileHandle.nullDevice
            openssl.standardError = FileHandle.nullDevice
            try openssl.run()
            openssl.waitUntilExit()
            try #require(openssl.terminationStatus == 0, "openssl could not make a certificate")
            return (try NIOSSLPrivateKey(file: dir.appendingPathComponent("key.pem").path, format: .pem),
                    try #require(try NIOSSLCertificate.fromPEMFile(dir.appendingPathComponent("cert.pem").path).first))
        }

        @Test("a pooled upstream connection speaks TLS, checks the server name, and its chunked answer is parsed")
        func tlsUpstream() async throws {
            let (key, certificate) = try Self.selfSigned()
            let serverContext = try NIOSSLContext(configuration: .makeServerConfiguration(certificateChain: [.certificate(certificate)], privateKey: .privateKey(key)))
            let server = try await ServerBootstrap(group: TestClient.group)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: serverContext))
                        try channel.pipeline.syncOperations.addHandler(TLSAnswer())
                    }
                }
                .bind(host: "127.0.0.1", port: 0).get()
            defer { Task { try? await server.close() } }
            let port = server.localAddress!.port!

            var trusting = TLSConfiguration.makeClientConfiguration()
            trusting.trustRoots = .certificates([certificate])
            let clientContext = try NIOSSLContext(configuration: trusting)
            let loop = TestClient.group.next()
            let request = "POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\ncontent-length: 2\r\n\r\n{}"

            /// Connects through a pool of its own and sends one request, all on the pool's loop.
            func ask(serverName: String) async throws -> (Int, String) {
                let key = UpstreamKey(address: UpstreamAddress(host: "127.0.0.1", port: port, tls: true), serverName: serverName)
                return try await loop.flatSubmit { () -> EventLoopFuture<(Int, String)> in
                    let pool = UpstreamPool(eventLoop: loop, tlsContext: clientContext, accessLog: nil)
                    let done = loop.makePromise(of: Void.self)
                    let collector = AnswerCollector(done: done)
                    return pool.connect(key).assumeIsolated().flatMap { connection in
                        connection.delegate = collector
                        connection.channel.writeAndFlush(ByteBuffer(string: request), promise: nil)
                        return done.futureResult.assumeIsolated().map { () -> (Int, String) in
                            connection.channel.close(promise: nil)
                            return (collector.status, collector.body)
                        }.nonisolated()
                    }.nonisolated()
                }.get()
            }

            let (status, body) = try await ask(serverName: "localhost")
            #expect(status == 200)
            #expect(body == #"{"model":"gpt-4o-mini","usage":{"prompt_tokens":1,"completion_tokens":2}}"#)
            // The certificate is for localhost: another name must not be accepted.
            await #expect(throws: (any Error).self) { _ = try await ask(serverName: "api.openai.com") }
        }
    }
}

import ArgumentParser
import Foundation
import Lab

/// Where the admin port listens and what guards it (`gateway`).
struct AdminFlags: ParsableArguments {
    @Option(name: .customLong("admin-listen"), help: ArgumentHelp("Address the admin port listens on. Loopback by default even when --listen is not: the admin API switches faults and ends evictions.", valueName: "address"))
    var adminListen = "127.0.0.1"

    @Option(name: .customLong("admin-token"), help: ArgumentHelp("Require 'Authorization: Bearer TOKEN' on the admin API's write calls (POST). Also read from FAILOVER_LAB_ADMIN_TOKEN; prefer that, a flag shows in ps.", valueName: "token"))
    var adminToken: String?

    static let tokenVariable = "FAILOVER_LAB_ADMIN_TOKEN"

    /// The token from the flag, else from the environment; nil for none.
    var token: String? {
        if let adminToken { return adminToken }
        let fromEnvironment = ProcessInfo.processInfo.environment[Self.tokenVariable] ?? ""
        return fromEnvironment.isEmpty ? nil : fromEnvironment
    }

    func validate() throws {
        if adminListen.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--admin-listen needs an address, like 127.0.0.1") }
        if let token {
            let source = adminToken != nil ? "--admin-token" : Self.tokenVariable
            // Compared with a header value: visible ASCII only, so it can be sent at all.
            guard !token.isEmpty, token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw ValidationError("\(source) must be visible ASCII characters (no spaces or control characters)")
            }
        }
    }

    func apply(to options: inout LabOptions) {
        options.adminHost = adminListen
        options.adminToken = token
    }
}

// swift-tools-version:6.0
import PackageDescription

/// For the hot paths (Gateway, Driver): no run-time exclusivity checks in release builds.
/// Debug builds, which the tests run, keep them.
let uncheckedExclusivityInRelease: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "failover-lab",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "failover-lab", targets: ["failover-lab"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // Typed C wrappers for what Swift cannot import: ncurses macros, libcurl's variadic calls.
        .target(
            name: "CShims",
            linkerSettings: [.linkedLibrary("ncursesw"), .linkedLibrary("curl")]
        ),
        // Node's http-parser (Debian's libhttp-parser-dev): the gateway's HTTP/1.1 wire parser.
        .systemLibrary(
            name: "CHTTPParser",
            providers: [.apt(["libhttp-parser-dev"])]
        ),
        // Wire formats the targets share (x-failover-attempts, JSON string escaping, SSE
        // framing, the response usage scanner): one writer and one reader each, so gateway, driver
        // and dashboard cannot drift. They are on the hot paths of both: same release setting.
        .target(name: "Wire", swiftSettings: uncheckedExclusivityInRelease),
        // Config, balancer, proxy and telemetry of the in-process gateway.
        .target(
            name: "Gateway",
            dependencies: [
                "CHTTPParser", "Wire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Yams", package: "Yams"),
            ],
            // The data path's state lives on one event loop at a time, where accesses cannot
            // overlap; checking each access at run time cost about 3% of the gateway's CPU.
            swiftSettings: uncheckedExclusivityInRelease
        ),
        // The lab's stand-ins (http-429 server, mock OpenAI) and their live fault controls.
        .target(
            name: "Upstreams",
            dependencies: [
                "Wire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // Traffic plans and pacers (pure), the libcurl engine, records, replay, reports.
        .target(
            name: "Driver",
            dependencies: [
                "CShims", "Wire",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Yams", package: "Yams"),
            ],
            // The engine's state is used by its one thread; run-time access checks cost it
            // a share of the closed loop's budget.
            swiftSettings: uncheckedExclusivityInRelease
        ),
        // Wiring of a lab: stand-ins started per the Scenario, then the gateway pointed at them;
        // its steps (the Driver's expectations and plans) run by the step engine and `test`.
        .target(
            name: "Lab",
            dependencies: [
                "Wire", "Gateway", "Upstreams", "Driver",
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // Watching a gateway from outside, through what it reports: agentgateway's (or ours)
        // /config_dump, access-log lines and Prometheus text, parsed as hostile input, and the
        // one stream of provider-state events every source (the in-process lab too) produces.
        .target(
            name: "Watch",
            dependencies: ["CShims", "Wire", "Driver", "Gateway"]
        ),
        // The dashboard: LabModel (pure), panels drawing into a Screen, themes, keymap, the ncurses terminal.
        .target(
            name: "TUI",
            dependencies: [
                "CShims", "Gateway", "Driver", "Lab", "Upstreams", "Wire", "Watch",
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "failover-lab",
            dependencies: [
                "Gateway", "Upstreams", "Lab", "Driver", "TUI", "Watch",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Every parser of hostile input, as a function of bytes: for libFuzzer and the corpus tests.
        .target(
            name: "FuzzTargets",
            dependencies: ["Gateway", "Upstreams", "Driver", "Wire", "Lab", "Watch"]
        ),
        // libFuzzer's entry when built by scripts/fuzz (-DFUZZING), a corpus runner otherwise.
        .executableTarget(
            name: "failover-fuzz",
            dependencies: ["FuzzTargets"],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .testTarget(
            name: "FuzzTests",
            dependencies: ["FuzzTargets"]
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "Wire",
                "Gateway", "Upstreams", "Lab", "Driver", "Watch",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(
            name: "TUITests",
            dependencies: ["TUI", "Gateway", "Driver", "Lab", "Upstreams", "Wire", "Watch"],
            exclude: ["Snapshots"]
        ),
        .testTarget(
            name: "DriverTests",
            dependencies: ["Driver", "CShims", "Wire"]
        ),
        .testTarget(
            name: "WatchTests",
            dependencies: ["Watch", "Driver", "Wire"]
        ),
        .testTarget(
            name: "WireTests",
            dependencies: ["Wire", "Gateway", "Driver", "TUI"]
        ),
    ]
)

/// What the gateway tells the outside (dashboard, tests): finished requests and
/// changes in provider health.
public enum GatewayEvent: Sendable {
    case request(RequestLog)
    case health(backend: String, BalancerEvent)
}

/// Receives gateway events; called from event-loop threads, so it must be quick.
public typealias GatewayEventSink = @Sendable (GatewayEvent) -> Void

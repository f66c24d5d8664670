/// Wakes the webhook dispatcher when a transaction may have written to the outbox, so a
/// delivery starts right after the commit instead of at the next poll. Pokes coalesce:
/// however many arrive while the dispatcher is busy, it wakes once.
public final class OutboxSignal: Sendable {
    public let wakes: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    public init() {
        (wakes, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func poke() { continuation.yield() }
    public func finish() { continuation.finish() }
}

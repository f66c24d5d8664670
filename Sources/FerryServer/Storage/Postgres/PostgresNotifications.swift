import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Wake-ups across instances (SPEC §9): one connection per instance listens on
/// `ferry_changes` (a commit's `<library>:<head>`, sent by PostgreSQL when the commit's
/// transaction ends) and `ferry_outbox` (deliveries queued or due). A change wakes this
/// instance's long-polls on that library; an outbox notice wakes its dispatcher. A lost
/// connection is opened again, and then every long-poll re-reads its feed, since a
/// notification sent meanwhile is gone.
public struct PostgresNotifications: Service {
    let database: PostgresDatabase
    let notifier: ChangeNotifier
    let outbox: OutboxSignal
    let logger: Logger

    public init(database: PostgresDatabase, notifier: ChangeNotifier, outbox: OutboxSignal, logger: Logger) {
        self.database = database
        self.notifier = notifier
        self.outbox = outbox
        self.logger = logger
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var connected = false
            while !Task.isCancelled {
                do {
                    try await listen(onReady: {
                        if connected { notifier.wakeAll() }
                        connected = true
                        outbox.poke()
                    })
                } catch is CancellationError {
                    return
                } catch {
                    if Task.isCancelled { return }
                    logger.warning("lost the PostgreSQL notification connection; reconnecting", metadata: ["error": "\(PostgresDatabase.describe(error))"])
                    try await Task.sleep(for: .milliseconds(500))
                }
            }
        }
    }

    private func listen(onReady: () -> Void) async throws {
        let connection = try await PostgresConnection.connect(configuration: try database.connectionConfiguration(), id: 0, logger: logger)
        do {
            let changes = try await connection.listen(PostgresMetadataStore.changesChannel)
            let queued = try await connection.listen(PostgresOutbox.channel)
            onReady()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await notification in changes {
                        guard let (library, head) = Self.parseChange(notification.payload) else { continue }
                        notifier.notify(library: library, head: head)
                    }
                }
                group.addTask {
                    for try await _ in queued { outbox.poke() }
                }
                try await group.next()
                group.cancelAll()
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
    }

    /// `<library>:<head>`.
    static func parseChange(_ payload: String) -> (String, Int64)? {
        guard let colon = payload.lastIndex(of: ":"), let head = Int64(payload[payload.index(after: colon)...]) else { return nil }
        return (String(payload[..<colon]), head)
    }
}

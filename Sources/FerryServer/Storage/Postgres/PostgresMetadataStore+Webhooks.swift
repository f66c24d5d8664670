import FerryCore
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Webhook endpoints and the outbox's queue on PostgreSQL, shared by every instance's
/// dispatcher: an endpoint's batch is claimed by one instance at a time (a lease written
/// with `FOR UPDATE SKIP LOCKED`), so each attempt is made once and per-endpoint order holds.
extension PostgresMetadataStore {
    /// At most this many webhooks per account.
    static let maxWebhooks = 100

    public func createWebhook(userId: Int64, createdBy: WebhookCreator, url: String, events: EventFilter, secret: String, active: Bool,
                              keepResponseExcerpts: Bool, tlsFingerprint: CertificateFingerprint?) async throws -> WebhookInfo {
        let info = WebhookInfo(id: SQLiteMetadataStore.newId("wh"), url: url, events: events, active: active, disabledReason: nil, createdAt: Date(),
                               createdBy: createdBy, keepResponseExcerpts: keepResponseExcerpts, tlsFingerprint: tlsFingerprint)
        try info.checkPin()
        let filter = try Self.encodeFilter(events)
        try await write { connection in
            // The user's row serialises creations, so two instances cannot both pass the count.
            try await connection.query("SELECT id FROM ferry_user WHERE id = \(userId) FOR UPDATE", logger: logger)
            let count = try await PostgresDatabase.scalar(connection, "SELECT count(*) FROM webhook WHERE user_id = \(userId)", as: Int64.self, logger: logger) ?? 0
            guard count < Self.maxWebhooks else { throw MetadataError.stateConflict("an account may have at most 100 webhooks; remove one first") }
            try await connection.query("""
                INSERT INTO webhook (id, user_id, url, events, secret, active, created_at, created_by_session, created_by_device, keep_response_excerpts,
                                     tls_fingerprint)
                VALUES (\(info.id), \(userId), \(url), \(filter), \(secret), \(active), \(info.createdAt),
                        \(createdBy.kind == .session ? createdBy.id : nil), \(createdBy.kind == .device ? createdBy.id : nil), \(keepResponseExcerpts),
                        \(tlsFingerprint?.description))
                """, logger: logger)
        }
        return info
    }

    /// Switches off the user's active webhooks created by any of these sessions or devices.
    static func disableWebhooks(_ connection: PostgresConnection, userId: Int64, createdBySessions sessions: [String], devices: [String], reason: String,
                                logger: Logger) async throws {
        guard !sessions.isEmpty || !devices.isEmpty else { return }
        let rows = try await PostgresDatabase.rows(connection, """
            SELECT id, url FROM webhook WHERE user_id = \(userId) AND active
            AND (created_by_session = ANY(\(sessions)::text[]) OR created_by_device = ANY(\(devices)::text[]))
            """, logger: logger)
        for row in rows {
            try await disableWebhook(connection, userId: userId, id: try row.get("id"), url: try row.get("url"), reason: reason, logger: logger)
        }
    }

    /// Switches one active endpoint off and reports it (to the user's other endpoints).
    static func disableWebhook(_ connection: PostgresConnection, userId: Int64, id: String, url: String, reason: String, logger: Logger) async throws {
        let changed = try await PostgresDatabase.count(connection, """
            UPDATE webhook SET active = false, disabled_reason = \(reason) WHERE id = \(id) AND active RETURNING 1
            """, logger: logger)
        guard changed == 1 else { return }
        struct Disabled: Encodable { let webhook: String; let url: String; let reason: String }
        try await PostgresOutbox.emit(connection, userId: userId, type: .webhookDisabled, data: Disabled(webhook: id, url: url, reason: reason), logger: logger)
    }

    public func webhooks(userId: Int64) async throws -> [WebhookInfo] {
        try await read { connection in
            try await PostgresDatabase.rows(connection, "SELECT * FROM webhook WHERE user_id = \(userId) ORDER BY created_at, id", logger: logger)
                .map(Self.webhookInfo)
        }
    }

    public func updateWebhook(userId: Int64, id: String, _ update: UpdateWebhookRequest) async throws -> WebhookInfo {
        try await writeAndSignal { connection in
            guard let row = try await PostgresDatabase.row(connection, "SELECT * FROM webhook WHERE id = \(id) AND user_id = \(userId) FOR UPDATE",
                                                           logger: logger) else { throw MetadataError.notFound("webhook '\(id)'") }
            var info = try Self.webhookInfo(row)
            try info.apply(update)
            try await connection.query("""
                UPDATE webhook SET url = \(info.url), events = \(try Self.encodeFilter(info.events)), active = \(info.active),
                disabled_reason = \(info.disabledReason), keep_response_excerpts = \(info.keepResponseExcerpts),
                tls_fingerprint = \(info.tlsFingerprint?.description) WHERE id = \(id)
                """, logger: logger)
            if info.active { try await connection.query("SELECT pg_notify(\(PostgresOutbox.channel), '')", logger: logger) }
            return info
        }
    }

    public func deleteWebhook(userId: Int64, id: String) async throws -> Bool {
        try await write { try await PostgresDatabase.count($0, "DELETE FROM webhook WHERE id = \(id) AND user_id = \(userId) RETURNING 1", logger: logger) == 1 }
    }

    public func deliveries(userId: Int64, webhookId: String, before: Int64?, limit: Int) async throws -> DeliveryListResponse {
        try await read { connection in
            guard try await PostgresDatabase.row(connection, "SELECT 1 AS one FROM webhook WHERE id = \(webhookId) AND user_id = \(userId)", logger: logger) != nil
            else { throw MetadataError.notFound("webhook '\(webhookId)'") }
            let rows = try await PostgresDatabase.rows(connection, """
                SELECT d.*, e.type FROM delivery d JOIN event e ON e.id = d.event_id
                WHERE d.webhook_id = \(webhookId) AND d.id < \(before ?? Int64.max) ORDER BY d.id DESC LIMIT \(Int64(limit) + 1)
                """, logger: logger)
            var page: [DeliveryInfo] = []
            for row in rows.prefix(limit) { page.append(try await Self.deliveryInfo(connection, row, logger: logger)) }
            return DeliveryListResponse(deliveries: page, nextBefore: rows.count > limit ? page.last?.id : nil)
        }
    }

    public func queuePing(userId: Int64, webhookId: String) async throws -> DeliveryInfo {
        try await writeAndSignal { connection in
            guard try await PostgresDatabase.row(connection, "SELECT 1 AS one FROM webhook WHERE id = \(webhookId) AND user_id = \(userId)", logger: logger) != nil
            else { throw MetadataError.notFound("webhook '\(webhookId)'") }
            struct Ping: Encodable { let webhook: String }
            let event = try await PostgresOutbox.emit(connection, userId: userId, type: .ping, data: Ping(webhook: webhookId), only: [webhookId], logger: logger)
            guard let row = try await PostgresDatabase.row(connection, """
                SELECT d.*, e.type FROM delivery d JOIN event e ON e.id = d.event_id WHERE d.event_id = \(event)
                """, logger: logger) else { throw MetadataError.notFound("delivery") }
            return try await Self.deliveryInfo(connection, row, logger: logger)
        }
    }

    public func redeliver(userId: Int64, deliveryId: Int64) async throws -> DeliveryInfo {
        try await writeAndSignal { connection in
            guard let old = try await PostgresDatabase.row(connection, """
                SELECT d.webhook_id, d.event_id FROM delivery d JOIN webhook w ON w.id = d.webhook_id WHERE d.id = \(deliveryId) AND w.user_id = \(userId)
                """, logger: logger) else { throw MetadataError.notFound("delivery \(deliveryId)") }
            let now = Date()
            guard let row = try await PostgresDatabase.row(connection, """
                WITH d AS (INSERT INTO delivery (webhook_id, event_id, state, attempts, next_attempt_at, created_at)
                           VALUES (\(try old.get("webhook_id", as: String.self)), \(try old.get("event_id", as: String.self)), 'pending', 0, \(now), \(now))
                           RETURNING *)
                SELECT d.*, e.type FROM d JOIN event e ON e.id = d.event_id
                """, logger: logger) else { throw MetadataError.notFound("delivery \(deliveryId)") }
            try await connection.query("SELECT pg_notify(\(PostgresOutbox.channel), '')", logger: logger)
            return try await Self.deliveryInfo(connection, row, logger: logger)
        }
    }

    /// Claims up to `endpoints` endpoints whose oldest pending delivery is due and that no
    /// instance holds (`SKIP LOCKED` passes over rows another instance is claiming; the lease
    /// over those it is delivering), then reads their due deliveries in order.
    public func dueDeliveries(now: Date, busy: Set<String>, endpoints: Int, perEndpoint: Int) async throws -> [[PendingDelivery]] {
        let leaseUntil = now.addingTimeInterval(leaseSeconds)
        return try await write { connection in
            let claimed = try await PostgresDatabase.column(connection, """
                UPDATE webhook SET lease_owner = \(instanceId), lease_until = \(leaseUntil)
                WHERE id IN (
                    SELECT w.id FROM webhook w
                    JOIN LATERAL (SELECT d.id, d.next_attempt_at FROM delivery d WHERE d.webhook_id = w.id AND d.state = 'pending' ORDER BY d.id LIMIT 1) h ON true
                    WHERE w.active AND (w.lease_until IS NULL OR w.lease_until < \(now)) AND NOT (w.id = ANY(\(Array(busy))::text[]))
                      AND (h.next_attempt_at IS NULL OR h.next_attempt_at <= \(now))
                    ORDER BY h.id LIMIT \(Int64(endpoints))
                    FOR UPDATE OF w SKIP LOCKED)
                RETURNING id
                """, as: String.self, logger: logger)
            var out: [[PendingDelivery]] = []
            for webhookId in claimed {
                let rows = try await PostgresDatabase.rows(connection, """
                    SELECT d.id, d.attempts, d.next_attempt_at, w.user_id, w.url, w.secret, w.keep_response_excerpts, w.tls_fingerprint, e.id AS event_id, e.type, e.body
                    FROM delivery d JOIN webhook w ON w.id = d.webhook_id JOIN event e ON e.id = d.event_id
                    WHERE d.webhook_id = \(webhookId) AND d.state = 'pending' ORDER BY d.id LIMIT \(Int64(perEndpoint))
                    """, logger: logger)
                var batch: [PendingDelivery] = []
                for row in rows {
                    guard (try row.get("next_attempt_at", as: Date?.self) ?? now) <= now else { break }
                    batch.append(PendingDelivery(
                        id: try row.get("id"), webhookId: webhookId, userId: try row.get("user_id"), url: try row.get("url"), secret: try row.get("secret"),
                        eventId: try row.get("event_id"), eventType: try row.get("type"), body: Data(try row.get("body", as: ByteBuffer.self).readableBytesView),
                        attempt: Int(try row.get("attempts", as: Int32.self)) + 1, keepResponseExcerpt: try row.get("keep_response_excerpts"),
                        tlsFingerprint: try Self.fingerprint(row.get("tls_fingerprint"))))
                }
                out.append(batch)
            }
            return out
        }
    }

    public func nextDueDate() async throws -> Date? {
        try await read { connection in
            try await PostgresDatabase.scalar(connection, """
                SELECT min(coalesce(greatest(h.next_attempt_at, w.lease_until), h.next_attempt_at)) FROM webhook w
                JOIN LATERAL (SELECT d.next_attempt_at FROM delivery d WHERE d.webhook_id = w.id AND d.state = 'pending' ORDER BY d.id LIMIT 1) h ON true
                WHERE w.active
                """, as: Date?.self, logger: logger) ?? nil
        }
    }

    /// Records the attempts and releases the endpoints' leases, in one transaction.
    public func recordAttempts(_ attempts: [(PendingDelivery, DeliveryAttempt, DeliveryOutcome)]) async throws {
        try await writeAndSignal { connection in
            for (delivery, attempt, outcome) in attempts { try await record(connection, delivery, attempt, outcome) }
            let endpoints = Array(Set(attempts.map(\.0.webhookId)))
            try await connection.query("""
                UPDATE webhook SET lease_owner = NULL, lease_until = NULL WHERE id = ANY(\(endpoints)::text[]) AND lease_owner = \(instanceId)
                """, logger: logger)
            try await connection.query("SELECT pg_notify(\(PostgresOutbox.channel), '')", logger: logger)
        }
    }

    private func record(_ connection: PostgresConnection, _ delivery: PendingDelivery, _ attempt: DeliveryAttempt, _ outcome: DeliveryOutcome) async throws {
        try await connection.query("""
            INSERT INTO delivery_attempt (delivery_id, attempt, at, status, latency_ms, error, response)
            VALUES (\(delivery.id), \(Int32(attempt.attempt)), \(attempt.at), \(attempt.status.map { Int32($0) }), \(Int32(clamping: attempt.latencyMs)),
                    \(attempt.error), \(attempt.response))
            ON CONFLICT (delivery_id, attempt) DO UPDATE SET at = excluded.at, status = excluded.status, latency_ms = excluded.latency_ms,
                error = excluded.error, response = excluded.response
            """, logger: logger)
        switch outcome {
        case .delivered:
            try await connection.query("""
                UPDATE delivery SET state = 'delivered', attempts = \(Int32(attempt.attempt)), next_attempt_at = NULL WHERE id = \(delivery.id)
                """, logger: logger)
        case .retry(let at):
            try await connection.query("UPDATE delivery SET attempts = \(Int32(attempt.attempt)), next_attempt_at = \(at) WHERE id = \(delivery.id)",
                                       logger: logger)
        case .failed(let disable):
            try await connection.query("""
                UPDATE delivery SET state = 'failed', attempts = \(Int32(attempt.attempt)), next_attempt_at = NULL WHERE id = \(delivery.id)
                """, logger: logger)
            guard let reason = disable else { break }
            try await Self.disableWebhook(connection, userId: delivery.userId, id: delivery.webhookId, url: delivery.url, reason: reason, logger: logger)
        }
    }

    static func encodeFilter(_ filter: EventFilter) throws -> String {
        String(decoding: try JSONCoding.encoder.encode(filter), as: UTF8.self)
    }

    static func webhookInfo(_ row: PostgresRandomAccessRow) throws -> WebhookInfo {
        let creator = try row.get("created_by_session", as: String?.self).map { WebhookCreator(kind: .session, id: $0) }
            ?? row.get("created_by_device", as: String?.self).map { WebhookCreator(kind: .device, id: $0) }
        return WebhookInfo(id: try row.get("id"), url: try row.get("url"),
                           events: try JSONCoding.decoder.decode(EventFilter.self, from: Data(try row.get("events", as: String.self).utf8)),
                           active: try row.get("active"), disabledReason: try row.get("disabled_reason"), createdAt: try row.get("created_at"),
                           createdBy: creator, keepResponseExcerpts: try row.get("keep_response_excerpts"),
                           tlsFingerprint: try fingerprint(row.get("tls_fingerprint")))
    }

    private static func fingerprint(_ stored: String?) throws -> CertificateFingerprint? {
        try stored.map { try CertificateFingerprint(parsing: $0) }
    }

    static func deliveryInfo(_ connection: PostgresConnection, _ row: PostgresRandomAccessRow, logger: Logger) async throws -> DeliveryInfo {
        let id: Int64 = try row.get("id")
        let attempts = try await PostgresDatabase.rows(connection, "SELECT * FROM delivery_attempt WHERE delivery_id = \(id) ORDER BY attempt", logger: logger).map {
            DeliveryAttempt(attempt: Int(try $0.get("attempt", as: Int32.self)), at: try $0.get("at"), status: try $0.get("status", as: Int32?.self).map(Int.init),
                            latencyMs: Int(try $0.get("latency_ms", as: Int32.self)), error: try $0.get("error"), response: try $0.get("response"))
        }
        return DeliveryInfo(id: id, webhookId: try row.get("webhook_id"), eventId: try row.get("event_id"), eventType: try row.get("type"),
                            state: DeliveryInfo.State(rawValue: try row.get("state")) ?? .pending, attempts: attempts,
                            nextAttemptAt: try row.get("next_attempt_at"), createdAt: try row.get("created_at"))
    }
}

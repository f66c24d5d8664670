import FerryCore
import Foundation
import GRDB

/// A delivery the dispatcher is about to attempt.
public struct PendingDelivery: Sendable, Equatable {
    public var id: Int64
    public var webhookId: String
    public var userId: Int64
    public var url: String
    public var secret: String
    public var eventId: String
    public var eventType: String
    public var body: Data
    /// The number of this attempt (1 for the first).
    public var attempt: Int
    /// Whether the answer's first KiB goes into the delivery log.
    public var keepResponseExcerpt: Bool = false
    /// The receiver's pinned certificate, if any.
    public var tlsFingerprint: CertificateFingerprint?
}

/// What an attempt led to.
public enum DeliveryOutcome: Sendable, Equatable {
    case delivered
    /// Try again at this time.
    case retry(at: Date)
    /// No more attempts; when `disable` is given the endpoint is switched off with that reason.
    case failed(disable: String?)
}

extension WebhookInfo {
    /// Takes the changes an update gives; switching an endpoint back on clears why it was
    /// disabled, and an empty fingerprint removes the pin. Every backend applies updates so.
    mutating func apply(_ update: UpdateWebhookRequest) throws {
        if let url = update.url { self.url = url }
        if let events = update.events { self.events = events }
        if let active = update.active {
            self.active = active
            if active { disabledReason = nil }
        }
        if let keep = update.keepResponseExcerpts { keepResponseExcerpts = keep }
        if let pin = update.tlsFingerprint { tlsFingerprint = pin.isEmpty ? nil : try CertificateFingerprint(parsing: pin) }
        try checkPin()
    }

    /// A pin means nothing over plain HTTP; refused rather than silently ignored.
    func checkPin() throws {
        guard tlsFingerprint != nil, !url.lowercased().hasPrefix("https://") else { return }
        throw MetadataError.invalid("tls_fingerprint pins an https:// receiver's certificate; '\(url)' is plain http://")
    }
}

/// Webhook endpoints and the outbox's delivery log.
public protocol WebhookStore: Sendable {
    /// Poked after every transaction that may have queued a delivery.
    var outboxSignal: OutboxSignal { get }
    /// `tlsFingerprint` pins the receiver's certificate; it needs an https:// URL.
    func createWebhook(userId: Int64, createdBy: WebhookCreator, url: String, events: EventFilter, secret: String, active: Bool,
                       keepResponseExcerpts: Bool, tlsFingerprint: CertificateFingerprint?) async throws -> WebhookInfo
    func webhooks(userId: Int64) async throws -> [WebhookInfo]
    /// Applies the changes given; switching an endpoint back on clears why it was disabled.
    /// A pinned fingerprint needs an https:// URL.
    func updateWebhook(userId: Int64, id: String, _ update: UpdateWebhookRequest) async throws -> WebhookInfo
    func deleteWebhook(userId: Int64, id: String) async throws -> Bool
    /// The endpoint's deliveries, newest first, with every attempt.
    func deliveries(userId: Int64, webhookId: String, before: Int64?, limit: Int) async throws -> DeliveryListResponse
    /// Queues a `ping` event for this endpoint only; returns the delivery.
    func queuePing(userId: Int64, webhookId: String) async throws -> DeliveryInfo
    /// Queues the delivery's event again, to the same endpoint, as a new delivery.
    func redeliver(userId: Int64, deliveryId: Int64) async throws -> DeliveryInfo

    /// For up to `endpoints` active endpoints not in `busy` whose oldest pending delivery is
    /// due: that delivery and the due ones after it (at most `perEndpoint`), oldest first.
    func dueDeliveries(now: Date, busy: Set<String>, endpoints: Int, perEndpoint: Int) async throws -> [[PendingDelivery]]
    /// When the next pending delivery of an active endpoint falls due.
    func nextDueDate() async throws -> Date?
    /// Records attempts and their consequences in one transaction.
    func recordAttempts(_ attempts: [(PendingDelivery, DeliveryAttempt, DeliveryOutcome)]) async throws
}

extension SQLiteMetadataStore {
    public func createWebhook(userId: Int64, createdBy: WebhookCreator, url: String, events: EventFilter, secret: String, active: Bool,
                              keepResponseExcerpts: Bool, tlsFingerprint: CertificateFingerprint?) async throws -> WebhookInfo {
        let info = WebhookInfo(id: Self.newId("wh"), url: url, events: events, active: active, disabledReason: nil, createdAt: Date(),
                               createdBy: createdBy, keepResponseExcerpts: keepResponseExcerpts, tlsFingerprint: tlsFingerprint)
        try info.checkPin()
        try await pool.write { db in
            let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM webhook WHERE user_id = ?", arguments: [userId]) ?? 0
            guard count < 100 else { throw MetadataError.stateConflict("an account may have at most 100 webhooks; remove one first") }
            try db.execute(sql: """
                INSERT INTO webhook (id, user_id, url, events, secret, active, created_at, created_by_session, created_by_device, keep_response_excerpts,
                                     tls_fingerprint)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [info.id, userId, url, try Self.encodeFilter(events), secret, active, info.createdAt,
                                 createdBy.kind == .session ? createdBy.id : nil, createdBy.kind == .device ? createdBy.id : nil,
                                 keepResponseExcerpts, tlsFingerprint?.description])
        }
        return info
    }

    /// Switches off the user's active webhooks created by any of these sessions or devices,
    /// saying why, and reports each as `webhook.disabled`.
    static func disableWebhooks(_ db: Database, userId: Int64, createdBySessions sessions: [String], devices: [String], reason: String) throws {
        guard !sessions.isEmpty || !devices.isEmpty else { return }
        let rows = try Row.fetchAll(db, sql: """
            SELECT id, url FROM webhook WHERE user_id = ? AND active = 1
            AND (created_by_session IN (SELECT value FROM json_each(?)) OR created_by_device IN (SELECT value FROM json_each(?)))
            """, arguments: [userId, String(decoding: try JSONEncoder().encode(sessions), as: UTF8.self),
                             String(decoding: try JSONEncoder().encode(devices), as: UTF8.self)])
        for row in rows {
            try disableWebhook(db, userId: userId, id: row["id"], url: row["url"], reason: reason)
        }
    }

    /// Switches one active endpoint off and reports it (to the user's other endpoints).
    static func disableWebhook(_ db: Database, userId: Int64, id: String, url: String, reason: String) throws {
        try db.execute(sql: "UPDATE webhook SET active = 0, disabled_reason = ? WHERE id = ? AND active = 1", arguments: [reason, id])
        guard db.changesCount == 1 else { return }
        struct Disabled: Encodable { let webhook: String; let url: String; let reason: String }
        try Outbox.emit(db, userId: userId, type: .webhookDisabled, data: Disabled(webhook: id, url: url, reason: reason))
    }

    public func webhooks(userId: Int64) async throws -> [WebhookInfo] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM webhook WHERE user_id = ? ORDER BY created_at, id", arguments: [userId]).map(Self.webhookInfo)
        }
    }

    public func updateWebhook(userId: Int64, id: String, _ update: UpdateWebhookRequest) async throws -> WebhookInfo {
        try await writeAndSignal { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM webhook WHERE id = ? AND user_id = ?", arguments: [id, userId]) else {
                throw MetadataError.notFound("webhook '\(id)'")
            }
            var info = try Self.webhookInfo(row)
            try info.apply(update)
            try db.execute(sql: """
                UPDATE webhook SET url = ?, events = ?, active = ?, disabled_reason = ?, keep_response_excerpts = ?, tls_fingerprint = ? WHERE id = ?
                """, arguments: [info.url, try Self.encodeFilter(info.events), info.active, info.disabledReason, info.keepResponseExcerpts,
                                 info.tlsFingerprint?.description, id])
            return info
        }
    }

    public func deleteWebhook(userId: Int64, id: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM webhook WHERE id = ? AND user_id = ?", arguments: [id, userId])
            return db.changesCount == 1
        }
    }

    public func deliveries(userId: Int64, webhookId: String, before: Int64?, limit: Int) async throws -> DeliveryListResponse {
        try await pool.read { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM webhook WHERE id = ? AND user_id = ?", arguments: [webhookId, userId]) != nil else {
                throw MetadataError.notFound("webhook '\(webhookId)'")
            }
            let rows = try Row.fetchAll(db, sql: """
                SELECT d.*, e.type FROM delivery d JOIN event e ON e.id = d.event_id
                WHERE d.webhook_id = ? AND d.id < ? ORDER BY d.id DESC LIMIT ?
                """, arguments: [webhookId, before ?? Int64.max, limit + 1])
            let page = try rows.prefix(limit).map { try Self.deliveryInfo(db, $0) }
            return DeliveryListResponse(deliveries: page, nextBefore: rows.count > limit ? page.last?.id : nil)
        }
    }

    public func queuePing(userId: Int64, webhookId: String) async throws -> DeliveryInfo {
        try await writeAndSignal { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM webhook WHERE id = ? AND user_id = ?", arguments: [webhookId, userId]) != nil else {
                throw MetadataError.notFound("webhook '\(webhookId)'")
            }
            struct Ping: Encodable { let webhook: String }
            let event = try Outbox.emit(db, userId: userId, type: .ping, data: Ping(webhook: webhookId), only: [webhookId])
            let row = try Row.fetchOne(db, sql: "SELECT d.*, e.type FROM delivery d JOIN event e ON e.id = d.event_id WHERE d.event_id = ?",
                                       arguments: [event])!
            return try Self.deliveryInfo(db, row)
        }
    }

    public func redeliver(userId: Int64, deliveryId: Int64) async throws -> DeliveryInfo {
        try await writeAndSignal { db in
            guard let old = try Row.fetchOne(db, sql: """
                SELECT d.webhook_id, d.event_id FROM delivery d JOIN webhook w ON w.id = d.webhook_id WHERE d.id = ? AND w.user_id = ?
                """, arguments: [deliveryId, userId])
            else { throw MetadataError.notFound("delivery \(deliveryId)") }
            let now = Date()
            try db.execute(sql: """
                INSERT INTO delivery (webhook_id, event_id, state, attempts, next_attempt_at, created_at) VALUES (?, ?, 'pending', 0, ?, ?)
                """, arguments: [old["webhook_id"] as String, old["event_id"] as String, now, now])
            let row = try Row.fetchOne(db, sql: "SELECT d.*, e.type FROM delivery d JOIN event e ON e.id = d.event_id WHERE d.id = ?",
                                       arguments: [db.lastInsertedRowID])!
            return try Self.deliveryInfo(db, row)
        }
    }

    public func dueDeliveries(now: Date, busy: Set<String>, endpoints: Int, perEndpoint: Int) async throws -> [[PendingDelivery]] {
        try await pool.read { db in
            // Each endpoint's oldest pending delivery: its events go out in order, so a
            // delivery waiting for a retry holds back the ones after it.
            let heads = try Row.fetchAll(db, sql: """
                SELECT d.webhook_id, d.id, d.next_attempt_at FROM delivery d JOIN webhook w ON w.id = d.webhook_id
                WHERE d.id IN (SELECT MIN(id) FROM delivery WHERE state = 'pending' GROUP BY webhook_id) AND w.active = 1
                ORDER BY d.id
                """)
            let run = try db.cachedStatement(sql: """
                SELECT d.id, d.webhook_id, d.attempts, d.next_attempt_at, w.user_id, w.url, w.secret, w.keep_response_excerpts, w.tls_fingerprint,
                       e.id AS event_id, e.type, e.body
                FROM delivery d JOIN webhook w ON w.id = d.webhook_id JOIN event e ON e.id = d.event_id
                WHERE d.webhook_id = ? AND d.state = 'pending' AND d.id >= ? ORDER BY d.id LIMIT ?
                """)
            var out: [[PendingDelivery]] = []
            for head in heads where out.count < endpoints {
                let webhookId: String = head["webhook_id"]
                guard !busy.contains(webhookId), (head["next_attempt_at"] as Date? ?? now) <= now else { continue }
                var batch: [PendingDelivery] = []
                for row in try Row.fetchAll(run, arguments: [webhookId, head["id"] as Int64, perEndpoint]) {
                    guard (row["next_attempt_at"] as Date? ?? now) <= now else { break }
                    batch.append(PendingDelivery(id: row["id"], webhookId: webhookId, userId: row["user_id"], url: row["url"], secret: row["secret"],
                                                 eventId: row["event_id"], eventType: row["type"], body: row["body"], attempt: (row["attempts"] as Int) + 1,
                                                 keepResponseExcerpt: row["keep_response_excerpts"], tlsFingerprint: try Self.fingerprint(row["tls_fingerprint"])))
                }
                out.append(batch)
            }
            return out
        }
    }

    public func nextDueDate() async throws -> Date? {
        try await pool.read { db in
            try Date.fetchOne(db, sql: """
                SELECT MIN(d.next_attempt_at) FROM delivery d JOIN webhook w ON w.id = d.webhook_id
                WHERE d.id IN (SELECT MIN(id) FROM delivery WHERE state = 'pending' GROUP BY webhook_id) AND w.active = 1
                """)
        }
    }

    public func recordAttempts(_ attempts: [(PendingDelivery, DeliveryAttempt, DeliveryOutcome)]) async throws {
        try await writeAndSignal { db in
            for (delivery, attempt, outcome) in attempts { try Self.record(db, delivery, attempt, outcome) }
        }
    }

    private static func record(_ db: Database, _ delivery: PendingDelivery, _ attempt: DeliveryAttempt, _ outcome: DeliveryOutcome) throws {
        try db.execute(sql: """
            INSERT OR REPLACE INTO delivery_attempt (delivery_id, attempt, at, status, latency_ms, error, response) VALUES (?, ?, ?, ?, ?, ?, ?)
            """, arguments: [delivery.id, attempt.attempt, attempt.at, attempt.status, attempt.latencyMs, attempt.error, attempt.response])
        switch outcome {
        case .delivered:
            try db.execute(sql: "UPDATE delivery SET state = 'delivered', attempts = ?, next_attempt_at = NULL WHERE id = ?",
                           arguments: [attempt.attempt, delivery.id])
        case .retry(let at):
            try db.execute(sql: "UPDATE delivery SET attempts = ?, next_attempt_at = ? WHERE id = ?", arguments: [attempt.attempt, at, delivery.id])
        case .failed(let disable):
            try db.execute(sql: "UPDATE delivery SET state = 'failed', attempts = ?, next_attempt_at = NULL WHERE id = ?",
                           arguments: [attempt.attempt, delivery.id])
            guard let reason = disable else { break }
            try disableWebhook(db, userId: delivery.userId, id: delivery.webhookId, url: delivery.url, reason: reason)
        }
    }

    private static func encodeFilter(_ filter: EventFilter) throws -> String {
        String(decoding: try JSONCoding.encoder.encode(filter), as: UTF8.self)
    }

    static func webhookInfo(_ row: Row) throws -> WebhookInfo {
        let creator = (row["created_by_session"] as String?).map { WebhookCreator(kind: .session, id: $0) }
            ?? (row["created_by_device"] as String?).map { WebhookCreator(kind: .device, id: $0) }
        return WebhookInfo(id: row["id"], url: row["url"], events: try JSONCoding.decoder.decode(EventFilter.self, from: Data((row["events"] as String).utf8)),
                           active: row["active"], disabledReason: row["disabled_reason"], createdAt: row["created_at"],
                           createdBy: creator, keepResponseExcerpts: row["keep_response_excerpts"], tlsFingerprint: try fingerprint(row["tls_fingerprint"]))
    }

    private static func fingerprint(_ stored: String?) throws -> CertificateFingerprint? {
        try stored.map { try CertificateFingerprint(parsing: $0) }
    }

    static func deliveryInfo(_ db: Database, _ row: Row) throws -> DeliveryInfo {
        let attempts = try Row.fetchAll(db, sql: "SELECT * FROM delivery_attempt WHERE delivery_id = ? ORDER BY attempt",
                                        arguments: [row["id"] as Int64]).map {
            DeliveryAttempt(attempt: $0["attempt"], at: $0["at"], status: $0["status"], latencyMs: $0["latency_ms"], error: $0["error"], response: $0["response"])
        }
        return DeliveryInfo(id: row["id"], webhookId: row["webhook_id"], eventId: row["event_id"], eventType: row["type"],
                            state: DeliveryInfo.State(rawValue: row["state"]) ?? .pending, attempts: attempts,
                            nextAttemptAt: row["next_attempt_at"], createdAt: row["created_at"])
    }
}

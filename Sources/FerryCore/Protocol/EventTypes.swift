#if canImport(FoundationEssentials)
import FoundationEssentials
#endif
import Foundation

// Wire types for conflict records, events and webhooks (SPEC §3–4).

/// How `POST /conflicts/{id}/resolve` settles a conflict. "Mine" is the side that lost the
/// race and was kept as the conflict copy; "theirs" is the version that won the path.
public enum ConflictKeep: String, Codable, Sendable, CaseIterable {
    /// The copy's content becomes the path's current version; the copy is deleted.
    case mine
    /// The path stays as it is; the copy is deleted.
    case theirs
    /// Both stay: the copy becomes an ordinary file.
    case both
}

/// One side of a conflict: a version of a path.
public struct ConflictSide: Codable, Sendable, Hashable {
    public var path: FerryPath
    public var version: Int64
    public var deviceId: String?
    public var sha256: ContentHash?
    public var size: Int64

    public init(path: FerryPath, version: Int64, deviceId: String?, sha256: ContentHash?, size: Int64) {
        self.path = path
        self.version = version
        self.deviceId = deviceId
        self.sha256 = sha256
        self.size = size
    }

    public init(_ v: FileVersion) {
        self.init(path: v.path, version: v.version, deviceId: v.deviceId, sha256: v.sha256, size: v.size)
    }

    enum CodingKeys: String, CodingKey {
        case path, version, sha256, size
        case deviceId = "device_id"
    }
}

/// A conflict the server recorded when a device uploaded a conflict copy.
public struct ConflictInfo: Codable, Sendable, Hashable {
    public var id: String
    public var library: String
    /// The path both sides changed.
    public var path: FerryPath
    /// The losing side, kept as a conflict copy.
    public var mine: ConflictSide
    /// The version that won the path.
    public var theirs: ConflictSide
    public var detectedAt: Date
    public var resolvedAt: Date?
    /// `mine`, `theirs`, `both`, or `copy_deleted` when someone deleted the copy.
    public var resolution: String?

    public init(id: String, library: String, path: FerryPath, mine: ConflictSide, theirs: ConflictSide, detectedAt: Date,
                resolvedAt: Date?, resolution: String?) {
        self.id = id
        self.library = library
        self.path = path
        self.mine = mine
        self.theirs = theirs
        self.detectedAt = detectedAt
        self.resolvedAt = resolvedAt
        self.resolution = resolution
    }

    enum CodingKeys: String, CodingKey {
        case id, library, path, mine, theirs, resolution
        case detectedAt = "detected_at", resolvedAt = "resolved_at"
    }
}

public struct ConflictListResponse: Codable, Sendable {
    public var conflicts: [ConflictInfo]
    public init(conflicts: [ConflictInfo]) { self.conflicts = conflicts }
}

public struct ResolveConflictRequest: Codable, Sendable {
    public var keep: ConflictKeep
    public init(keep: ConflictKeep) { self.keep = keep }
}

/// The events webhooks can subscribe to (SPEC §4).
public enum EventType: String, Codable, Sendable, CaseIterable {
    case fileCreated = "file.created"
    case fileUpdated = "file.updated"
    case fileDeleted = "file.deleted"
    case fileRestored = "file.restored"
    case fileConflict = "file.conflict"
    case deviceRegistered = "device.registered"
    case deviceRevoked = "device.revoked"
    case taskCreated = "task.created"
    case taskUpdated = "task.updated"
    case taskAttachmentAdded = "task.attachment.added"
    case taskAttachmentUpdated = "task.attachment.updated"
    case taskAttachmentRemoved = "task.attachment.removed"
    /// An endpoint was switched off after repeated failure (sent to the owner's other endpoints).
    case webhookDisabled = "webhook.disabled"
    case ping
}

/// A webhook's event filter: exact names, `area.*` wildcards (matching every event below
/// that prefix) and `*` for everything.
public struct EventFilter: Codable, Sendable, Hashable {
    public let patterns: [String]

    /// Checks every pattern names a known event or a wildcard that matches one.
    public init(_ patterns: [String]) throws(EventFilterError) {
        guard !patterns.isEmpty else { throw EventFilterError("give at least one event (e.g. file.* or task.created)") }
        guard patterns.count <= 64 else { throw EventFilterError("at most 64 event patterns") }
        for p in patterns {
            let known = EventType.allCases.map(\.rawValue)
            if p == "*" || known.contains(p) { continue }
            if p.hasSuffix(".*"), known.contains(where: { $0.hasPrefix(p.dropLast()) }) { continue }
            throw EventFilterError("unknown event '\(p)'; known: \(known.joined(separator: ", ")), or a wildcard like file.*")
        }
        self.patterns = patterns
    }

    public func matches(_ type: String) -> Bool {
        patterns.contains { p in
            p == "*" || p == type || (p.hasSuffix(".*") && type.hasPrefix(p.dropLast()))
        }
    }

    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode([String].self)
        do { try self.init(raw) } catch { throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(patterns)
    }
}

public struct EventFilterError: Error, Sendable {
    public let message: String
    init(_ message: String) { self.message = message }
}

/// What created a webhook: a signed-in session or (before webhooks needed one) a device.
public struct WebhookCreator: Codable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable { case session, device }
    public var kind: Kind
    public var id: String

    public init(kind: Kind, id: String) {
        self.kind = kind
        self.id = id
    }
}

/// A webhook endpoint as the API shows it (never with its secret).
public struct WebhookInfo: Codable, Sendable, Hashable {
    public var id: String
    public var url: String
    public var events: EventFilter
    public var active: Bool
    /// Why the server switched it off, if it did.
    public var disabledReason: String?
    public var createdAt: Date
    /// The session or device that created it (nil for endpoints from before this was kept).
    public var createdBy: WebhookCreator?
    /// Whether the first KiB of each answer is kept in the delivery log. Off by default: a
    /// receiver's answer is the receiver's data, and kept it could turn a webhook into a reader.
    public var keepResponseExcerpts: Bool
    /// The receiver's pinned certificate (a self-signed one), if any.
    public var tlsFingerprint: CertificateFingerprint?

    public init(id: String, url: String, events: EventFilter, active: Bool, disabledReason: String?, createdAt: Date,
                createdBy: WebhookCreator? = nil, keepResponseExcerpts: Bool = false, tlsFingerprint: CertificateFingerprint? = nil) {
        self.id = id
        self.url = url
        self.events = events
        self.active = active
        self.disabledReason = disabledReason
        self.createdAt = createdAt
        self.createdBy = createdBy
        self.keepResponseExcerpts = keepResponseExcerpts
        self.tlsFingerprint = tlsFingerprint
    }

    enum CodingKeys: String, CodingKey {
        case id, url, events, active
        case disabledReason = "disabled_reason", createdAt = "created_at", createdBy = "created_by"
        case keepResponseExcerpts = "keep_response_excerpts", tlsFingerprint = "tls_fingerprint"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        url = try c.decode(String.self, forKey: .url)
        events = try c.decode(EventFilter.self, forKey: .events)
        active = try c.decode(Bool.self, forKey: .active)
        disabledReason = try c.decodeIfPresent(String.self, forKey: .disabledReason)
        createdAt = try c.decode(Date.self, forKey: .createdAt)
        createdBy = try c.decodeIfPresent(WebhookCreator.self, forKey: .createdBy)
        keepResponseExcerpts = try c.decodeIfPresent(Bool.self, forKey: .keepResponseExcerpts) ?? false
        tlsFingerprint = try c.decodeIfPresent(CertificateFingerprint.self, forKey: .tlsFingerprint)
    }
}

public struct CreateWebhookRequest: Codable, Sendable {
    public var url: String
    public var events: EventFilter
    /// Omit to have the server generate `whsec_` + base64 of 32 random bytes.
    public var secret: String?
    public var active: Bool?
    /// Keep the first KiB of each answer in the delivery log (default off).
    public var keepResponseExcerpts: Bool?
    /// Pins an https:// receiver's self-signed certificate by its SHA-256 fingerprint: it is
    /// then the only certificate accepted, whatever the system trusts.
    public var tlsFingerprint: String?

    public init(url: String, events: EventFilter, secret: String? = nil, active: Bool? = nil, keepResponseExcerpts: Bool? = nil,
                tlsFingerprint: String? = nil) {
        self.url = url
        self.events = events
        self.secret = secret
        self.active = active
        self.keepResponseExcerpts = keepResponseExcerpts
        self.tlsFingerprint = tlsFingerprint
    }

    enum CodingKeys: String, CodingKey {
        case url, events, secret, active
        case keepResponseExcerpts = "keep_response_excerpts", tlsFingerprint = "tls_fingerprint"
    }
}

/// The answer to creating a webhook: the only time the secret is shown.
public struct CreatedWebhookResponse: Codable, Sendable {
    public var webhook: WebhookInfo
    public var secret: String
    public init(webhook: WebhookInfo, secret: String) {
        self.webhook = webhook
        self.secret = secret
    }
}

public struct UpdateWebhookRequest: Codable, Sendable {
    public var url: String?
    public var events: EventFilter?
    public var active: Bool?
    public var keepResponseExcerpts: Bool?
    /// A new pinned fingerprint; `""` removes the pin.
    public var tlsFingerprint: String?

    public init(url: String? = nil, events: EventFilter? = nil, active: Bool? = nil, keepResponseExcerpts: Bool? = nil,
                tlsFingerprint: String? = nil) {
        self.url = url
        self.events = events
        self.active = active
        self.keepResponseExcerpts = keepResponseExcerpts
        self.tlsFingerprint = tlsFingerprint
    }

    enum CodingKeys: String, CodingKey {
        case url, events, active
        case keepResponseExcerpts = "keep_response_excerpts", tlsFingerprint = "tls_fingerprint"
    }
}

public struct WebhookListResponse: Codable, Sendable {
    public var webhooks: [WebhookInfo]
    public init(webhooks: [WebhookInfo]) { self.webhooks = webhooks }
}

/// One try at delivering an event.
public struct DeliveryAttempt: Codable, Sendable, Hashable {
    public var attempt: Int
    public var at: Date
    /// The receiver's HTTP status; nil when no answer came (refused target, timeout, connection error).
    public var status: Int?
    public var latencyMs: Int
    public var error: String?
    /// The first bytes of the receiver's answer.
    public var response: String?

    public init(attempt: Int, at: Date, status: Int?, latencyMs: Int, error: String?, response: String?) {
        self.attempt = attempt
        self.at = at
        self.status = status
        self.latencyMs = latencyMs
        self.error = error
        self.response = response
    }

    enum CodingKeys: String, CodingKey {
        case attempt, at, status, error, response
        case latencyMs = "latency_ms"
    }
}

/// One event on its way to one endpoint.
public struct DeliveryInfo: Codable, Sendable, Hashable {
    public enum State: String, Codable, Sendable {
        /// Waiting for its first or next attempt.
        case pending
        case delivered
        /// Every retry was spent (or the endpoint answered 410 Gone).
        case failed
    }

    public var id: Int64
    public var webhookId: String
    public var eventId: String
    public var eventType: String
    public var state: State
    public var attempts: [DeliveryAttempt]
    public var nextAttemptAt: Date?
    public var createdAt: Date

    public init(id: Int64, webhookId: String, eventId: String, eventType: String, state: State, attempts: [DeliveryAttempt],
                nextAttemptAt: Date?, createdAt: Date) {
        self.id = id
        self.webhookId = webhookId
        self.eventId = eventId
        self.eventType = eventType
        self.state = state
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, state, attempts
        case webhookId = "webhook_id", eventId = "event_id", eventType = "event_type", nextAttemptAt = "next_attempt_at",
             createdAt = "created_at"
    }
}

public struct DeliveryListResponse: Codable, Sendable {
    public var deliveries: [DeliveryInfo]
    /// Pass as `before` for the next (older) page; nil when there is none.
    public var nextBefore: Int64?
    public init(deliveries: [DeliveryInfo], nextBefore: Int64?) {
        self.deliveries = deliveries
        self.nextBefore = nextBefore
    }

    enum CodingKeys: String, CodingKey {
        case deliveries
        case nextBefore = "next_before"
    }
}

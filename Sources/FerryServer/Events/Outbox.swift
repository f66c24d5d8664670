import FerryCore
import Foundation
import GRDB

/// The webhook envelope every delivery carries (SPEC §4): the exact bytes are stored with
/// the event so every attempt, and every redelivery, signs and sends the same body.
struct EventEnvelope<Payload: Encodable>: Encodable {
    let id: String
    let type: String
    let timestamp: Date
    let data: Payload
}

/// The endpoints of one user that are switched on, with their filters. Loaded once per
/// transaction so a commit of many files reads the webhook table once.
struct Subscribers {
    let endpoints: [(id: String, filter: EventFilter)]

    static func load(_ db: Database, userId: Int64) throws -> Subscribers {
        let rows = try Row.fetchAll(db.cachedStatement(sql: "SELECT id, events FROM webhook WHERE user_id = ? AND active = 1"), arguments: [userId])
        return parse(rows.map { ($0["id"], $0["events"]) })
    }

    /// Endpoints from their ids and stored filters (JSON); an unreadable filter matches nothing.
    static func parse(_ rows: [(id: String, events: String)]) -> Subscribers {
        Subscribers(endpoints: rows.compactMap { row in
            guard let filter = try? JSONCoding.decoder.decode(EventFilter.self, from: Data(row.events.utf8)) else { return nil }
            return (row.id, filter)
        })
    }

    func matching(_ type: String) -> [String] { endpoints.filter { $0.filter.matches(type) }.map(\.id) }
}

/// An event ready to be written: its envelope encoded once (the exact bytes every attempt
/// signs and sends) and the endpoints it goes to. Backend-neutral.
struct PreparedEvent: Sendable {
    let id: String
    let userId: Int64
    let type: EventType
    let body: Data
    let at: Date
    let targets: [String]
}

/// Writes events and their pending deliveries inside the caller's transaction (the
/// transactional outbox): the event exists exactly when the change it reports committed.
enum Outbox {
    /// The event `type` for `targets`, with its id and body.
    static func prepare(userId: Int64, type: EventType, targets: [String], now: Date = Date(), data: some Encodable) throws -> PreparedEvent {
        let id = SQLiteMetadataStore.newId("evt")
        let body = try JSONCoding.encoder.encode(EventEnvelope(id: id, type: type.rawValue, timestamp: now, data: data))
        return PreparedEvent(id: id, userId: userId, type: type, body: body, at: now, targets: targets)
    }

    /// Records `type` for `userId`'s endpoints that subscribe to it (all of `only`, when
    /// given, e.g. a test ping). Returns the event id, or nil when nobody listens.
    @discardableResult
    static func emit(
        _ db: Database, userId: Int64, type: EventType, data: some Encodable, subscribers: Subscribers? = nil,
        only: [String]? = nil, now: Date = Date()
    ) throws -> String? {
        let targets = try only ?? (subscribers ?? Subscribers.load(db, userId: userId)).matching(type.rawValue)
        guard !targets.isEmpty else { return nil }
        let event = try prepare(userId: userId, type: type, targets: targets, now: now, data: data)
        try insert(db, event)
        return event.id
    }

    /// Writes a prepared event and one pending delivery per target.
    static func insert(_ db: Database, _ event: PreparedEvent) throws {
        try db.cachedStatement(sql: "INSERT INTO event (id, user_id, type, body, created_at) VALUES (?, ?, ?, ?, ?)")
            .execute(arguments: [event.id, event.userId, event.type.rawValue, event.body, event.at])
        let delivery = try db.cachedStatement(sql: """
            INSERT INTO delivery (webhook_id, event_id, state, attempts, next_attempt_at, created_at) VALUES (?, ?, 'pending', 0, ?, ?)
            """)
        for target in event.targets { try delivery.execute(arguments: [target, event.id, event.at, event.at]) }
    }
}

/// What file events say (SPEC §4): library, path, version, size, sha256 and device.
struct FileEventData: Encodable {
    let library: String
    let libraryName: String
    let path: String
    let version: Int64
    let kind: String
    let size: Int64
    let sha256: ContentHash?
    let device: String?
    /// For `file.restored`: the version whose content came back.
    let restoredFrom: Int64?

    init(library: String, libraryName: String, version v: FileVersion, restoredFrom: Int64? = nil) {
        self.library = library
        self.libraryName = libraryName
        self.path = v.path.string
        self.version = v.version
        self.kind = v.kind.rawValue
        self.size = v.size
        self.sha256 = v.sha256
        self.device = v.deviceId
        self.restoredFrom = restoredFrom
    }

    enum CodingKeys: String, CodingKey {
        case library, path, version, kind, size, sha256, device
        case libraryName = "library_name", restoredFrom = "restored_from"
    }
}

/// `file.conflict`: the conflict record as the API shows it.
struct ConflictEventData: Encodable {
    let libraryName: String
    let conflict: ConflictInfo

    func encode(to encoder: any Encoder) throws {
        try conflict.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(libraryName, forKey: .libraryName)
    }

    enum CodingKeys: String, CodingKey { case libraryName = "library_name" }
}

/// `device.registered` and `device.revoked`.
struct DeviceEventData: Encodable {
    let device: String
    let name: String?
}

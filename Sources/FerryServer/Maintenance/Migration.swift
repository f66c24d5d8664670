import FerryCore
import Foundation
import GRDB
import Logging
import NIOCore
import PostgresNIO

/// What `ferry-server migrate` copied.
public struct MigrationReport: Sendable, Equatable {
    /// Rows copied per table (rows already there from an earlier run are not counted).
    public var rows: [String: Int] = [:]
    public var blobsCopied = 0
    public var blobsPresent = 0
}

/// Copies a one-box server (SQLite and its blob directory) into the stores a cluster
/// configuration names (SPEC §9). Blobs go first, then the metadata table by table in key
/// order, each page in its own transaction with `ON CONFLICT DO NOTHING`: a run that stops
/// half-way is simply run again, and it skips what is already there. `check` proves the result.
public struct Migration: Sendable {
    let source: DatabasePool
    let sourceBlobs: FileBlobStore
    let sourceDirectory: DataDirectory
    let target: PostgresMetadataStore
    let targetBlobs: any BlobStore
    let logger: Logger
    /// Rows per INSERT (PostgreSQL takes at most 65,535 parameters in one statement).
    static let page = 500

    public init(from dataDirectory: String, into stores: OpenedStores, threadPool: NIOThreadPool, logger: Logger) throws {
        guard let target = stores.store as? PostgresMetadataStore else {
            throw PostgresStoreError("the configuration names no PostgreSQL database (metadata.url) to migrate into")
        }
        let directory = try DataDirectory(path: dataDirectory)
        guard FileManager.default.fileExists(atPath: directory.databasePath) else {
            throw PostgresStoreError("'\(dataDirectory)' holds no ferry.sqlite: give the one-box server's data directory")
        }
        self.sourceDirectory = directory
        self.source = try ServerDatabase.open(path: directory.databasePath)
        self.sourceBlobs = try FileBlobStore(dataDirectory: directory.path, threadPool: threadPool)
        self.target = target
        self.targetBlobs = stores.blobs
        self.logger = logger
    }

    /// One table: how it is read from SQLite and written to PostgreSQL.
    struct Table {
        let source: String
        let target: String
        let columns: [(name: String, type: ColumnType)]
        let key: String
        /// Extra SQLite expressions appended to the column list (task's rowid as position).
        var extra: [(expression: String, name: String, type: ColumnType)] = []
    }

    enum ColumnType { case int, int32, text, bool, date, bytes }

    /// Parents before children, as the foreign keys need.
    static let tables: [Table] = [
        Table(source: "user", target: "ferry_user", columns: [("id", .int), ("username", .text), ("password_hash", .text), ("is_admin", .bool),
                                                            ("created_at", .date), ("password_changed_at", .date), ("quota_bytes", .int)], key: "id"),
        Table(source: "device", target: "device", columns: [("id", .text), ("user_id", .int), ("name", .text), ("token_hash", .bytes), ("created_at", .date),
                                                        ("last_seen_at", .date), ("revoked_at", .date)], key: "id"),
        Table(source: "session", target: "session", columns: [("id", .text), ("user_id", .int), ("created_at", .date), ("expires_at", .date),
                                                          ("revoked_at", .date), ("revoke_reason", .text), ("cookie_hash", .bytes)], key: "id"),
        Table(source: "refresh_token", target: "refresh_token", columns: [("token_hash", .bytes), ("session_id", .text), ("created_at", .date),
                                                                      ("expires_at", .date), ("used_at", .date)], key: "token_hash"),
        Table(source: "library", target: "library", columns: [("id", .text), ("user_id", .int), ("name", .text), ("head", .int), ("created_at", .date),
                                                          ("keep_versions", .int), ("keep_days", .int), ("trash_days", .int), ("purged_through", .int)], key: "id"),
        Table(source: "version", target: "version", columns: [("library_id", .text), ("seq", .int), ("path", .text), ("kind", .text), ("deleted", .bool),
                                                          ("size", .int), ("sha256", .bytes), ("mtime_ns", .int), ("mode", .int32), ("chunks", .bytes),
                                                          ("target", .text), ("device_id", .text), ("committed_at", .date)], key: "library_id, seq"),
        Table(source: "entry", target: "entry", columns: [("library_id", .text), ("path", .text), ("seq", .int), ("deleted", .bool)], key: "library_id, path"),
        Table(source: "chunk", target: "chunk", columns: [("sha256", .bytes), ("size", .int), ("created_at", .date), ("touched_at", .date)], key: "sha256"),
        Table(source: "user_chunk", target: "user_chunk", columns: [("sha256", .bytes), ("user_id", .int)], key: "sha256, user_id"),
        Table(source: "security_event", target: "security_event", columns: [("id", .int), ("at", .date), ("kind", .text), ("user_id", .int), ("username", .text),
                                                                        ("device_id", .text), ("address", .text), ("detail", .text), ("count", .int32)], key: "id"),
        Table(source: "conflict", target: "conflict", columns: [("id", .text), ("library_id", .text), ("path", .text), ("copy_path", .text), ("mine_seq", .int),
                                                            ("theirs_seq", .int), ("detected_at", .date), ("resolved_at", .date), ("resolution", .text)], key: "id"),
        Table(source: "webhook", target: "webhook", columns: [("id", .text), ("user_id", .int), ("url", .text), ("events", .text), ("secret", .text),
                                                          ("active", .bool), ("disabled_reason", .text), ("created_at", .date), ("created_by_session", .text),
                                                          ("created_by_device", .text), ("keep_response_excerpts", .bool), ("tls_fingerprint", .text)],
              key: "id"),
        Table(source: "event", target: "event", columns: [("id", .text), ("user_id", .int), ("type", .text), ("body", .bytes), ("created_at", .date)], key: "id"),
        Table(source: "delivery", target: "delivery", columns: [("id", .int), ("webhook_id", .text), ("event_id", .text), ("state", .text), ("attempts", .int32),
                                                            ("next_attempt_at", .date), ("created_at", .date)], key: "id"),
        Table(source: "delivery_attempt", target: "delivery_attempt", columns: [("delivery_id", .int), ("attempt", .int32), ("at", .date), ("status", .int32),
                                                                            ("latency_ms", .int32), ("error", .text), ("response", .text)], key: "delivery_id, attempt"),
        Table(source: "project", target: "project", columns: [("id", .text), ("owner_id", .int), ("name", .text), ("created_at", .date)], key: "id"),
        Table(source: "project_member", target: "project_member", columns: [("project_id", .text), ("user_id", .int)], key: "project_id, user_id"),
        Table(source: "task", target: "task", columns: [("id", .text), ("project_id", .text), ("title", .text), ("description", .text), ("status", .text),
                                                    ("due_date", .text), ("created_by", .int), ("created_at", .date), ("updated_at", .date)], key: "rowid",
              extra: [("rowid", "position", .int)]),
        Table(source: "task_assignee", target: "task_assignee", columns: [("task_id", .text), ("user_id", .int)], key: "task_id, user_id"),
        Table(source: "attachment", target: "attachment", columns: [("id", .text), ("task_id", .text), ("library_id", .text), ("path", .text), ("seq", .int),
                                                                ("follow", .bool), ("added_by", .int), ("created_at", .date), ("updated_at", .date)], key: "id"),
        Table(source: "confirmed_deletion", target: "confirmed_deletion", columns: [("library_id", .text), ("seq", .int), ("device_id", .text),
                                                                                ("confirmed_at", .date)], key: "library_id, seq"),
        Table(source: "library_member", target: "library_member", columns: [("library_id", .text), ("user_id", .int), ("role", .text),
                                                                        ("added_at", .date), ("added_by", .int)], key: "library_id, user_id"),
    ]

    /// Serial columns whose sequences must continue after the copied ids.
    static let sequences = [("ferry_user", "id"), ("security_event", "id"), ("delivery", "id"), ("task", "position")]

    public func run(progress: @Sendable (String) -> Void = { _ in }) async throws -> MigrationReport {
        var report = MigrationReport()
        try await copyBlobs(&report, progress: progress)
        for table in Self.tables {
            report.rows[table.target] = try await copy(table)
            progress("\(table.target): \(report.rows[table.target] ?? 0) rows copied")
        }
        let database = target.database
        try await database.write { connection in
            for (table, column) in Self.sequences {
                try await connection.query(PostgresQuery(unsafeSQL: """
                    SELECT setval(pg_get_serial_sequence('\(table)', '\(column)'), coalesce((SELECT max(\(column)) FROM \(table)), 0) + 1, false)
                    """), logger: logger)
            }
            // Usage counters from the holds as copied (a run again copies only what is missing).
            try await connection.query(PostgresQuery(unsafeSQL: PostgresSchema.recountUsage), logger: logger)
            // Tokens the one box issued stay valid: the cluster signs with its key.
            let key = ByteBuffer(bytes: try sourceDirectory.signingKey())
            try await connection.query("""
                INSERT INTO server_secret (name, value) VALUES ('jwt_signing_key', \(key)) ON CONFLICT (name) DO UPDATE SET value = excluded.value
                """, logger: logger)
        }
        return report
    }

    /// Every stored blob into the target's blob store, made durable before any row names it.
    /// What the target holds already is listed once (on S3 one request per 1,000 objects,
    /// not a HEAD per blob), so a migration run again sends only what is missing.
    func copyBlobs(_ report: inout MigrationReport, progress: @Sendable (String) -> Void) async throws {
        let hashes = try await sourceBlobs.storedHashes()
        var present = Set(try await targetBlobs.storedHashes())
        for (n, hash) in hashes.enumerated() {
            guard present.insert(hash).inserted else {
                report.blobsPresent += 1
                continue
            }
            // Read once: the target's writer checks the bytes against their name.
            let size = try await sourceBlobs.size(of: hash)
            let bytes = try await sourceBlobs.readTogether([BlobSpan(hash: hash, offset: 0, length: size)])
            let writer = try await targetBlobs.makeWriter()
            do {
                try await writer.write(bytes)
                _ = try targetBlobs.publish(try await writer.finish(expected: hash))
            } catch {
                await writer.abort()
                throw error
            }
            report.blobsCopied += 1
            if n % 1000 == 999 { progress("blobs: \(n + 1) of \(hashes.count)") }
        }
    }

    /// Copies one table in pages of its key order; returns the rows that were new.
    func copy(_ table: Table) async throws -> Int {
        let select = (table.columns.map { "\"\($0.name)\"" } + table.extra.map(\.expression)).joined(separator: ", ")
        let names = table.columns.map(\.name) + table.extra.map(\.name)
        let types = table.columns.map(\.type) + table.extra.map(\.type)
        var offset = 0
        var copied = 0
        while true {
            let rows = try await source.read { db in
                try Row.fetchAll(db, sql: "SELECT \(select) FROM \"\(table.source)\" ORDER BY \(table.key) LIMIT ? OFFSET ?", arguments: [Self.page, offset])
            }
            guard !rows.isEmpty else { return copied }
            var bindings = PostgresBindings(capacity: rows.count * names.count)
            var tuples: [String] = []
            for row in rows {
                var placeholders: [String] = []
                for (i, type) in types.enumerated() {
                    try Self.bind(row, i, type, into: &bindings)
                    placeholders.append("$\(bindings.count)")
                }
                tuples.append("(" + placeholders.joined(separator: ", ") + ")")
            }
            let sql = "INSERT INTO \(table.target) (\(names.joined(separator: ", "))) VALUES \(tuples.joined(separator: ", ")) ON CONFLICT DO NOTHING RETURNING 1"
            copied += try await target.database.write { connection in
                try await PostgresDatabase.count(connection, PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger)
            }
            offset += rows.count
        }
    }

    static func bind(_ row: Row, _ index: Int, _ type: ColumnType, into bindings: inout PostgresBindings) throws {
        if row.hasNull(atIndex: index) {
            bindings.appendNull()
            return
        }
        switch type {
        case .int: bindings.append(row[index] as Int64)
        case .int32: bindings.append(Int32(clamping: row[index] as Int64))
        case .text: bindings.append(row[index] as String)
        case .bool: bindings.append(row[index] as Bool)
        case .date: bindings.append(row[index] as Date)
        case .bytes: bindings.append(ByteBuffer(bytes: row[index] as Data))
        }
    }
}

import Foundation
import GRDB

/// Opens the server's SQLite database: WAL, `synchronous=FULL` (verified after the pool
/// opens, SPEC §6), foreign keys, a busy timeout so concurrent writers wait, and the
/// schema migrations.
public enum ServerDatabase {
    /// Opens (creating if needed) `ferry.sqlite` at `path` and migrates it to the latest schema.
    public static func open(path: String, busyTimeout: TimeInterval = 10) throws -> DatabasePool {
        let pool = try durablePool(path: path, busyTimeout: busyTimeout)
        try migrator.migrate(pool)
        return pool
    }

    /// The writer's page cache. SQLite's default (2,000 KiB: 31 pages of the blob database's
    /// 64 KiB) is smaller than what one upload batch dirties, so pages spilled to the WAL in
    /// mid-transaction and were written again at commit: storing 90 MB of small files into a
    /// store that held 26,000 chunks wrote 686 MiB, 470 MiB with this. At most this much per
    /// database, and only as pages are used.
    static let writerCacheKiB = 32768

    /// How much write-ahead log the writer lets grow before it copies the pages back into the
    /// database file. SQLite's default, 1,000 pages, is 4 MiB for `ferry.sqlite`: an initial
    /// sync of 20,000 small files checkpointed it 19 times, each a synced write of the same
    /// hot b-tree pages, done by the writer while it held the write lock.
    static let checkpointBytes = 64 << 20

    /// A WAL pool whose every connection commits with `synchronous=FULL`, checked before use.
    /// Shared by the metadata database and the small-blob database (`InlineBlobs`).
    static func durablePool(path: String, busyTimeout: TimeInterval, pageSize: Int? = nil) throws -> DatabasePool {
        var config = Configuration()
        config.busyMode = .timeout(busyTimeout)
        config.foreignKeysEnabled = true
        config.prepareDatabase { db in
            // Takes effect only while the file is new, before WAL is set up.
            if let pageSize { try db.execute(sql: "PRAGMA page_size = \(pageSize)") }
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        let pool = try DatabasePool(path: path, configuration: config)
        // GRDB's WAL set-up runs after `prepareDatabase` and lowers the writer to NORMAL,
        // which can lose the last commits on power loss. The pool keeps one writer for
        // its lifetime, so raising it once here holds; the check below proves it.
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA cache_size = -\(writerCacheKiB)")
            let pageSize = try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(checkpointBytes / pageSize)")
        }
        try verifyDurability(pool)
        return pool
    }

    /// Refuses to run on a pool that lost WAL or `synchronous=FULL`: a pool may hand out
    /// connections that were configured differently, so read the settings back.
    static func verifyDurability(_ pool: DatabasePool) throws {
        let (mode, writerSync) = try pool.write { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "", try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1)
        }
        let readerSync = try pool.read { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
        guard mode.lowercased() == "wal", writerSync == 2, readerSync == 2 else {
            throw DatabaseDurabilityError(journalMode: mode, synchronous: min(writerSync, readerSync))
        }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-core") { db in
            try db.execute(sql: """
                CREATE TABLE user (
                    id INTEGER PRIMARY KEY,
                    username TEXT NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 64),
                    password_hash TEXT NOT NULL,
                    is_admin BOOLEAN NOT NULL DEFAULT 0,
                    created_at DATETIME NOT NULL,
                    password_changed_at DATETIME NOT NULL
                );
                CREATE TABLE device (
                    id TEXT PRIMARY KEY,
                    user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,
                    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
                    token_hash BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
                    created_at DATETIME NOT NULL,
                    last_seen_at DATETIME,
                    revoked_at DATETIME
                );
                CREATE INDEX device_user ON device(user_id);
                -- One login: a family of refresh tokens that rotate. Revoking it ends both
                -- the refresh tokens and the access tokens that name it.
                CREATE TABLE session (
                    id TEXT PRIMARY KEY,
                    user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,
                    created_at DATETIME NOT NULL,
                    expires_at DATETIME NOT NULL,
                    revoked_at DATETIME,
                    revoke_reason TEXT
                );
                CREATE INDEX session_user ON session(user_id);
                CREATE TABLE refresh_token (
                    token_hash BLOB PRIMARY KEY CHECK (length(token_hash) = 32),
                    session_id TEXT NOT NULL REFERENCES session(id) ON DELETE CASCADE,
                    created_at DATETIME NOT NULL,
                    expires_at DATETIME NOT NULL,
                    used_at DATETIME
                ) WITHOUT ROWID;
                CREATE INDEX refresh_token_session ON refresh_token(session_id);
                CREATE TABLE library (
                    id TEXT PRIMARY KEY,
                    user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,
                    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
                    head INTEGER NOT NULL DEFAULT 0 CHECK (head >= 0),
                    created_at DATETIME NOT NULL,
                    UNIQUE (user_id, name)
                );
                -- Every put and delete, forever (until retention): history and trash.
                CREATE TABLE version (
                    library_id TEXT NOT NULL REFERENCES library(id) ON DELETE CASCADE,
                    seq INTEGER NOT NULL CHECK (seq > 0),
                    path TEXT NOT NULL,
                    kind TEXT NOT NULL CHECK (kind IN ('file', 'directory', 'symlink')),
                    deleted BOOLEAN NOT NULL,
                    size INTEGER NOT NULL CHECK (size >= 0),
                    sha256 BLOB CHECK (sha256 IS NULL OR length(sha256) = 32),
                    mtime_ns INTEGER NOT NULL,
                    mode INTEGER NOT NULL,
                    chunks BLOB NOT NULL,
                    target TEXT,
                    device_id TEXT,
                    committed_at DATETIME NOT NULL,
                    PRIMARY KEY (library_id, seq)
                );
                CREATE INDEX version_path ON version(library_id, path, seq);
                -- The current version of each path (tombstones included: they propagate).
                CREATE TABLE entry (
                    library_id TEXT NOT NULL REFERENCES library(id) ON DELETE CASCADE,
                    path TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    deleted BOOLEAN NOT NULL,
                    PRIMARY KEY (library_id, path),
                    FOREIGN KEY (library_id, seq) REFERENCES version(library_id, seq)
                ) WITHOUT ROWID;
                CREATE UNIQUE INDEX entry_seq ON entry(library_id, seq);
                -- Stored once, whoever uploaded it.
                CREATE TABLE chunk (
                    sha256 BLOB PRIMARY KEY CHECK (length(sha256) = 32),
                    size INTEGER NOT NULL CHECK (size >= 0),
                    created_at DATETIME NOT NULL,
                    touched_at DATETIME NOT NULL
                ) WITHOUT ROWID;
                -- Which users have proven they hold a chunk (uploaded it): only those may
                -- reference or read it (SPEC §3).
                CREATE TABLE user_chunk (
                    user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,
                    sha256 BLOB NOT NULL REFERENCES chunk(sha256) ON DELETE CASCADE,
                    PRIMARY KEY (user_id, sha256)
                ) WITHOUT ROWID;
                CREATE INDEX user_chunk_sha ON user_chunk(sha256);
                CREATE TABLE security_event (
                    id INTEGER PRIMARY KEY,
                    at DATETIME NOT NULL,
                    kind TEXT NOT NULL,
                    user_id INTEGER,
                    username TEXT,
                    device_id TEXT,
                    address TEXT,
                    detail TEXT
                );
                CREATE INDEX security_event_user ON security_event(user_id, at);
                """)
        }
        m.registerMigration("v2-conflicts-webhooks") { db in
            try db.execute(sql: """
                -- A conflict copy the server knows about: `path` was won by `theirs_seq`, and the
                -- losing side was uploaded as `copy_path` at `mine_seq`.
                CREATE TABLE conflict (
                    id TEXT PRIMARY KEY,
                    library_id TEXT NOT NULL REFERENCES library(id) ON DELETE CASCADE,
                    path TEXT NOT NULL,
                    copy_path TEXT NOT NULL,
                    mine_seq INTEGER NOT NULL,
                    theirs_seq INTEGER NOT NULL,
                    detected_at DATETIME NOT NULL,
                    resolved_at DATETIME,
                    resolution TEXT CHECK (resolution IN ('mine', 'theirs', 'both', 'copy_deleted'))
                );
                CREATE INDEX conflict_library ON conflict(library_id, resolved_at);
                CREATE INDEX conflict_copy ON conflict(library_id, copy_path) WHERE resolved_at IS NULL;
                CREATE TABLE webhook (
                    id TEXT PRIMARY KEY,
                    user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,
                    url TEXT NOT NULL,
                    events TEXT NOT NULL,
                    secret TEXT NOT NULL,
                    active BOOLEAN NOT NULL DEFAULT 1,
                    disabled_reason TEXT,
                    created_at DATETIME NOT NULL
                );
                CREATE INDEX webhook_user ON webhook(user_id);
                -- The transactional outbox: written in the same transaction as the change it
                -- reports, with one delivery per subscribed endpoint. `body` is the exact JSON sent.
                CREATE TABLE event (
                    id TEXT PRIMARY KEY,
                    user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,
                    type TEXT NOT NULL,
                    body BLOB NOT NULL,
                    created_at DATETIME NOT NULL
                );
                CREATE TABLE delivery (
                    id INTEGER PRIMARY KEY,
                    webhook_id TEXT NOT NULL REFERENCES webhook(id) ON DELETE CASCADE,
                    event_id TEXT NOT NULL REFERENCES event(id) ON DELETE CASCADE,
                    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
                    attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt_at DATETIME,
                    created_at DATETIME NOT NULL
                );
                CREATE INDEX delivery_due ON delivery(state, next_attempt_at) WHERE state = 'pending';
                CREATE INDEX delivery_webhook ON delivery(webhook_id, id);
                CREATE TABLE delivery_attempt (
                    delivery_id INTEGER NOT NULL REFERENCES delivery(id) ON DELETE CASCADE,
                    attempt INTEGER NOT NULL,
                    at DATETIME NOT NULL,
                    status INTEGER,
                    latency_ms INTEGER NOT NULL,
                    error TEXT,
                    response TEXT,
                    PRIMARY KEY (delivery_id, attempt)
                ) WITHOUT ROWID;
                """)
        }
        m.registerMigration("v3-tasks") { db in
            try db.execute(sql: """
                CREATE TABLE project (
                    id TEXT PRIMARY KEY,
                    owner_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,
                    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
                    created_at DATETIME NOT NULL,
                    UNIQUE (owner_id, name)
                );
                CREATE TABLE project_member (
                    project_id TEXT NOT NULL REFERENCES project(id) ON DELETE CASCADE,
                    user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,
                    PRIMARY KEY (project_id, user_id)
                ) WITHOUT ROWID;
                CREATE INDEX project_member_user ON project_member(user_id);
                CREATE TABLE task (
                    id TEXT PRIMARY KEY,
                    project_id TEXT NOT NULL REFERENCES project(id) ON DELETE CASCADE,
                    title TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
                    description TEXT NOT NULL DEFAULT '',
                    status TEXT NOT NULL CHECK (status IN ('todo', 'in_progress', 'review', 'done')),
                    due_date TEXT,
                    created_by INTEGER NOT NULL REFERENCES user(id),
                    created_at DATETIME NOT NULL,
                    updated_at DATETIME NOT NULL
                );
                CREATE INDEX task_project ON task(project_id, status);
                CREATE TABLE task_assignee (
                    task_id TEXT NOT NULL REFERENCES task(id) ON DELETE CASCADE,
                    user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,
                    PRIMARY KEY (task_id, user_id)
                ) WITHOUT ROWID;
                CREATE INDEX task_assignee_user ON task_assignee(user_id);
                -- A pinned version of a synced file; versions are kept, so its chunks are
                -- referenced for as long as the attachment exists (gc counts versions).
                CREATE TABLE attachment (
                    id TEXT PRIMARY KEY,
                    task_id TEXT NOT NULL REFERENCES task(id) ON DELETE CASCADE,
                    library_id TEXT NOT NULL REFERENCES library(id) ON DELETE CASCADE,
                    path TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    follow BOOLEAN NOT NULL,
                    added_by INTEGER NOT NULL REFERENCES user(id),
                    created_at DATETIME NOT NULL,
                    updated_at DATETIME NOT NULL,
                    FOREIGN KEY (library_id, seq) REFERENCES version(library_id, seq)
                );
                CREATE INDEX attachment_task ON attachment(task_id);
                CREATE INDEX attachment_follow ON attachment(library_id, path) WHERE follow = 1;
                """)
        }
        // `user_chunk` keyed by the hash first: its primary key then serves both the owner
        // check (hash and user) and the cascade from `chunk` (hash), and the separate hash
        // index is gone. Each stored chunk inserted into three hash-ordered b-trees of this
        // database, and each upload batch rewrote about a thousand random pages of them;
        // now two. Deleting a user scans the table once, which is rare enough to pay for.
        m.registerMigration("v4-user-chunk-by-hash") { db in
            try db.execute(sql: """
                CREATE TABLE user_chunk_by_hash (
                    sha256 BLOB NOT NULL REFERENCES chunk(sha256) ON DELETE CASCADE,
                    user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,
                    PRIMARY KEY (sha256, user_id)
                ) WITHOUT ROWID;
                INSERT INTO user_chunk_by_hash (sha256, user_id) SELECT sha256, user_id FROM user_chunk ORDER BY sha256, user_id;
                DROP TABLE user_chunk;
                ALTER TABLE user_chunk_by_hash RENAME TO user_chunk;
                """)
        }
        // Security fixes: who created each webhook (a session or a device, so revoking one
        // can switch off what it made), response excerpts kept only when the owner asks,
        // refused logins written as one counted line, and the log read by time.
        m.registerMigration("v5-webhook-creator-and-security-log") { db in
            try db.execute(sql: """
                ALTER TABLE webhook ADD COLUMN created_by_session TEXT;
                ALTER TABLE webhook ADD COLUMN created_by_device TEXT;
                ALTER TABLE webhook ADD COLUMN keep_response_excerpts BOOLEAN NOT NULL DEFAULT 0;
                ALTER TABLE security_event ADD COLUMN count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1);
                CREATE INDEX security_event_at ON security_event(at);
                """)
        }
        // Dashboard sign-ins are sessions too (sign-out, a password change and expiry end
        // them like any other), found by the browser's cookie, kept only as its SHA-256.
        m.registerMigration("v6-dashboard-sessions") { db in
            try db.execute(sql: """
                ALTER TABLE session ADD COLUMN cookie_hash BLOB CHECK (cookie_hash IS NULL OR length(cookie_hash) = 32);
                CREATE UNIQUE INDEX session_cookie ON session(cookie_hash) WHERE cookie_hash IS NOT NULL;
                """)
        }
        // A receiver's self-signed certificate pinned by its SHA-256 (SPEC §8), in the one
        // spelling `CertificateFingerprint` writes. (Named when v5 was next; it runs after v6.)
        m.registerMigration("v7-webhook-tls-fingerprint") { db in
            try db.execute(sql: """
                ALTER TABLE webhook ADD COLUMN tls_fingerprint TEXT
                    CHECK (tls_fingerprint IS NULL OR (length(tls_fingerprint) = 71 AND substr(tls_fingerprint, 1, 7) = 'SHA256:'));
                """)
        }
        // Deletions a person confirmed past the mass-delete guard, on a device or in the
        // dashboard, one row per deletion version: the user's other devices let exactly these
        // through without asking again (DeleteConfirmationStore). Gone with their version.
        m.registerMigration("v8-confirmed-deletions") { db in
            try db.execute(sql: """
                CREATE TABLE confirmed_deletion (
                    library_id TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    device_id TEXT,
                    confirmed_at DATETIME NOT NULL,
                    PRIMARY KEY (library_id, seq),
                    FOREIGN KEY (library_id, seq) REFERENCES version(library_id, seq) ON DELETE CASCADE
                ) WITHOUT ROWID;
                """)
        }
        // gc with blobs in an object store (architecture.md, "gc on S3"): the hashes it
        // decided to delete whose objects may still exist, and the epoch bumped after each
        // acknowledged delete, which uploads read before they place an object.
        m.registerMigration("v9-blob-trash") { db in
            try db.execute(sql: """
                CREATE TABLE blob_trash (sha256 BLOB PRIMARY KEY NOT NULL CHECK (length(sha256) = 32)) WITHOUT ROWID;
                CREATE TABLE blob_gc (id INTEGER PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT NULL CHECK (epoch >= 0));
                INSERT INTO blob_gc (id, epoch) VALUES (1, 0);
                """)
        }
        // Per-user quotas (SPEC §10): the quota (NULL: none) and the bytes of the chunks the
        // user holds, a counter moved by the transactions that add and release `user_chunk`
        // rows (QuotaStore), started from the real sum.
        m.registerMigration("v10-user-quota") { db in
            try db.execute(sql: """
                ALTER TABLE user ADD COLUMN quota_bytes INTEGER CHECK (quota_bytes IS NULL OR quota_bytes >= 0);
                ALTER TABLE user ADD COLUMN used_bytes INTEGER NOT NULL DEFAULT 0 CHECK (used_bytes >= 0);
                """)
            for (userId, bytes) in try SQLiteMetadataStore.actualUsage(db) {
                try db.execute(sql: "UPDATE user SET used_bytes = ? WHERE id = ?", arguments: [bytes, userId])
            }
        }
        // Retention per library (SPEC §10, RetentionStore): each limit null = keep; and the
        // highest deletion retention removed, below which a change-feed cursor is refused.
        m.registerMigration("v11-library-retention") { db in
            try db.execute(sql: """
                ALTER TABLE library ADD COLUMN keep_versions INTEGER CHECK (keep_versions IS NULL OR keep_versions >= 1);
                ALTER TABLE library ADD COLUMN keep_days INTEGER CHECK (keep_days IS NULL OR keep_days >= 0);
                ALTER TABLE library ADD COLUMN trash_days INTEGER CHECK (trash_days IS NULL OR trash_days >= 1);
                ALTER TABLE library ADD COLUMN purged_through INTEGER NOT NULL DEFAULT 0 CHECK (purged_through >= 0);
                """)
        }
        // Libraries shared with other users (SPEC §10, LibrarySharingStore): one row per
        // member with their role; the owner stays `library.user_id`.
        m.registerMigration("v12-library-members") { db in
            try db.execute(sql: """
                CREATE TABLE library_member (
                    library_id TEXT NOT NULL REFERENCES library(id) ON DELETE CASCADE,
                    user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,
                    role TEXT NOT NULL CHECK (role IN ('read', 'write')),
                    added_at DATETIME NOT NULL,
                    added_by INTEGER REFERENCES user(id) ON DELETE SET NULL,
                    PRIMARY KEY (library_id, user_id)
                ) WITHOUT ROWID;
                CREATE INDEX library_member_user ON library_member(user_id);
                """)
        }
        return m
    }
}

/// The database came up without the durability settings SPEC §6 requires.
public struct DatabaseDurabilityError: Error, CustomStringConvertible {
    public let journalMode: String
    public let synchronous: Int
    public var description: String {
        "database durability check failed: journal_mode=\(journalMode), synchronous=\(synchronous) (need wal and 2=FULL)"
    }
}

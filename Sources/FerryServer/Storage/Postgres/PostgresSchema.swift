/// The PostgreSQL schema: the SQLite schema's tables and constraints (ServerDatabase.swift),
/// with `TIMESTAMPTZ` times, `BYTEA` hashes, paths in the "C" collation (byte order, so
/// "a/" < "a/b" < "a0" holds as it does in SQLite) and the columns only a cluster needs
/// (webhook leases, the shared signing key, login attempts). Named, append-only migrations.
enum PostgresSchema {
    /// Sets every user's usage counter to the sum of the chunks they hold (QuotaStore): when
    /// the counter starts, and after `migrate` copied the holds.
    static let recountUsage = """
        UPDATE ferry_user f SET used_bytes = (
            SELECT coalesce(sum(c.size), 0)::bigint FROM user_chunk uc JOIN chunk c ON c.sha256 = uc.sha256 WHERE uc.user_id = f.id)
        """

    static let migrations: [(name: String, statements: [String])] = [
        ("v1-core", [
            """
            CREATE TABLE ferry_user (
                id BIGSERIAL PRIMARY KEY,
                username TEXT NOT NULL UNIQUE CHECK (char_length(username) BETWEEN 1 AND 64),
                password_hash TEXT NOT NULL,
                is_admin BOOLEAN NOT NULL DEFAULT false,
                created_at TIMESTAMPTZ NOT NULL,
                password_changed_at TIMESTAMPTZ NOT NULL
            )
            """,
            """
            CREATE TABLE device (
                id TEXT PRIMARY KEY,
                user_id BIGINT NOT NULL REFERENCES ferry_user(id) ON DELETE CASCADE,
                name TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
                token_hash BYTEA NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
                created_at TIMESTAMPTZ NOT NULL,
                last_seen_at TIMESTAMPTZ,
                revoked_at TIMESTAMPTZ
            )
            """,
            "CREATE INDEX device_user ON device(user_id)",
            """
            CREATE TABLE session (
                id TEXT PRIMARY KEY,
                user_id BIGINT NOT NULL REFERENCES ferry_user(id) ON DELETE CASCADE,
                created_at TIMESTAMPTZ NOT NULL,
                expires_at TIMESTAMPTZ NOT NULL,
                revoked_at TIMESTAMPTZ,
                revoke_reason TEXT
            )
            """,
            "CREATE INDEX session_by_user ON session(user_id)",
            """
            CREATE TABLE refresh_token (
                token_hash BYTEA PRIMARY KEY CHECK (octet_length(token_hash) = 32),
                session_id TEXT NOT NULL REFERENCES session(id) ON DELETE CASCADE,
                created_at TIMESTAMPTZ NOT NULL,
                expires_at TIMESTAMPTZ NOT NULL,
                used_at TIMESTAMPTZ
            )
            """,
            "CREATE INDEX refresh_token_session ON refresh_token(session_id)",
            """
            CREATE TABLE library (
                id TEXT PRIMARY KEY,
                user_id BIGINT NOT NULL REFERENCES ferry_user(id) ON DELETE CASCADE,
                name TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 255),
                head BIGINT NOT NULL DEFAULT 0 CHECK (head >= 0),
                created_at TIMESTAMPTZ NOT NULL,
                UNIQUE (user_id, name)
            )
            """,
            """
            CREATE TABLE version (
                library_id TEXT NOT NULL REFERENCES library(id) ON DELETE CASCADE,
                seq BIGINT NOT NULL CHECK (seq > 0),
                path TEXT COLLATE "C" NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('file', 'directory', 'symlink')),
                deleted BOOLEAN NOT NULL,
                size BIGINT NOT NULL CHECK (size >= 0),
                sha256 BYTEA CHECK (sha256 IS NULL OR octet_length(sha256) = 32),
                mtime_ns BIGINT NOT NULL,
                mode INTEGER NOT NULL,
                chunks BYTEA NOT NULL,
                target TEXT,
                device_id TEXT,
                committed_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (library_id, seq)
            )
            """,
            "CREATE INDEX version_path ON version(library_id, path, seq)",
            """
            CREATE TABLE entry (
                library_id TEXT NOT NULL REFERENCES library(id) ON DELETE CASCADE,
                path TEXT COLLATE "C" NOT NULL,
                seq BIGINT NOT NULL,
                deleted BOOLEAN NOT NULL,
                PRIMARY KEY (library_id, path),
                FOREIGN KEY (library_id, seq) REFERENCES version(library_id, seq)
            )
            """,
            "CREATE UNIQUE INDEX entry_seq ON entry(library_id, seq)",
            """
            CREATE TABLE chunk (
                sha256 BYTEA PRIMARY KEY CHECK (octet_length(sha256) = 32),
                size BIGINT NOT NULL CHECK (size >= 0),
                created_at TIMESTAMPTZ NOT NULL,
                touched_at TIMESTAMPTZ NOT NULL
            )
            """,
            """
            CREATE TABLE user_chunk (
                sha256 BYTEA NOT NULL REFERENCES chunk(sha256) ON DELETE CASCADE,
                user_id BIGINT NOT NULL REFERENCES ferry_user(id) ON DELETE CASCADE,
                PRIMARY KEY (sha256, user_id)
            )
            """,
            "CREATE INDEX user_chunk_user ON user_chunk(user_id)",
            """
            CREATE TABLE security_event (
                id BIGSERIAL PRIMARY KEY,
                at TIMESTAMPTZ NOT NULL,
                kind TEXT NOT NULL,
                user_id BIGINT,
                username TEXT,
                device_id TEXT,
                address TEXT,
                detail TEXT,
                count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1)
            )
            """,
            "CREATE INDEX security_event_user ON security_event(user_id, at)",
            "CREATE INDEX security_event_at ON security_event(at)",
            """
            CREATE TABLE conflict (
                id TEXT PRIMARY KEY,
                library_id TEXT NOT NULL REFERENCES library(id) ON DELETE CASCADE,
                path TEXT COLLATE "C" NOT NULL,
                copy_path TEXT COLLATE "C" NOT NULL,
                mine_seq BIGINT NOT NULL,
                theirs_seq BIGINT NOT NULL,
                detected_at TIMESTAMPTZ NOT NULL,
                resolved_at TIMESTAMPTZ,
                resolution TEXT CHECK (resolution IN ('mine', 'theirs', 'both', 'copy_deleted'))
            )
            """,
            "CREATE INDEX conflict_library ON conflict(library_id, resolved_at)",
            "CREATE INDEX conflict_copy ON conflict(library_id, copy_path) WHERE resolved_at IS NULL",
            """
            CREATE TABLE webhook (
                id TEXT PRIMARY KEY,
                user_id BIGINT NOT NULL REFERENCES ferry_user(id) ON DELETE CASCADE,
                url TEXT NOT NULL,
                events TEXT NOT NULL,
                secret TEXT NOT NULL,
                active BOOLEAN NOT NULL DEFAULT true,
                disabled_reason TEXT,
                created_at TIMESTAMPTZ NOT NULL,
                created_by_session TEXT,
                created_by_device TEXT,
                keep_response_excerpts BOOLEAN NOT NULL DEFAULT false,
                -- The instance sending this endpoint's deliveries, until when (see dueDeliveries).
                lease_owner TEXT,
                lease_until TIMESTAMPTZ
            )
            """,
            "CREATE INDEX webhook_user ON webhook(user_id)",
            """
            CREATE TABLE event (
                id TEXT PRIMARY KEY,
                user_id BIGINT NOT NULL REFERENCES ferry_user(id) ON DELETE CASCADE,
                type TEXT NOT NULL,
                body BYTEA NOT NULL,
                created_at TIMESTAMPTZ NOT NULL
            )
            """,
            """
            CREATE TABLE delivery (
                id BIGSERIAL PRIMARY KEY,
                webhook_id TEXT NOT NULL REFERENCES webhook(id) ON DELETE CASCADE,
                event_id TEXT NOT NULL REFERENCES event(id) ON DELETE CASCADE,
                state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at TIMESTAMPTZ,
                created_at TIMESTAMPTZ NOT NULL
            )
            """,
            "CREATE INDEX delivery_pending ON delivery(webhook_id, id) WHERE state = 'pending'",
            "CREATE INDEX delivery_webhook ON delivery(webhook_id, id)",
            "CREATE INDEX delivery_event ON delivery(event_id)",
            """
            CREATE TABLE delivery_attempt (
                delivery_id BIGINT NOT NULL REFERENCES delivery(id) ON DELETE CASCADE,
                attempt INTEGER NOT NULL,
                at TIMESTAMPTZ NOT NULL,
                status INTEGER,
                latency_ms INTEGER NOT NULL,
                error TEXT,
                response TEXT,
                PRIMARY KEY (delivery_id, attempt)
            )
            """,
            """
            CREATE TABLE project (
                id TEXT PRIMARY KEY,
                owner_id BIGINT NOT NULL REFERENCES ferry_user(id) ON DELETE CASCADE,
                name TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
                created_at TIMESTAMPTZ NOT NULL,
                UNIQUE (owner_id, name)
            )
            """,
            """
            CREATE TABLE project_member (
                project_id TEXT NOT NULL REFERENCES project(id) ON DELETE CASCADE,
                user_id BIGINT NOT NULL REFERENCES ferry_user(id) ON DELETE CASCADE,
                PRIMARY KEY (project_id, user_id)
            )
            """,
            "CREATE INDEX project_member_user ON project_member(user_id)",
            """
            CREATE TABLE task (
                position BIGSERIAL UNIQUE,
                id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL REFERENCES project(id) ON DELETE CASCADE,
                title TEXT NOT NULL CHECK (char_length(title) BETWEEN 1 AND 500),
                description TEXT NOT NULL DEFAULT '',
                status TEXT NOT NULL CHECK (status IN ('todo', 'in_progress', 'review', 'done')),
                due_date TEXT,
                created_by BIGINT NOT NULL REFERENCES ferry_user(id),
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL
            )
            """,
            "CREATE INDEX task_project ON task(project_id, status)",
            """
            CREATE TABLE task_assignee (
                task_id TEXT NOT NULL REFERENCES task(id) ON DELETE CASCADE,
                user_id BIGINT NOT NULL REFERENCES ferry_user(id) ON DELETE CASCADE,
                PRIMARY KEY (task_id, user_id)
            )
            """,
            "CREATE INDEX task_assignee_user ON task_assignee(user_id)",
            """
            CREATE TABLE attachment (
                id TEXT PRIMARY KEY,
                task_id TEXT NOT NULL REFERENCES task(id) ON DELETE CASCADE,
                library_id TEXT NOT NULL REFERENCES library(id) ON DELETE CASCADE,
                path TEXT COLLATE "C" NOT NULL,
                seq BIGINT NOT NULL,
                follow BOOLEAN NOT NULL,
                added_by BIGINT NOT NULL REFERENCES ferry_user(id),
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                FOREIGN KEY (library_id, seq) REFERENCES version(library_id, seq)
            )
            """,
            "CREATE INDEX attachment_task ON attachment(task_id)",
            "CREATE INDEX attachment_follow ON attachment(library_id, path) WHERE follow",
            // Secrets every instance shares: the JWT signing key.
            "CREATE TABLE server_secret (name TEXT PRIMARY KEY, value BYTEA NOT NULL)",
            // The login rate limiter's state across instances (LoginAttemptLedger).
            // Times in microseconds since 1970: a ticket finds its own failure again exactly.
            """
            CREATE TABLE login_attempt (
                key TEXT PRIMARY KEY,
                failures BIGINT[] NOT NULL,
                next_allowed BIGINT NOT NULL
            )
            """,
        ]),
        // Main's SQLite migrations after v5, under the same names (ServerDatabase.swift).
        // Dashboard sign-ins are sessions found by the browser's cookie, kept only as its SHA-256.
        ("v6-dashboard-sessions", [
            "ALTER TABLE session ADD COLUMN cookie_hash BYTEA CHECK (cookie_hash IS NULL OR octet_length(cookie_hash) = 32)",
            "CREATE UNIQUE INDEX session_cookie ON session(cookie_hash) WHERE cookie_hash IS NOT NULL",
        ]),
        // A receiver's certificate pinned by its SHA-256 (SPEC §8), as `CertificateFingerprint` writes it.
        ("v7-webhook-tls-fingerprint", [
            """
            ALTER TABLE webhook ADD COLUMN tls_fingerprint TEXT
                CHECK (tls_fingerprint IS NULL OR (char_length(tls_fingerprint) = 71 AND substr(tls_fingerprint, 1, 7) = 'SHA256:'))
            """,
        ]),
        // Deletions a person confirmed past the mass-delete guard (DeleteConfirmationStore).
        ("v8-confirmed-deletions", [
            """
            CREATE TABLE confirmed_deletion (
                library_id TEXT NOT NULL,
                seq BIGINT NOT NULL,
                device_id TEXT,
                confirmed_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (library_id, seq),
                FOREIGN KEY (library_id, seq) REFERENCES version(library_id, seq) ON DELETE CASCADE
            )
            """,
        ]),
        ("v9-blob-trash", [
            "CREATE TABLE blob_trash (sha256 BYTEA PRIMARY KEY CHECK (octet_length(sha256) = 32))",
            "CREATE TABLE blob_gc (id INT PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL CHECK (epoch >= 0))",
            "INSERT INTO blob_gc (id, epoch) VALUES (1, 0)",
        ]),
        // Per-user quotas: the quota (NULL: none) and the counter of the bytes the user holds (QuotaStore).
        ("v10-user-quota", [
            "ALTER TABLE ferry_user ADD COLUMN quota_bytes BIGINT CHECK (quota_bytes IS NULL OR quota_bytes >= 0)",
            "ALTER TABLE ferry_user ADD COLUMN used_bytes BIGINT NOT NULL DEFAULT 0 CHECK (used_bytes >= 0)",
            recountUsage,
        ]),
        // Retention per library (RetentionStore): each limit null = keep.
        ("v11-library-retention", [
            "ALTER TABLE library ADD COLUMN keep_versions BIGINT CHECK (keep_versions IS NULL OR keep_versions >= 1)",
            "ALTER TABLE library ADD COLUMN keep_days BIGINT CHECK (keep_days IS NULL OR keep_days >= 0)",
            "ALTER TABLE library ADD COLUMN trash_days BIGINT CHECK (trash_days IS NULL OR trash_days >= 1)",
            "ALTER TABLE library ADD COLUMN purged_through BIGINT NOT NULL DEFAULT 0 CHECK (purged_through >= 0)",
        ]),
        // Libraries shared with other users (LibrarySharingStore).
        ("v12-library-members", [
            """
            CREATE TABLE library_member (
                library_id TEXT NOT NULL REFERENCES library(id) ON DELETE CASCADE,
                user_id BIGINT NOT NULL REFERENCES ferry_user(id) ON DELETE CASCADE,
                role TEXT NOT NULL CHECK (role IN ('read', 'write')),
                added_at TIMESTAMPTZ NOT NULL,
                added_by BIGINT REFERENCES ferry_user(id) ON DELETE SET NULL,
                PRIMARY KEY (library_id, user_id)
            )
            """,
            "CREATE INDEX library_member_user ON library_member(user_id)",
        ]),
    ]
}

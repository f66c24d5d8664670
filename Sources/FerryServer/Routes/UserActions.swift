import FerryCore
import Foundation
import Hummingbird
import Logging
import NIOPosix
import CoreMetrics
import Metrics

/// What a person does, whichever door they came in by: the JSON API's routes and the
/// dashboard's pages both call these, so each rule (a check, a wake-up of the change feed,
/// a line in the security log) is written once.
extension ServerServices {
    /// Checks a user name and password under the sign-in rate limit and the password gate,
    /// writing refusals and failures to the security log. Answers the user; the caller makes
    /// the session and records `login.succeeded`.
    func signIn(username: String, password: String, address: String?) async throws -> StoredUser {
        guard !username.isEmpty, username.utf8.count <= 64, !password.isEmpty, password.utf8.count <= 1024 else {
            throw APIError.badRequest("username (1–64 bytes) and password (1–1024 bytes) are required")
        }
        let address = address ?? "unknown"
        // The attempt is reserved before any hashing, so parallel attempts cannot all pass.
        let ticket: LoginRateLimiter.Ticket
        switch try await limiter.reserve(username: username, address: address, now: Date()) {
        case .success(let reserved): ticket = reserved
        case .failure(let wait):
            if let count = refusals.refused(username: username, address: address) {
                try await store.recordSecurityEvent(.init(kind: .rateLimited, username: username, address: address, count: count))
            }
            throw APIError(.tooManyRequests, "rate_limited", "too many failed logins; try again in \(wait.seconds) seconds", retryAfter: wait.seconds)
        }
        let user: StoredUser?
        let valid: Bool
        do {
            user = try await store.user(named: username)
            let stored = user?.passwordHash ?? decoyPasswordHash
            let hasher = passwords
            let pool = threadPool
            // Unknown users cost the same KDF time as known ones: no user enumeration by timing.
            // The gate bounds the hashing in flight, per name and address and overall.
            valid = try await passwordGate.run(key: address + "\u{0}" + username) {
                try await pool.runIfActive { hasher.verify(password, against: stored) }
            }
        } catch {
            // Not judged: a busy server or a failure must not cost the caller an attempt.
            do { try await limiter.withdraw(ticket) } catch let withdrawal {
                // The caller hears of the first failure; this one costs them one counted attempt.
                logger.warning("could not withdraw a sign-in attempt", metadata: ["error": "\(withdrawal)"])
            }
            if error is ConcurrencyGate.Busy {
                throw APIError(.serviceUnavailable, "busy", "the server is busy checking other sign-ins; try again in a second", retryAfter: 1)
            }
            throw error
        }
        guard let user, valid else {
            try await store.recordSecurityEvent(.init(kind: .loginFailed, userId: user?.id, username: username, address: address))
            throw APIError.unauthorized("wrong user name or password")
        }
        try await limiter.succeeded(ticket)
        return user
    }

    /// Ends the caller's signed-in session and logs it.
    func signOut(_ user: Identity, address: String?) async throws {
        guard let session = user.sessionId else { return }
        try await store.revokeSession(id: session, userId: user.userId, reason: "logout")
        try await store.recordSecurityEvent(.init(kind: .logout, userId: user.userId, username: user.username, address: address))
    }

    /// Creates a library once its name passes the rules of SPEC §2.
    func createLibrary(named raw: String, for user: Identity) async throws -> LibraryInfo {
        let name = raw.precomposedStringWithCanonicalMapping
        guard (1...255).contains(name.utf8.count), !name.contains("/"), !name.utf8.contains(0), name != ".", name != ".." else {
            throw APIError.badRequest("library name must be 1 to 255 bytes, without '/' or NUL, and not '.' or '..'")
        }
        return try await store.createLibrary(userId: user.userId, name: name)
    }

    /// Commits a batch to `library` and wakes the change feed's waiters when the head moved.
    func commit(_ operations: [CommitOperation], by user: Identity, to library: LibraryInfo) async throws -> CommitResponse {
        let started = DispatchTime.now()
        let response = try await store.commit(userId: user.userId, libraryId: library.id, deviceId: user.deviceId, operations: operations)
        metrics.commitLatency.recordInterval(since: started)
        metrics.commitOperations.increment(by: operations.count)
        if response.head != library.head { notifier.notify(library: library.id, head: response.head) }
        return response
    }

    /// Deletes one entry a person confirmed deleting (the dashboard asks first), and records
    /// the deletion as confirmed: a device whose mass-delete guard would hold it as part of a
    /// larger set lets it through without asking again.
    func deleteConfirmed(_ path: FerryPath, base: Int64, by user: Identity, in library: LibraryInfo) async throws -> CommitResult {
        let result = try await commit([.delete(path, base: base)], by: user, to: library).results[0]
        if result.status == .ok, let seq = result.version?.version {
            _ = try await store.confirmDeletions(userId: user.userId, libraryId: library.id, versions: [seq], deviceId: user.deviceId)
        }
        return result
    }

    /// Makes an old version current again, as a new version.
    /// A deleted directory comes back with what its removal took (`RestoreOutcome`).
    func restore(_ request: RestoreRequest, by user: Identity, in library: LibraryInfo) async throws -> RestoreOutcome {
        let outcome = try await store.restore(userId: user.userId, libraryId: library.id, deviceId: user.deviceId, request: request)
        notifier.notify(library: library.id, head: outcome.head)
        return outcome
    }

    /// Settles an open conflict of the caller's.
    func resolveConflict(_ id: String, keep: ConflictKeep, by user: Identity) async throws -> ConflictInfo {
        let info = try await store.resolveConflict(userId: user.userId, id: id, keep: keep, deviceId: user.deviceId)
        if let head = try await store.libraryAccess(userId: user.userId, id: info.library)?.head {
            notifier.notify(library: info.library, head: head)
        }
        return info
    }

    /// Revokes one of the caller's live devices (its token is refused from now on) and logs it.
    func revokeDevice(_ id: String, by user: Identity, address: String?) async throws {
        guard try await store.revokeDevice(userId: user.userId, deviceId: id) else {
            throw APIError.notFound("device '\(id)' not found or already revoked")
        }
        try await store.recordSecurityEvent(.init(kind: .deviceRevoked, userId: user.userId, username: user.username, deviceId: id, address: address))
    }

    /// Creates a webhook endpoint from a signed-in session (never a device: see
    /// `WebhookRoutes.session`), generating its secret unless one is given.
    func createWebhook(_ body: CreateWebhookRequest, by user: Identity, session: String) async throws -> CreatedWebhookResponse {
        let url = try checkedWebhookURL(body.url)
        if let secret = body.secret {
            guard (16...256).contains(secret.utf8.count), !secret.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw APIError.badRequest("a secret must be 16 to 256 bytes without control characters (or omit it to have one generated)")
            }
        }
        let secret = body.secret ?? WebhookSigner.generateSecret()
        let pin = try body.tlsFingerprint.map(checkedWebhookFingerprint)
        let webhook = try await store.createWebhook(
            userId: user.userId, createdBy: WebhookCreator(kind: .session, id: session), url: url, events: body.events, secret: secret,
            active: body.active ?? true, keepResponseExcerpts: body.keepResponseExcerpts ?? false, tlsFingerprint: pin)
        return CreatedWebhookResponse(webhook: webhook, secret: secret)
    }

    /// A receiver's pinned certificate fingerprint, in any accepted spelling.
    func checkedWebhookFingerprint(_ raw: String) throws -> CertificateFingerprint {
        do { return try CertificateFingerprint(parsing: raw) } catch {
            throw APIError.badRequest("tls_fingerprint: \(error.description)", code: "invalid_fingerprint")
        }
    }

    /// The URL's shape, and a literal address's range, are checked now; names at delivery.
    func checkedWebhookURL(_ raw: String) throws -> String {
        do {
            let target = try WebhookTarget(raw)
            let settings = configuration.webhooks
            try target.checkWithoutResolving(allowPrivate: settings.allowPrivateTargets, allowedHosts: settings.allowedHosts)
            return target.url.absoluteString
        } catch {
            throw APIError.badRequest("webhook URL refused: \(error.description)", code: "invalid_url")
        }
    }
}

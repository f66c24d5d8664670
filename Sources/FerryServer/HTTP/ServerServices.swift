import FerryCore
import Foundation
import Hummingbird
import Logging
import NIOPosix
import ServiceLifecycle

/// The parts every route uses, assembled once by `FerryServerApp`.
public struct ServerServices: Sendable {
    public let configuration: ServerConfiguration
    public let store: any MetadataStore
    public let blobs: any BlobStore
    public let tokens: TokenService
    public let passwords: PasswordHasher
    /// Verified against when a login names an unknown user (see `PasswordHasher.makeDecoy`).
    public let decoyPasswordHash: String
    public let limiter: any LoginAttemptLedger
    /// Bounds the password hashing in flight (per name and address, and overall).
    public let passwordGate: ConcurrencyGate
    /// Which refused logins are written to the security log, and with what count.
    let refusals: RefusalLog
    /// Whose `X-Forwarded-For` names the client.
    public let trustedProxies: TrustedProxies
    /// Large JSON bodies being read and decoded at once (see `decodeBulk`).
    let largeBodies: ConcurrencyGate
    public let notifier: ChangeNotifier
    /// The change-feed reads of long-polls woken together, one query for all of them.
    let wokenReads = SharedReads<WokenRead, FeedRead>()
    public let metrics: ServerMetrics
    /// Blocking work (KDF, file I/O) runs here, never on an event loop.
    public let threadPool: NIOThreadPool
    public let logger: Logger
    /// Delivers the webhook outbox; runs as a service next to the HTTP server.
    public let dispatcher: WebhookDispatcher
    /// The certificate presented when the server speaks HTTPS; nil for plain HTTP.
    public let certificate: ServerCertificate?
    /// The web dashboard's templates, CSRF key and live-stream limit.
    public let dashboard: DashboardState
    /// What the metadata backend runs beside the HTTP server (wake-ups from other instances).
    public let backgroundServices: [any Service]

    /// What a woken long-poll's read depends on.
    struct WokenRead: Hashable, Sendable {
        var library: String
        var since: Int64
        var limit: Int
        /// The head the notifier had heard of when the long-poll woke.
        var head: Int64
    }

    /// The request sizes this server takes, announced at `GET /protocol`.
    var limits: ServerLimits {
        let http = configuration.http
        return ServerLimits(batchChunks: http.maxBatchChunks, batchContentBytes: ServerLimits.current.batchContentBytes,
                            commitOperations: http.maxCommitOperations, jsonBodyBytes: http.maxJSONBodyBytes)
    }

    /// Refuses an upload of `incoming` bytes that would leave less than the reserve free.
    func ensureSpace(for incoming: Int64) throws {
        let free = try blobs.freeBytes()
        if free - incoming < configuration.storage.reserveBytes { throw APIError.outOfSpace }
    }

    /// The gc epoch an upload reads before it places objects in an object store, for the fence
    /// of `recordChunks`; nil with the file blob store, which publishes under gc's lock.
    func blobEpoch() async throws -> Int64? {
        guard blobs is any FencedBlobStore else { return nil }
        return try await store.blobEpoch()
    }

    /// The library of the route as the caller may use it, with `role` and `owner` set: 404
    /// when it is neither theirs nor shared with them (its existence is not revealed), 403
    /// when it is shared with them with less than `needed` (SPEC §10).
    func library(_ context: FerryRequestContext, needs needed: LibraryRole) async throws -> LibraryInfo {
        let user = try context.user()
        let id = try context.parameters.require("lib")
        guard let library = try await store.libraryAccess(userId: user.userId, id: id), let role = library.role else {
            throw APIError.notFound("library '\(id)' not found")
        }
        guard role.allows(needed) else {
            throw APIError.forbidden(needed == .owner ? "only the library's owner (\(library.owner ?? "another user")) may do this"
                                                      : "library '\(library.name)' is shared with you to read only")
        }
        return library
    }
}

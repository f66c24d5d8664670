import AsyncHTTPClient
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle

/// The metadata and blob stores a configuration names, opened and ready.
public struct OpenedStores: Sendable {
    public let store: any MetadataStore
    public let blobs: any BlobStore
    /// Set when instances share the stores (PostgreSQL): serve then takes no lock on the data
    /// directory, and start-up recovery leaves alone what may be another instance's work.
    public let postgres: PostgresDatabase?
    let dataDirectory: DataDirectory

    public var isShared: Bool { postgres != nil }

    /// The JWT signing key: the data directory's `signing.key` on one box, a row every
    /// instance shares in PostgreSQL.
    public func signingKey() async throws -> [UInt8] {
        if let store = store as? PostgresMetadataStore { return try await store.signingKey() }
        return try dataDirectory.signingKey()
    }

    /// The login rate limiter's state: in memory on one box, shared through PostgreSQL.
    public func loginLedger(settings: LoginRateLimiter.Settings) -> any LoginAttemptLedger {
        guard let postgres else { return LoginRateLimiter(settings: settings) }
        return PostgresLoginLedger(database: postgres, settings: settings)
    }

    /// What the backend runs beside the HTTP server: wake-ups from other instances.
    public func backgroundServices(notifier: ChangeNotifier, logger: Logger) -> [any Service] {
        guard let postgres else { return [] }
        return [PostgresNotifications(database: postgres, notifier: notifier, outbox: store.outboxSignal, logger: logger)]
    }
}

/// Chooses the backends: the one place that knows them all.
public enum StoreFactory {
    public static func open(_ configuration: ServerConfiguration, threadPool: NIOThreadPool, logger: Logger) async throws -> OpenedStores {
        let data = try DataDirectory(path: configuration.dataDirectory)
        let blobs = try await openBlobs(configuration, data: data, threadPool: threadPool, logger: logger)
        let sessionLifetime = configuration.auth.sessionDays * 86400
        if let url = try configuration.metadata.postgres() {
            let database = PostgresDatabase(url: url, connections: configuration.metadata.maxConnections, logger: logger)
            try await database.prepare()
            let store = PostgresMetadataStore(database: database, threadPool: threadPool, sessionLifetime: sessionLifetime,
                                              leaseSeconds: 60 + configuration.webhooks.requestTimeoutSeconds * Double(WebhookDispatcher.batchSize))
            return OpenedStores(store: store, blobs: blobs, postgres: database, dataDirectory: data)
        }
        let pool = try ServerDatabase.open(path: data.databasePath)
        return OpenedStores(store: SQLiteMetadataStore(pool: pool, sessionLifetime: sessionLifetime), blobs: blobs, postgres: nil, dataDirectory: data)
    }

    /// The data directory's blobs, or the bucket `blobs.url` names (checked reachable, with
    /// the credentials accepted, before the server starts).
    static func openBlobs(_ configuration: ServerConfiguration, data: DataDirectory, threadPool: NIOThreadPool, logger: Logger) async throws -> any BlobStore {
        guard let location = try configuration.blobs.s3() else { return try FileBlobStore(dataDirectory: data.path, threadPool: threadPool) }
        let client = S3Client(location: location, credentials: try configuration.blobs.credentials(), http: S3Client.sharedHTTP)
        do {
            _ = try await client.list(prefix: location.prefix + "blobs/", continuation: nil, maxKeys: 1)
        } catch {
            throw ConfigurationError("cannot use the S3 bucket '\(location.bucket)' at \(location.endpoint): \(error)")
        }
        logger.info("blobs in S3", metadata: ["bucket": "\(location.bucket)", "endpoint": "\(location.endpoint)", "prefix": "\(location.prefix)"])
        return S3BlobStore(client: client, threadPool: threadPool)
    }
}

import FerryServer
import Foundation
import Logging

/// The engines `ferry-bench scaleout` runs the cluster configurations on: a PostgreSQL
/// server it may create databases on and an S3 store it may create buckets on. Each
/// configuration gets a new database and a new bucket, removed afterwards.
struct ScaleOutEngines {
    let admin: PostgresURL
    let s3Endpoint: String
    let credentials: SigV4Signer.Credentials
    let logger: Logger

    /// A new, empty metadata database and blob bucket.
    struct Stores {
        let database: String
        let metadataURL: String
        let blobs: S3Location
        let credentials: SigV4Signer.Credentials

        /// Points a server's configuration at them.
        func apply(to settings: inout ServerConfiguration) {
            settings.metadata.url = metadataURL
            settings.blobs.url = "s3://\(blobs.bucket)?endpoint=\(blobs.endpoint)&region=\(blobs.region)&pathStyle=true"
            settings.blobs.accessKeyId = credentials.accessKeyId
            settings.blobs.secretAccessKey = credentials.secretAccessKey
        }
    }

    /// The engines named by the options or, for those left out, by the environment variables
    /// `Scripts/lib/engines.sh` exports; one error naming everything that is missing.
    static func resolve(postgresURL: String?, s3Endpoint: String?, s3AccessKey: String?, s3SecretKey: String?) throws -> ScaleOutEngines {
        let environment = ProcessInfo.processInfo.environment
        func value(_ option: String?, _ variable: String) -> String? { (option ?? environment[variable]).flatMap { $0.isEmpty ? nil : $0 } }
        let postgres = value(postgresURL, "FERRY_TEST_POSTGRES_URL")
        let endpoint = value(s3Endpoint, "FERRY_TEST_S3_ENDPOINT")
        let key = value(s3AccessKey, "FERRY_TEST_S3_ACCESS_KEY")
        let secret = value(s3SecretKey, "FERRY_TEST_S3_SECRET_KEY")
        var missing: [String] = []
        if postgres == nil { missing.append("--postgres-url or FERRY_TEST_POSTGRES_URL (a PostgreSQL URL of a role that may CREATE DATABASE)") }
        if endpoint == nil { missing.append("--s3-endpoint or FERRY_TEST_S3_ENDPOINT (http://HOST:PORT of an S3 store)") }
        if key == nil { missing.append("--s3-access-key or FERRY_TEST_S3_ACCESS_KEY") }
        if secret == nil { missing.append("--s3-secret-key or FERRY_TEST_S3_SECRET_KEY") }
        if Nginx.binary == nil { missing.append("nginx (apt-get install nginx)") }
        guard let postgres, let endpoint, let key, let secret, missing.isEmpty else {
            throw BenchError("scaleout needs PostgreSQL, an S3 store and nginx; missing: " + missing.joined(separator: "; ")
                + ". Scripts/bench-scaleout starts PostgreSQL and SeaweedFS on loopback and sets the variables.")
        }
        var logger = Logger(label: "ferry-bench-scaleout")
        logger.logLevel = .critical
        return ScaleOutEngines(admin: try PostgresURL(postgres), s3Endpoint: endpoint,
                               credentials: SigV4Signer.Credentials(accessKeyId: key, secretAccessKey: secret), logger: logger)
    }

    /// Runs `body` with a new database and a new bucket, and removes both afterwards, also
    /// when `body` throws (then the removal's own failure is only reported, on stderr).
    func withFreshStores<T>(_ body: (Stores) async throws -> T) async throws -> T {
        let suffix = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        let name = "ferry_bench_\(suffix)"
        let metadataURL = try await PostgresDatabase.createDatabase(named: name, admin: admin, logger: logger)
        let bucket: S3Client
        do {
            bucket = S3Client(location: try S3Location("s3://ferry-bench-\(suffix)?endpoint=\(s3Endpoint)&region=us-east-1&pathStyle=true"),
                              credentials: credentials, http: S3Client.sharedHTTP)
            try await bucket.createBucket()
        } catch {
            do {
                try await PostgresDatabase.dropDatabase(named: name, admin: admin, logger: logger)
            } catch let failure {
                Self.warn("could not drop the database \(name): \(failure)")
            }
            throw error
        }
        let stores = Stores(database: name, metadataURL: metadataURL, blobs: bucket.location, credentials: credentials)
        let result: T
        do {
            result = try await body(stores)
        } catch {
            if let failure = await remove(bucket, name) { Self.warn("could not remove what the benchmark made: \(failure)") }
            throw error
        }
        if let failure = await remove(bucket, name) { throw failure }
        return result
    }

    /// Deletes the bucket and drops the database, each attempted whatever the other did;
    /// what failed (when both did, the bucket's failure goes to stderr).
    private func remove(_ bucket: S3Client, _ database: String) async -> (any Error)? {
        var failure: (any Error)?
        do { try await bucket.deleteBucket() } catch { failure = BenchError("bucket \(bucket.location.bucket): \(error)") }
        do {
            try await PostgresDatabase.dropDatabase(named: database, admin: admin, logger: logger)
        } catch {
            if let failure { Self.warn("could not remove what the benchmark made: \(failure)") }
            failure = BenchError("database \(database): \(error)")
        }
        return failure
    }

    static func warn(_ message: String) {
        FileHandle.standardError.write(Data("ferry-bench: \(message)\n".utf8))
    }
}

import Foundation

/// Where the PostgreSQL metadata store lives, parsed from `metadata.url`
/// (`postgres://USER:PASSWORD@HOST:PORT/DBNAME[?sslmode=disable|prefer|require]`).
public struct PostgresURL: Sendable, Equatable {
    public enum TLSMode: String, Sendable { case disable, prefer, require }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    /// Parses and checks a URL; every problem is one sentence naming `metadata.url`.
    public init(_ text: String) throws {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            throw ConfigurationError("metadata.url is not a URL; write postgres://USER:PASSWORD@HOST:5432/DBNAME")
        }
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw ConfigurationError("metadata.url must start with postgres:// (got '\(scheme)://'); leave it out to use SQLite in the data directory")
        }
        guard let host = components.host, !host.isEmpty else { throw ConfigurationError("metadata.url names no host") }
        guard let user = components.percentEncodedUser.flatMap({ $0.removingPercentEncoding }), !user.isEmpty else {
            throw ConfigurationError("metadata.url names no user (postgres://USER:PASSWORD@HOST/DBNAME)")
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/"), database.utf8.count <= 63 else {
            throw ConfigurationError("metadata.url must name one database after the host (postgres://USER@HOST:5432/DBNAME)")
        }
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else { throw ConfigurationError("metadata.url's port must be 1 to 65535") }
        var tls = TLSMode.prefer
        for item in components.queryItems ?? [] {
            guard item.name == "sslmode" else {
                throw ConfigurationError("metadata.url has an unknown parameter '\(item.name)' (only sslmode is read)")
            }
            guard let mode = item.value.flatMap(TLSMode.init(rawValue:)) else {
                throw ConfigurationError("metadata.url's sslmode must be disable, prefer or require")
            }
            tls = mode
        }
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        self.port = port
        self.username = user
        self.password = components.percentEncodedPassword.flatMap { $0.removingPercentEncoding }
        self.database = database
        self.tls = tls
    }

    /// The URL, password included, as `metadata.url` takes it.
    public var string: String {
        var c = URLComponents()
        c.scheme = "postgres"
        c.user = username
        c.password = password
        c.host = host.contains(":") ? "[\(host)]" : host
        c.port = port
        c.path = "/" + database
        if tls != .prefer { c.queryItems = [URLQueryItem(name: "sslmode", value: tls.rawValue)] }
        return c.string ?? redacted
    }

    /// The URL without its password, for logs and errors.
    public var redacted: String { "postgres://\(username)@\(host):\(port)/\(database)" }
}

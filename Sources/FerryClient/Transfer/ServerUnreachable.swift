import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Nothing answered at the server's address: it is stopped, restarting, or the network is
/// down. Said in one sentence instead of the socket layer's errno, and always worth another
/// try later (the daemon retries with its backoff).
public struct ServerUnreachable: Error, Sendable, Equatable, CustomStringConvertible {
    /// The server as configured, without `/api/v1`.
    public let server: String

    public init(server: String) { self.server = server }

    public var description: String { "the server at \(server) is not answering" }

    /// `error` as a `ServerUnreachable` when it says no connection could be made; nil for
    /// every other failure (a refusal, a broken transfer, a certificate).
    public static func classify(_ error: any Error, server: String) -> ServerUnreachable? {
        isConnectFailure(error) ? ServerUnreachable(server: server) : nil
    }

    static func isConnectFailure(_ error: any Error) -> Bool {
        switch error {
        case let e as IOError: [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, EHOSTDOWN, ETIMEDOUT].contains(e.errnoCode)
        case is NIOConnectionError: true
        case let e as ChannelError: if case .connectTimeout = e { true } else { false }
        case let e as HTTPClientError: e == .connectTimeout || e == .getConnectionFromPoolTimeout
        default: false
        }
    }
}

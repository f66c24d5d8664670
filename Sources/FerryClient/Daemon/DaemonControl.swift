import Foundation

/// What the `ferry` command asks a running `ferryd` over its control socket.
public enum DaemonControl {
    /// How a request to read the configuration again went.
    public enum ReloadOutcome: Equatable, Sendable {
        /// No daemon answers on the socket: the change takes effect when one starts.
        case notRunning
        /// The daemon syncs these folders now.
        case reloaded(folders: [String])
        /// The daemon answered with this error and kept its folders.
        case failed(String)
    }

    /// Asks the daemon to read its configuration again, and waits until it has started and
    /// stopped folder loops to match (ferryd answers once that is done).
    public static func reload(socketPath: String) -> ReloadOutcome {
        do {
            switch try ControlSocket.ask(path: socketPath, .reload, timeoutSeconds: 70) {
            case .reloaded(let folders): return .reloaded(folders: folders)
            case .refused(let why) where why.hasPrefix("unknown command"):
                return .failed("this ferryd is older than ferry and cannot reload; restart it")
            case .refused(let why): return .failed(why)
            default: return .failed(ControlProtocolError.unreadableAnswer.description)
            }
        } catch let e as ControlProtocolError {
            return .failed(e.description)
        } catch let e as ClientError {
            // Connected, but no answer came (a daemon stuck, or gone meanwhile).
            return .failed(e.description)
        } catch {
            return .notRunning  // nothing listens on the socket
        }
    }

    /// How a confirmation of a folder's held deletes went.
    public enum ConfirmOutcome: Equatable, Sendable {
        /// No daemon answers on the socket.
        case notRunning
        /// The daemon carries out the held deletes on its next pass, which starts now.
        case confirmed
        /// The daemon holds no deletes of that folder.
        case nothingWaiting
    }

    /// Lets the daemon carry out the deletes its mass-delete guard holds in `folder` (absolute).
    public static func confirmDeletes(socketPath: String, folder: String) -> ConfirmOutcome {
        do {
            return try ControlSocket.ask(path: socketPath, .confirmDeletes(folder: folder)) == .confirmed ? .confirmed : .nothingWaiting
        } catch is ControlProtocolError {
            return .nothingWaiting
        } catch {
            return .notRunning
        }
    }

    /// The daemon's status document as it sent it (what `ferry status --json` prints); nil
    /// when no daemon answers. `DaemonStatus(json:)` reads it.
    public static func statusDocument(socketPath: String) -> Data? {
        try? ControlSocket.request(path: socketPath, .status)
    }
}

extension DaemonStatus {
    /// Reads the status document the control socket sends.
    public init(json: Data) throws {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        self = try decoder.decode(DaemonStatus.self, from: json)
    }
}

import Foundation

/// A request on `ferryd`'s control socket, sent as one JSON line:
/// `{"command":"confirm-deletes","folder":"/home/me/Photos"}`. That is the shape ferryd has
/// always read, so a `ferry` and a `ferryd` of different versions still understand each
/// other and the wire needs no version field.
public enum ControlRequest: Sendable, Equatable {
    /// Whether a daemon answers (a second ferryd asks before it takes the socket).
    case ping
    /// The daemon's status document.
    case status
    /// Read the configuration again; answered once the folder loops match it.
    case reload
    /// Let through the deletes the mass-delete guard holds in `folder` (absolute path).
    case confirmDeletes(folder: String)

    /// Every command word a daemon knows, for the answer to one it does not.
    public static let commands = ["ping", "status", "reload", "confirm-deletes"]

    /// The command word on the wire.
    public var command: String {
        switch self {
        case .ping: "ping"
        case .status: "status"
        case .reload: "reload"
        case .confirmDeletes: "confirm-deletes"
        }
    }
}

extension ControlRequest: Codable {
    enum CodingKeys: String, CodingKey { case command, folder }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let command = try c.decode(String.self, forKey: .command)
        switch command {
        case "ping": self = .ping
        case "status": self = .status
        case "reload": self = .reload
        case "confirm-deletes":
            guard let folder = try c.decodeIfPresent(String.self, forKey: .folder) else {
                throw ControlProtocolError.missingFolder
            }
            self = .confirmDeletes(folder: folder)
        default: throw ControlProtocolError.unknownCommand(command)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(command, forKey: .command)
        if case .confirmDeletes(let folder) = self { try c.encode(folder, forKey: .folder) }
    }
}

/// The daemon's answer to one `ControlRequest`, sent as one JSON document. Which shape an
/// answer has depends on the request it answers (the status document carries no tag, so
/// `ferry status --json` prints it as it is), so it is read with that request in hand.
public enum ControlAnswer: Sendable, Equatable {
    /// To `ping`: `{"ok":true}`.
    case pong
    /// To `status`: the status document itself.
    case status(DaemonStatus)
    /// To `reload`: `{"folders":[…]}`, the folders synced now.
    case reloaded(folders: [String])
    /// To `confirm-deletes`: `{"ok":true}`.
    case confirmed
    /// To any request the daemon could not carry out, or could not read: `{"error":"…"}`.
    case refused(String)

    /// The answer as it goes on the wire (without the closing newline).
    public var json: Data {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        let encoded: Data? = switch self {
        case .pong, .confirmed: try? encoder.encode(Ok(ok: true))
        case .status(let status): try? encoder.encode(status)
        case .reloaded(let folders): try? encoder.encode(Folders(folders: folders))
        case .refused(let message): try? encoder.encode(Refusal(error: message))
        }
        return encoded ?? Data(#"{"error":"ferryd could not encode its answer"}"#.utf8)
    }

    /// Reads the answer to `request` from the document the daemon sent.
    public init(json: Data, answering request: ControlRequest) throws {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            if let refusal = try? decoder.decode(Refusal.self, from: json) {
                self = .refused(refusal.error)
                return
            }
            switch request {
            case .ping, .confirmDeletes:
                // An older ferryd answers a ping with its status document: any object is an answer.
                let ok = try decoder.decode(Ok.self, from: json)
                guard ok.ok != false else { throw ControlProtocolError.unreadableAnswer }
                self = request == .ping ? .pong : .confirmed
            case .status: self = .status(try decoder.decode(DaemonStatus.self, from: json))
            case .reload: self = .reloaded(folders: try decoder.decode(Folders.self, from: json).folders)
            }
        } catch {
            throw ControlProtocolError.unreadableAnswer
        }
    }

    private struct Ok: Codable { var ok: Bool? }
    private struct Folders: Codable { var folders: [String] }
    private struct Refusal: Codable { var error: String }
}

/// What is wrong with a request or an answer on the control socket.
public enum ControlProtocolError: Error, Equatable, CustomStringConvertible {
    /// The request names a command this daemon does not know (a newer ferry's, or a typo).
    case unknownCommand(String)
    /// `confirm-deletes` without the folder it is about.
    case missingFolder
    /// The line is not a JSON request at all.
    case notARequest
    /// The line is longer than the socket reads.
    case requestTooLong(limit: Int)
    /// The client connected but sent no whole line in time.
    case noRequest(seconds: Double)
    /// The daemon's answer is not one this ferry can read (a daemon of another version).
    case unreadableAnswer

    public var description: String {
        switch self {
        case .unknownCommand(let command):
            "unknown command '\(command)'; this ferryd knows \(ControlRequest.commands.joined(separator: ", "))"
        case .missingFolder: "confirm-deletes needs the folder it is about"
        case .notARequest: #"send one JSON line such as {"command":"status"}"#
        case .requestTooLong(let limit): "a request is one line of at most \(limit / 1024) KiB"
        case .noRequest(let seconds): "no request line came within \(String(format: "%g", seconds)) s"
        case .unreadableAnswer: "ferryd gave an answer this ferry cannot read; restart it ('systemctl --user restart ferryd')"
        }
    }
}

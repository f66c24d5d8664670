@testable import FerryClient
import FerryCore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The control socket's typed requests and answers, and what it does with input that is none.
@Suite("control protocol")
struct ControlProtocolTests {
    static let everyRequest: [ControlRequest] = [.ping, .status, .reload, .confirmDeletes(folder: "/home/me/Photos")]

    static let sampleStatus: DaemonStatus = {
        var folder = FolderStatus(path: "/home/me/Photos", library: "lib-1")
        folder.state = .paused
        folder.lastSyncAt = Date(timeIntervalSince1970: 1_800_000_000)
        folder.massDelete = MassDeletePause(remoteDeletes: 0, localDeletes: 120, entries: 150)
        folder.problems = ["a.txt": "permission denied"]
        return DaemonStatus(server: "https://nas:8443", device: "laptop", startedAt: Date(timeIntervalSince1970: 1_799_999_000), folders: [folder])
    }()

    @Test(arguments: everyRequest)
    func everyRequestRoundTrips(_ request: ControlRequest) throws {
        let wire = try JSONEncoder().encode(request)
        #expect(try JSONDecoder().decode(ControlRequest.self, from: wire) == request)
        // The shape ferryd has always read: a command word, and the folder where there is one.
        let object = try #require(try JSONSerialization.jsonObject(with: wire) as? [String: String])
        #expect(object["command"] == request.command)
        #expect(ControlRequest.commands.contains(request.command))
    }

    @Test func requestsOfTheOldShapeAreRead() throws {
        #expect(try JSONDecoder().decode(ControlRequest.self, from: Data(#"{"command":"status"}"#.utf8)) == .status)
        #expect(try JSONDecoder().decode(ControlRequest.self, from: Data(#"{"command":"confirm-deletes","folder":"/f"}"#.utf8))
                    == .confirmDeletes(folder: "/f"))
    }

    @Test(arguments: [
        (ControlRequest.ping, ControlAnswer.pong),
        (.status, .status(sampleStatus)),
        (.reload, .reloaded(folders: ["/a", "/b c"])),
        (.reload, .reloaded(folders: [])),
        (.confirmDeletes(folder: "/f"), .confirmed),
    ] + everyRequest.map { ($0, ControlAnswer.refused("no: \($0.command)")) })
    func everyAnswerRoundTrips(_ request: ControlRequest, _ answer: ControlAnswer) throws {
        #expect(try ControlAnswer(json: answer.json, answering: request) == answer)
    }

    /// The answers keep the JSON an older `ferry` reads, and one from an older `ferryd` is read.
    @Test func answersKeepTheirWireShape() throws {
        #expect(String(decoding: ControlAnswer.confirmed.json, as: UTF8.self) == #"{"ok":true}"#)
        #expect(String(decoding: ControlAnswer.refused("x").json, as: UTF8.self) == #"{"error":"x"}"#)
        let folders = try #require(try JSONSerialization.jsonObject(with: ControlAnswer.reloaded(folders: ["/a"]).json) as? [String: [String]])
        #expect(folders == ["folders": ["/a"]])
        // An older ferryd answered a ping with its status document.
        #expect(try ControlAnswer(json: ControlAnswer.status(Self.sampleStatus).json, answering: .ping) == .pong)
        #expect(throws: ControlProtocolError.unreadableAnswer) { try ControlAnswer(json: Data("[1]".utf8), answering: .reload) }
        #expect(throws: ControlProtocolError.unreadableAnswer) { try ControlAnswer(json: Data("not json".utf8), answering: .status) }
    }

    /// Whatever a client sends, it gets an error answer saying what was wrong, within the
    /// idle timeout, and the socket goes on serving the next client.
    @Test(arguments: [
        (Data("not json\n".utf8), ControlProtocolError.notARequest.description),
        (Data((#"{"cmd":"status"}"# + "\n").utf8), ControlProtocolError.notARequest.description),
        (Data((#"{"command":"self-destruct"}"# + "\n").utf8), ControlProtocolError.unknownCommand("self-destruct").description),
        (Data((#"{"command":"confirm-deletes"}"# + "\n").utf8), ControlProtocolError.missingFolder.description),
        (Data(repeating: UInt8(ascii: "a"), count: 100_000) + Data("\n".utf8),
         ControlProtocolError.requestTooLong(limit: ControlSocket.requestLimit).description),
        (Data(#"{"command":"sta"#.utf8), ControlProtocolError.noRequest(seconds: 0.2).description),
        (Data(), ControlProtocolError.noRequest(seconds: 0.2).description),
    ])
    func badInputGetsAnErrorAnswer(_ sent: Data, _ expected: String) throws {
        let path = scratchDirectory("control") + "/s.sock"
        let control = try ControlSocket(path: path, idleTimeout: .milliseconds(200)) { _ in .pong }
        defer { control.stop() }
        let answer = try Self.exchange(path, sending: sent)
        #expect(try ControlAnswer(json: answer, answering: .status) == .refused(expected))
        #expect(try ControlSocket.ask(path: path, .ping) == .pong)
    }

    /// A client that closes its side without a word is answered too, not waited for.
    @Test func aClientThatHangsUpIsAnswered() throws {
        let path = scratchDirectory("control") + "/s.sock"
        let control = try ControlSocket(path: path, idleTimeout: .seconds(30)) { _ in .pong }
        defer { control.stop() }
        let answer = try Self.exchange(path, sending: Data(), closeWriting: true)
        #expect(try ControlAnswer(json: answer, answering: .status) == .refused(ControlProtocolError.noRequest(seconds: 30).description))
    }

    @Test func stoppingRemovesTheSocketFile() throws {
        let path = scratchDirectory("control") + "/s.sock"
        let control = try ControlSocket(path: path) { _ in .pong }
        #expect(FileManager.default.fileExists(atPath: path))
        control.stop()
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(throws: SystemCallError.self) { try ControlSocket.ask(path: path, .ping) }
    }

    /// A daemon too old to know `reload` is told apart from one that failed to reload.
    @Test func aReloadAnOldDaemonDoesNotKnowSaysSo() throws {
        let path = scratchDirectory("control") + "/s.sock"
        let control = try ControlSocket(path: path) { _ in .refused("unknown command") }
        defer { control.stop() }
        #expect(DaemonControl.reload(socketPath: path) == .failed("this ferryd is older than ferry and cannot reload; restart it"))
    }

    /// Connects, sends `bytes` as they are (optionally closing the sending side), and reads
    /// the one line the daemon answers (within 10 s, so a hang fails instead of blocking).
    static func exchange(_ path: String, sending bytes: Data, closeWriting: Bool = false) throws -> Data {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        ControlSocket.setTimeout(fd, .seconds(10))
        var address = try ControlSocket.address(path)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(connected == 0)
        ControlSocket.writeAll(fd, bytes)
        if closeWriting { shutdown(fd, Int32(SHUT_WR)) }
        guard case .line(let answer) = ControlSocket.readLine(fd, limit: 1 << 20) else {
            Issue.record("no answer")
            return Data()
        }
        return answer
    }
}

import ArgumentParser
import FerryClient
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// For commands that act as the user rather than as this device (managing webhooks): the
/// user's password, from the terminal or standard input, opens a session for the one command.
struct SessionOptions: ParsableArguments {
    @Flag(help: "Read your password from standard input instead of prompting (webhooks are changed as you, not as this device).")
    var passwordStdin = false

    /// Runs `body` signed in as the configured user; a wrong password is one sentence.
    func withSession<T>(_ config: ClientConfig, _ options: CommonOptions, _ body: (ServerAPI) async throws -> T) async throws -> T {
        let password = try readPassword(prompt: "Password for \(config.username): ", fromStdin: passwordStdin)
        return try await options.withAPI(config) { device in
            do {
                return try await device.withUserSession(username: config.username, password: password, body)
            } catch let e as APIFailure where e.status == 401 && e.code == "unauthorized" {
                throw CLIError("wrong password for \(config.username) (or the session was refused: \(e.message))")
            }
        }
    }
}

/// A password from standard input's first line, or asked for on the terminal without echo.
func readPassword(prompt: String, fromStdin: Bool) throws -> String {
    let password: String
    if fromStdin {
        password = readLine(strippingNewline: true) ?? ""
    } else {
        guard let p = getpass(prompt) else { throw CLIError("could not read a password from the terminal; use --password-stdin") }
        password = String(cString: p)
    }
    guard !password.isEmpty else { throw CLIError("the password is empty") }
    return password
}

import ArgumentParser
import FerryCore
import FerryServer
import Foundation

/// `ferry-server user quota NAME BYTES`: sets or clears a user's quota (SPEC §10).
struct UserQuota: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quota",
        abstract: "Set a user's storage quota, or clear it with 'none' (works while the server runs).",
        discussion: """
            BYTES is a number of bytes with an optional unit: 1073741824, 500MiB, 10GiB, 1TB \
            (KiB, MiB, GiB, TiB are powers of 1024; kB, MB, GB, TB powers of 1000). Usage counts \
            each chunk a user holds once; an upload that would pass the quota is refused with \
            507 quota_exceeded. A quota below the current usage refuses new content until \
            usage drops (deletes, then retention and gc); what is stored stays.
            """)
    @OptionGroup var options: DataOption
    @Argument(help: "The user name.") var name: String
    @Argument(help: "The quota (e.g. 10GiB), or 'none' for no quota.") var bytes: String

    /// The quota `bytes` names: nil for none.
    static func parse(_ text: String) throws -> Int64? {
        if text.lowercased() == "none" { return nil }
        do { return try ByteAmount.parse(text) } catch let error as ByteAmount.Invalid { throw ValidationError(error.description) }
    }

    func validate() throws { _ = try Self.parse(bytes) }

    func run() async throws {
        let quota = try Self.parse(bytes)
        let (store, _, _) = try await options.openStores()
        guard let user = try await store.user(named: name) else { throw ValidationError("no user named '\(name)' (see 'ferry-server user list')") }
        try await store.setQuota(userId: user.id, bytes: quota)
        guard let account = try await store.storageAccount(userId: user.id) else { throw ValidationError("no user named '\(name)'") }
        print(quota == nil ? "removed the quota of '\(name)': \(account.summary)" : "quota of '\(name)' set: \(account.summary)")
    }
}

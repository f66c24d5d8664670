import FerryCore
import NIOCore
import NIOHTTP1

extension ServerAPI {
    /// The caller's storage use and quota (`GET /account/usage`).
    public func accountUsage() async throws -> AccountUsageResponse { try await json(.GET, "/account/usage", Optional<Int>.none) }

    /// The storage line `ferry status` prints, or why there is none: asked with short
    /// timeouts, since the status of the daemon must not wait on a server that is down.
    public static func storageLine(for config: ClientConfig) async -> String {
        let api = ServerAPI.open(for: config, timeouts: .init(connect: .seconds(3), stall: .seconds(5)))
        let line: String
        do { line = try await api.accountUsage().storageLine } catch {
            line = "Storage: not known (\(ClientError.describe(error)))"
        }
        await api.close()
        return line
    }
}

extension AccountUsageResponse {
    /// "Storage: 1.2 GiB of 5.0 GiB used", "Storage: 1.2 GiB used, no quota", with a warning
    /// once the quota is reached.
    public var storageLine: String {
        guard let quotaBytes else { return "Storage: \(ProgressLine.bytes(usedBytes)) used, no quota" }
        let line = "Storage: \(ProgressLine.bytes(usedBytes)) of \(ProgressLine.bytes(quotaBytes)) used"
        return usedBytes >= quotaBytes ? line + " (quota reached: new content is refused until usage drops)" : line
    }
}

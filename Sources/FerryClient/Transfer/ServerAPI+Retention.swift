import FerryCore
import Foundation
import NIOHTTP1

extension ServerAPI {
    /// A library's retention policy (owner only).
    public func retention(library: String) async throws -> LibraryRetention {
        try await json(.GET, "/libraries/\(Self.escape(library))/retention", Optional<Int>.none)
    }

    /// Replaces a library's retention policy (owner only); answers the stored one.
    public func setRetention(library: String, _ policy: RetentionPolicy) async throws -> LibraryRetention {
        try await json(.PUT, "/libraries/\(Self.escape(library))/retention", policy)
    }
}

import Crypto
import Foundation
import Mustache

/// What the dashboard keeps per server: the key its CSRF tokens are made with, and the
/// live-update streams open at once.
public struct DashboardState: Sendable {
    /// Derived from the server's signing key, so tokens survive a restart and differ per server.
    let csrfKey: SymmetricKey
    let streams: StreamLimit
    /// Every page's template, parsed once at start.
    let templates: MustacheLibrary

    init(signingKey: [UInt8]) throws {
        templates = try DashboardTemplates.library()
        csrfKey = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: signingKey), info: Array("ferry dashboard csrf v1".utf8),
                                         outputByteCount: 32)
        streams = StreamLimit(perUser: 16, total: 512)
    }
}

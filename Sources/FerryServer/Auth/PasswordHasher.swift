import Crypto
import CryptoExtras
import Foundation

/// PBKDF2-HMAC-SHA256 password hashing. The stored form names its parameters
/// (`pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>`) so the cost can rise later
/// without invalidating existing passwords.
public struct PasswordHasher: Sendable {
    /// OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256.
    public static let recommendedIterations = 600_000
    public let iterations: Int

    public init(iterations: Int = PasswordHasher.recommendedIterations) {
        self.iterations = iterations
    }

    /// Hashes a password with a fresh 16-byte salt. CPU-heavy: call it off the event loop.
    public func hash(_ password: String) throws -> String {
        let salt = SymmetricKey(size: .bits128).withUnsafeBytes { Data($0) }
        let derived = try Self.derive(password, salt: salt, iterations: iterations)
        return "pbkdf2-sha256$\(iterations)$\(salt.base64EncodedString())$\(derived.base64EncodedString())"
    }

    /// Checks a password against a stored hash in constant time.
    public func verify(_ password: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$")
        guard parts.count == 4, parts[0] == "pbkdf2-sha256", let n = Int(parts[1]), n > 0,
              let salt = Data(base64Encoded: String(parts[2])), let expected = Data(base64Encoded: String(parts[3])),
              let derived = try? Self.derive(password, salt: salt, iterations: n)
        else { return false }
        return ConstantTime.equal(Array(derived), Array(expected))
    }

    /// A hash of a random password at this hasher's cost: verifying against it for unknown
    /// users spends the same time as for known ones, so timing does not reveal who exists.
    public func makeDecoy() throws -> String { try hash(UUID().uuidString) }

    static func derive(_ password: String, salt: Data, iterations: Int) throws -> Data {
        let key = try KDF.Insecure.PBKDF2.deriveKey(
            from: Array(password.utf8), salt: salt, using: .sha256, outputByteCount: 32, unsafeUncheckedRounds: iterations)
        return key.withUnsafeBytes { Data($0) }
    }
}

/// Comparisons whose time does not depend on where the inputs differ.
public enum ConstantTime {
    public static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}

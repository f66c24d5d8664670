import FerryCore
import Crypto
import Foundation

/// The headers every delivery carries (SPEC §4): the SynergyOS-style `X-Webhook-*` set
/// and the Standard Webhooks `webhook-*` set, each with its own HMAC-SHA256 signature.
public enum WebhookSigner {
    public struct Delivery: Sendable {
        public var webhookId: String
        public var eventId: String
        public var eventType: String
        public var deliveryId: Int64
        public var attempt: Int
        public var timestamp: Int64
        public init(webhookId: String, eventId: String, eventType: String, deliveryId: Int64, attempt: Int, timestamp: Int64) {
            self.webhookId = webhookId
            self.eventId = eventId
            self.eventType = eventType
            self.deliveryId = deliveryId
            self.attempt = attempt
            self.timestamp = timestamp
        }
    }

    public static func headers(secret: String, delivery d: Delivery, body: Data) -> [(String, String)] {
        [
            ("Content-Type", "application/json"),
            ("User-Agent", "ferry-server"),
            ("X-Webhook-Signature", "sha256=" + legacySignature(secret: secret, body: body)),
            ("X-Webhook-ID", d.webhookId),
            ("X-Event-Type", d.eventType),
            ("X-Delivery-ID", String(d.deliveryId)),
            ("X-Delivery-Attempt", String(d.attempt)),
            ("webhook-id", d.eventId),
            ("webhook-timestamp", String(d.timestamp)),
            ("webhook-signature", "v1," + standardSignature(secret: secret, id: d.eventId, timestamp: d.timestamp, body: body)),
        ]
    }

    /// Hex HMAC-SHA256 of the body, keyed by the secret's UTF-8 bytes.
    public static func legacySignature(secret: String, body: Data) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Data(secret.utf8)))
        return Hex.lowercase(mac)
    }

    /// Base64 HMAC-SHA256 of `id.timestamp.body`, keyed by the decoded `whsec_` secret.
    public static func standardSignature(secret: String, id: String, timestamp: Int64, body: Data) -> String {
        var message = Data("\(id).\(timestamp).".utf8)
        message.append(body)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: standardKey(secret)))
        return Data(mac).base64EncodedString()
    }

    /// The Standard Webhooks key: the base64 part after `whsec_`, or the UTF-8 bytes of a
    /// secret without that prefix (or whose remainder is not base64).
    public static func standardKey(_ secret: String) -> Data {
        if secret.hasPrefix("whsec_"), let decoded = Data(base64Encoded: String(secret.dropFirst(6))) { return decoded }
        return Data(secret.utf8)
    }

    /// `whsec_` + base64 of 32 random bytes.
    public static func generateSecret() -> String {
        "whsec_" + SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString()
    }
}

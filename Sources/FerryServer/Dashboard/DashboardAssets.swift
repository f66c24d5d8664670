import FerryCore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The dashboard's stylesheet and script, compiled into the binary (no files to ship beside
/// it). Their addresses carry a hash of their content, so browsers may cache them for good.
enum DashboardAssets {
    static let styleURL = "/assets/dashboard.css?v=" + version(DashboardStyle.css)
    static let scriptURL = "/assets/dashboard.js?v=" + version(DashboardScript.js)

    static func add(to group: RouterGroup<FerryRequestContext>) {
        group.get("assets/dashboard.css") { _, _ in serve(DashboardStyle.css, type: "text/css; charset=utf-8") }
        group.get("assets/dashboard.js") { _, _ in serve(DashboardScript.js, type: "text/javascript; charset=utf-8") }
    }

    private static func serve(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "public, max-age=31536000, immutable"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    private static func version(_ text: String) -> String {
        Hex.lowercase(SHA256.hash(data: Array(text.utf8)).prefix(6))
    }
}

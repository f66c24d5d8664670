import FerryCore
import Foundation

/// Which files the dashboard previews, and as what. Only raster image types a browser
/// shows as pictures are served inline as images; text is served as `text/plain` (and shown
/// escaped in the page). SVG and HTML count as text: served as themselves they could run
/// script in the dashboard's origin.
enum Preview: Equatable {
    case image(mimeType: String)
    case text
    /// Neither: the file is only downloaded, never shown.
    case downloadOnly

    var isImage: Bool {
        if case .image = self { return true }
        return false
    }

    /// The first bytes of a text file shown on its page.
    static let textBytes: Int64 = 64 * 1024

    static func of(_ path: FerryPath) -> Preview {
        let name = LibraryLinks.name(of: path).lowercased()
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return .text }
        let ext = String(name[name.index(after: dot)...])
        if let image = images[ext] { return .image(mimeType: image) }
        return textExtensions.contains(ext) ? .text : .downloadOnly
    }

    private static let images = ["png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"]
    private static let textExtensions: Set<String> = [
        "txt", "md", "markdown", "rst", "csv", "tsv", "log", "json", "yaml", "yml", "toml", "ini", "cfg", "conf", "xml", "html", "htm",
        "svg", "css", "js", "ts", "swift", "py", "rb", "go", "rs", "c", "h", "cpp", "hpp", "java", "kt", "sh", "sql", "tex",
    ]

    /// `bytes` as text if they are UTF-8 without NUL (a cut multi-byte character at the end is dropped).
    static func decodeText(_ bytes: [UInt8]) -> String? {
        guard !bytes.contains(0) else { return nil }
        for cut in 0...min(3, bytes.count) {
            if let text = String(validating: bytes.dropLast(cut), as: UTF8.self) { return text }
        }
        return nil
    }
}

import Foundation
import Hummingbird
import Testing

@testable import FerryServer

/// `docs/openapi.yaml` is the API's public description: it must name every route the
/// router serves, and nothing the router does not.
@Suite("OpenAPI document")
struct OpenAPITests {
    @Test func documentsExactlyTheRoutesTheRouterServes() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        // The dashboard's HTML pages (outside /api/v1) are not part of the JSON API.
        let served = Set(FerryServerApp.buildRouter(server.services).routes.map { route in
            "\(route.method.rawValue) \(route.path.description)"
        }.filter { $0.contains(" /api/v1/") })
        let documented = try Self.documentedRoutes()
        #expect(!served.isEmpty)
        #expect(served.subtracting(documented).sorted() == [], "served but not documented")
        #expect(documented.subtracting(served).sorted() == [], "documented but not served")
    }

    /// `METHOD /api/v1/path` for every operation under `paths:`, read from the document's
    /// fixed layout: paths at two spaces, methods at four.
    static func documentedRoutes() throws -> Set<String> {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docs/openapi.yaml"), encoding: .utf8)
        let methods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options"]
        var routes = Set<String>()
        var inPaths = false
        var current: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if !line.hasPrefix(" ") && !line.isEmpty { inPaths = line == "paths:"; continue }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), !line.hasPrefix("   ") {
                current = String(line.dropFirst(2).dropLast())
            } else if line.hasPrefix("    "), !line.hasPrefix("     "), let current {
                let word = line.trimmingCharacters(in: .whitespaces).dropLast()
                if line.hasSuffix(":"), methods.contains(String(word)) {
                    routes.insert("\(word.uppercased()) /api/v1\(current)")
                }
            }
        }
        return routes
    }
}

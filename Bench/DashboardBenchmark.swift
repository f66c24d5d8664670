import ArgumentParser
import AsyncHTTPClient
import FerryCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// `ferry-bench dashboard`: how long the dashboard takes to answer its heaviest pages, a
/// library of 10,000 entries and a file with 1,000 versions, beside the JSON API answering
/// the same rows in the same run. Round trips over loopback to the in-process server, so the
/// time is the server's (query, render, send) plus one request's overhead, not the browser's.
struct DashboardBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dashboard", abstract: "Render time of the dashboard's largest pages.")

    @OptionGroup var options: BenchOptions

    static let entries = 10_000
    static let versions = 1_000

    func run() async throws {
        let root = try options.makeScratch()
        defer { options.removeScratch(root) }
        let repetitions = options.quick ? 5 : 30
        let rows = try await BenchServer.with(dataDirectory: root + "/data") { server in
            // 10,000 files at the library's root, and one file committed 1,000 times.
            for start in stride(from: 0, to: Self.entries, by: 1000) {
                let batch = (start..<min(Self.entries, start + 1000)).map { i in
                    CommitOperation(op: .put, path: try! FerryPath(String(format: "file-%05d.txt", i)), base: nil, kind: .file, size: 0,
                                    sha256: .empty, mtimeNs: 1, mode: 0o644, chunks: [])
                }
                let _: CommitResponse = try await server.json(.POST, "/libraries/\(server.library)/commit", CommitRequest(operations: batch))
            }
            var base: Int64?
            for i in 0..<Self.versions {
                let op = CommitOperation(op: .put, path: try FerryPath("notes.txt"), base: base, kind: .file, size: 0, sha256: .empty,
                                         mtimeNs: Int64(i + 1), mode: 0o644, chunks: [])
                let answer: CommitResponse = try await server.json(.POST, "/libraries/\(server.library)/commit", CommitRequest(operations: [op]))
                base = answer.results[0].version?.version
            }
            let page = try await DashboardSession.signIn(server)
            do {
                let rows = try await Self.measure(page, server, repetitions: repetitions)
                await page.close()
                return rows
            } catch {
                await page.close()
                throw error
            }
        }
        try BenchReport(benchmark: "dashboard", mode: options.quick ? "quick" : "full", machine: BenchReport.machine(), rows: rows).emit(json: options.json)
    }

    /// Each page, warmed once, then timed beside the API's answer of the same rows.
    static func measure(_ page: DashboardSession, _ server: BenchServer, repetitions: Int) async throws -> [BenchRow] {
        let lib = server.library
        let lastAfter = String(format: "file-%05d.txt", Self.entries - 501)
        // notes.txt holds sequence numbers entries+1 … entries+versions: the oldest 100 are below this.
        let oldest = Int64(Self.entries + 101)
        let measured: [(String, String, String, String, String)] = [
            ("library page, 10,000 entries: first page of 500", "/libraries/\(lib)", "JSON list of the same 500", "/libraries/\(lib)/list?limit=500", "< 300 ms"),
            ("library page, 10,000 entries: last page", "/libraries/\(lib)?after=\(lastAfter)", "JSON list of the same page",
             "/libraries/\(lib)/list?limit=500&after=\(lastAfter)", "< 300 ms"),
            ("file page, 1,000 versions: newest 100", "/libraries/\(lib)/file?path=notes.txt", "JSON history of the same 100",
             "/libraries/\(lib)/history?path=notes.txt&limit=100", "< 300 ms"),
            ("file page, 1,000 versions: oldest page", "/libraries/\(lib)/file?path=notes.txt&before=\(oldest)", "JSON history of the same page",
             "/libraries/\(lib)/history?path=notes.txt&limit=100&before=\(oldest)", "< 300 ms"),
        ]
        var rows: [BenchRow] = []
        for (name, pagePath, reference, apiPath, goal) in measured {
            _ = try await page.get(pagePath)  // warm the caches once, like a second visit
            let pageMs = try await averageMilliseconds(repetitions) { _ = try await page.get(pagePath) }
            let apiMs = try await averageMilliseconds(repetitions) { _ = try await server.raw(apiPath) }
            rows.append(BenchRow(name: "\(name) (mean of \(repetitions))", value: pageMs, unit: "ms", reference: reference, referenceValue: apiMs, goal: goal))
        }
        return rows
    }
}

/// A browser's session with the dashboard: signs in through the form, keeps the cookie.
/// Its own client, which does not follow redirects (the sign-in answers 303).
struct DashboardSession {
    let client: HTTPClient
    let origin: String
    let cookie: String

    static func signIn(_ server: BenchServer) async throws -> DashboardSession {
        let origin = String(server.baseURL.dropLast("/api/v1".count))
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
        do {
            return try await signIn(server, origin: origin, client: client)
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private static func signIn(_ server: BenchServer, origin: String, client: HTTPClient) async throws -> DashboardSession {
        var form = HTTPClientRequest(url: origin + "/signin")
        form.headers.add(name: "Accept", value: "text/html")
        let shown = try await client.execute(form, timeout: .seconds(30))
        let html = String(buffer: try await shown.body.collect(upTo: 1 << 20))
        guard let nonce = cookie("ferry_signin", in: shown.headers),
              let token = html.firstMatch(of: /name="csrf" value="([^"]+)"/).map({ String($0.1) }) else {
            throw BenchError("the sign-in page has no form token")
        }
        var post = HTTPClientRequest(url: origin + "/signin")
        post.method = .POST
        post.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        post.headers.add(name: "Cookie", value: "ferry_signin=\(nonce)")
        post.body = .bytes(ByteBuffer(string: "csrf=\(token)&username=bench&password=\(BenchServer.password)"))
        let answer = try await client.execute(post, timeout: .seconds(30))
        _ = try await answer.body.collect(upTo: 1 << 20)
        guard answer.status == .seeOther, let session = cookie("ferry_session", in: answer.headers) else {
            throw BenchError("signing in to the dashboard answered \(answer.status.code)")
        }
        return DashboardSession(client: client, origin: origin, cookie: "ferry_session=\(session)")
    }

    func close() async { try? await client.shutdown() }

    static func cookie(_ name: String, in headers: HTTPHeaders) -> String? {
        headers["Set-Cookie"].first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1).prefix { $0 != ";" }) }
    }

    /// A page, read whole; throws unless it is 200.
    func get(_ path: String) async throws -> ByteBuffer {
        var request = HTTPClientRequest(url: origin + path)
        request.headers.add(name: "Cookie", value: cookie)
        request.headers.add(name: "Accept", value: "text/html")
        let response = try await client.execute(request, timeout: .seconds(60))
        let body = try await response.body.collect(upTo: 64 << 20)
        guard response.status == .ok else { throw BenchError("GET \(path) answered \(response.status.code)") }
        return body
    }
}

extension BenchServer {
    /// An API answer's bytes, undecoded (decoding is the client's time, not the server's).
    func raw(_ path: String) async throws -> ByteBuffer {
        var request = HTTPClientRequest(url: baseURL + path)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        let response = try await client.execute(request, timeout: .seconds(60))
        let body = try await response.body.collect(upTo: 64 << 20)
        guard response.status == .ok else { throw BenchError("GET \(path) answered \(response.status.code)") }
        return body
    }
}

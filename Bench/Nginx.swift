import FerryHarness
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// nginx in front of several `ferry-server` instances on loopback, configured as
/// docs/operations.md ("Several instances") tells operators to, on a free 127.0.0.1 port.
/// It runs in the foreground (`daemon off`), a child of this process, and stops with `stop()`.
struct Nginx {
    let pid: pid_t
    let port: Int
    let directory: String

    /// The nginx binary: on PATH, or where Debian puts it (`/usr/sbin`, not on every user's PATH).
    static var binary: String? {
        which("nginx") ?? ["/usr/sbin/nginx", "/usr/local/sbin/nginx"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Writes `directory/nginx.conf` balancing over `upstreams` (loopback ports), starts nginx
    /// with it and waits until it listens; stopped again if it does not.
    static func start(directory: String, upstreams: [Int]) async throws -> Nginx {
        guard let binary else { throw BenchError("nginx is not installed (apt-get install nginx)") }
        try FileManager.default.createDirectory(atPath: directory + "/logs", withIntermediateDirectories: true)
        let port = try freePort()
        let servers = upstreams.map { "server 127.0.0.1:\($0);" }.joined(separator: " ")
        // One worker: the instances, PostgreSQL, SeaweedFS and the clients share the machine.
        // Connections: each client's downstream one plus an upstream one per request in flight.
        let configuration = """
            worker_processes 1;
            pid \(directory)/nginx.pid;
            error_log \(directory)/logs/error.log warn;
            events { worker_connections 2048; }
            http {
                access_log off;
                upstream ferry { \(servers) keepalive 64; }
                server {
                    listen 127.0.0.1:\(port);
                    client_max_body_size 40m;
                    proxy_read_timeout 120s;
                    location / {
                        proxy_pass http://ferry;
                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                        proxy_set_header X-Forwarded-For $remote_addr;
                        proxy_request_buffering off;
                    }
                }
            }

            """
        try Data(configuration.utf8).write(to: URL(fileURLWithPath: directory + "/nginx.conf"))
        let pid = try Child.spawn(binary, ["-p", directory, "-e", directory + "/logs/error.log", "-c", directory + "/nginx.conf", "-g", "daemon off;"],
                            stdout: directory + "/logs/stdout.log", stderr: directory + "/logs/stderr.log")
        let nginx = Nginx(pid: pid, port: port, directory: directory)
        do {
            guard try await SyncBenchmark.poll(timeout: .seconds(15), { acceptsConnections(port: port) || nginx.hasExited }), !nginx.hasExited else {
                throw BenchError("nginx did not start; see \(directory)/logs")
            }
        } catch {
            nginx.stop()
            throw error
        }
        return nginx
    }

    /// Whether the master process has exited (a zombie until `stop()` reaps it), read from
    /// /proc so the check reaps nothing.
    var hasExited: Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let name = stat.lastIndex(of: ")"),
              let state = stat[name...].dropFirst(2).first else { return true }
        return state == "Z" || state == "X"
    }

    /// Stops nginx (SIGTERM: the master stops its workers first) and waits for it to exit.
    func stop() {
        kill(pid, SIGTERM)
        _ = try? Child.wait(for: pid)
    }
}

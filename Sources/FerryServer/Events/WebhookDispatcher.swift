import AsyncHTTPClient
import FerryCore
import FerryTLS
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// Delivers the outbox (SPEC §4): at least once, each endpoint's events in commit order
/// (one delivery in flight per endpoint, so a slow endpoint delays only itself), at most
/// `maxConcurrentDeliveries` in flight overall, every attempt recorded, retries on the
/// configured schedule with jitter, `Retry-After` honoured, and the endpoint switched off
/// after `410 Gone` or once a delivery has spent every retry. Deliveries that were pending
/// when the server stopped simply go out after it starts: the outbox is the queue.
public actor WebhookDispatcher: Service {
    let store: any WebhookStore
    let settings: ServerConfiguration.Webhooks
    let threadPool: NIOThreadPool
    let logger: Logger
    private var busy: Set<String> = []
    private let ticks: AsyncStream<Void>
    private let tick: AsyncStream<Void>.Continuation
    /// Whether the loop is running (for `/health`).
    public private(set) var isRunning = false

    public init(store: any WebhookStore, settings: ServerConfiguration.Webhooks, threadPool: NIOThreadPool, logger: Logger) {
        self.store = store
        self.settings = settings
        self.threadPool = threadPool
        self.logger = logger
        (ticks, tick) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func run() async throws {
        isRunning = true
        defer { isRunning = false }
        let tick = self.tick
        await withDiscardingTaskGroup { group in
            group.addTask { [store] in
                for await _ in store.outboxSignal.wakes { tick.yield() }
            }
            group.addTask { [store] in
                // Retries fall due without a poke: wake when the next one does (at least once a second).
                while !Task.isCancelled {
                    let next = (try? await store.nextDueDate())?.timeIntervalSinceNow ?? 1
                    try? await Task.sleep(for: .seconds(min(1, max(0.005, next))))
                    tick.yield()
                }
            }
            group.addTask {
                // In-flight attempts are cancelled with the rest; unrecorded, they stay pending.
                if (try? await gracefulShutdown()) != nil { tick.finish() }
            }
            for await _ in ticks {
                startDue(in: &group, due: await due())
            }
            group.cancelAll()
        }
    }

    /// Deliveries sent over one connection before their attempts are recorded together.
    static let batchSize = 128

    private func due() async -> [[PendingDelivery]] {
        let free = settings.maxConcurrentDeliveries - busy.count
        guard free > 0 else { return [] }
        do {
            return try await store.dueDeliveries(now: Date(), busy: busy, endpoints: free, perEndpoint: Self.batchSize)
        } catch {
            logger.error("cannot read the webhook outbox", metadata: ["error": "\(error)"])
            return []
        }
    }

    private func startDue(in group: inout DiscardingTaskGroup, due: [[PendingDelivery]]) {
        for batch in due {
            guard let webhookId = batch.first?.webhookId, busy.insert(webhookId).inserted else { continue }
            group.addTask {
                await self.deliver(batch)
                await self.finished(webhookId)
            }
        }
    }

    private func finished(_ webhookId: String) {
        busy.remove(webhookId)
        tick.yield()
    }

    /// Sends one endpoint's due deliveries in order over one connection, stopping at the
    /// first that fails (the rest wait behind its retry), then records every attempt in one
    /// transaction. The target is resolved and checked once per batch.
    nonisolated func deliver(_ batch: [PendingDelivery]) async {
        guard let first = batch.first else { return }
        var client: HTTPClient?
        var refusal: String?
        do {
            let target = try WebhookTarget(first.url)
            let address = try await target.resolve(allowPrivate: settings.allowPrivateTargets, allowedHosts: settings.allowedHosts, on: threadPool)
            var configuration = HTTPClient.Configuration()
            // Connect to the address just checked; TLS still verifies the certificate for the name.
            configuration.dnsOverride = [target.host: address.description]
            if let pin = first.tlsFingerprint {
                configuration.tlsConfiguration = try await Self.pinnedTrust(pin, target: target, address: address)
            }
            configuration.redirectConfiguration = .disallow
            configuration.timeout = .init(connect: .seconds(Int64(min(settings.requestTimeoutSeconds, 10))))
            client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
        } catch {
            refusal = Self.describe(error)
        }
        var records: [(PendingDelivery, DeliveryAttempt, DeliveryOutcome)] = []
        for delivery in batch {
            let (attempt, outcome) = await attempt(delivery, client: client, refusal: refusal)
            records.append((delivery, attempt, outcome))
            if case .failed(let reason?) = outcome {
                logger.warning("webhook disabled", metadata: ["webhook": "\(delivery.webhookId)", "reason": "\(reason)"])
            }
            guard outcome == .delivered else { break }
        }
        try? await client?.shutdown()
        do {
            try await store.recordAttempts(records)
        } catch {
            // Unrecorded, the deliveries stay pending and are sent again: at least once.
            logger.error("cannot record webhook attempts", metadata: ["webhook": "\(first.webhookId)", "error": "\(error)"])
        }
    }

    /// One POST of the signed body, and what its answer means.
    nonisolated func attempt(_ delivery: PendingDelivery, client: HTTPClient?, refusal: String?) async -> (DeliveryAttempt, DeliveryOutcome) {
        let started = ContinuousClock.now
        let at = Date()
        var status: Int?
        var failure = refusal
        var excerpt: String?
        var retryAfter: Double?
        if let client {
            do {
                var request = HTTPClientRequest(url: delivery.url)
                request.method = .POST
                let headers = WebhookSigner.headers(
                    secret: delivery.secret,
                    delivery: .init(webhookId: delivery.webhookId, eventId: delivery.eventId, eventType: delivery.eventType,
                                    deliveryId: delivery.id, attempt: delivery.attempt, timestamp: Int64(at.timeIntervalSince1970)),
                    body: delivery.body)
                for (name, value) in headers { request.headers.add(name: name, value: value) }
                request.body = .bytes(ByteBuffer(bytes: delivery.body))
                let response = try await client.execute(request, timeout: .milliseconds(Int64(settings.requestTimeoutSeconds * 1000)))
                status = Int(response.status.code)
                retryAfter = response.headers.first(name: "Retry-After").flatMap(Self.parseRetryAfter)
                // Read either way (the connection is reused); kept only when the owner asked.
                let text = await Self.excerpt(of: response.body)
                if delivery.keepResponseExcerpt { excerpt = text }
            } catch {
                failure = Self.describe(error)
            }
        }
        let elapsed = ContinuousClock.now - started
        let latencyMs = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        let attempt = DeliveryAttempt(attempt: delivery.attempt, at: at, status: status, latencyMs: latencyMs,
                                      error: failure ?? status.flatMap { (200..<300).contains($0) ? nil : "the receiver answered \($0)" },
                                      response: excerpt)
        return (attempt, Self.outcome(status: status, attempt: delivery.attempt, retryAfter: retryAfter, schedule: settings.retryBackoffSeconds))
    }

    /// What an attempt's answer means for the delivery and its endpoint.
    static func outcome(status: Int?, attempt: Int, retryAfter: Double?, schedule: [Double], now: Date = Date()) -> DeliveryOutcome {
        if let status, (200..<300).contains(status) { return .delivered }
        if status == 410 { return .failed(disable: "the endpoint answered 410 Gone") }
        guard attempt < schedule.count else {
            return .failed(disable: "\(attempt) attempts failed" + (status.map { " (last answer \($0))" } ?? ""))
        }
        // Jitter spreads retries of many deliveries that failed together.
        var delay = schedule[attempt] * Double.random(in: 0.8...1.2)
        if let retryAfter, status == 429 || status == 503 { delay = max(delay, min(retryAfter, 86400)) }
        return .retry(at: now.addingTimeInterval(delay))
    }

    /// `Retry-After` as seconds or an HTTP date.
    static func parseRetryAfter(_ value: String) -> Double? {
        if let seconds = Double(value.trimmingCharacters(in: .whitespaces)), seconds >= 0 { return seconds }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: value).map { max(0, $0.timeIntervalSinceNow) }
    }

    /// The first KiB of the answer, as text; the rest is not read.
    static func excerpt(of body: HTTPClientResponse.Body) async -> String? {
        var collected = Data()
        do {
            for try await part in body {
                collected.append(contentsOf: part.readableBytesView.prefix(1024 - collected.count))
                if collected.count >= 1024 { break }
            }
        } catch {}
        return collected.isEmpty ? nil : String(decoding: collected, as: UTF8.self)
    }

    /// Trust in the receiver's pinned certificate alone: the certificate it presents (seen by
    /// a handshake that sends nothing) must have the pinned fingerprint, and the delivery's
    /// connection then accepts that certificate only, for whatever name.
    static func pinnedTrust(_ pin: CertificateFingerprint, target: WebhookTarget, address: IPAddress) async throws -> TLSConfiguration {
        let port = target.url.port ?? 443
        let chain: [NIOSSLCertificate]
        do { chain = try await CertificateProbe.presentedChain(host: address.description, port: port, serverName: target.host) } catch {
            throw WebhookTargetError("no TLS handshake with \(target.host):\(port) to check its pinned certificate (\(error))")
        }
        let presented = try CertificateProbe.fingerprint(of: chain[0])
        guard presented == pin else {
            throw WebhookTargetError("the receiver presented certificate \(presented), not the pinned \(pin); update the webhook's tls_fingerprint if it was replaced")
        }
        return PinnedTrust.clientConfiguration(trusting: chain[0])
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case let e as WebhookTargetError: "refused: \(e.description)"
        case let e as HTTPClientError where e == .deadlineExceeded || e == .readTimeout: "timed out (\(e))"
        case let e as HTTPClientError: "request failed: \(e)"
        default: "request failed: \(error)"
        }
    }
}

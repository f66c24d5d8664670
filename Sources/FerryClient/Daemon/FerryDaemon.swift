import AsyncHTTPClient
import FerryCore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Exponential backoff with full jitter: 1 s, 2 s, 4 s … capped at `cap`, each wait drawn
/// uniformly below the current ceiling so a fleet of daemons does not retry in step.
public struct Backoff: Sendable {
    public var base: Duration
    public var cap: Duration
    public private(set) var failures = 0

    public init(base: Duration = .seconds(1), cap: Duration = .seconds(300)) {
        self.base = base
        self.cap = cap
    }

    public mutating func next() -> Duration {
        failures += 1
        let ceiling = min(cap, base * (1 << min(failures - 1, 20)))
        let ms = Int64(ceiling.components.seconds) * 1000 + ceiling.components.attoseconds / 1_000_000_000_000_000
        return .milliseconds(Int64.random(in: (ms / 2)...max(ms / 2, ms)))
    }

    public mutating func reset() { failures = 0 }
}

/// `ferryd`: one loop per folder that runs a pass whenever the watcher, the server's change
/// feed or the periodic rescan says something may have changed; backs off while the server
/// is unreachable; serves its status on the control socket. A `Service`: ferryd runs it in a
/// `ServiceGroup` that shuts it down gracefully on SIGTERM and SIGINT.
public final class FerryDaemon: Service, Sendable {
    public let config: ClientConfig
    public let locations: ClientLocations
    public let board: StatusBoard
    let logger: Logger
    /// Each folder's pass trigger, for commands that should start a pass at once.
    let passTriggers = TriggerTable()

    public init(config: ClientConfig, locations: ClientLocations, logger: Logger) {
        self.config = config
        self.locations = locations
        self.logger = logger
        self.board = StatusBoard(server: config.serverURL, device: config.deviceName, folders: config.folders)
    }

    /// Runs until the task is cancelled or its service group shuts down gracefully. The
    /// folder list follows the config file: a `reload` on the control socket (what `ferry
    /// folder add` and `remove` send) or a change to the file seen within two seconds starts
    /// and stops folder loops without a restart. On the way out the folder loops are stopped
    /// and awaited, the control socket is closed and its file removed, and the index closed.
    public func run() async throws {
        let index = try LocalIndex(path: locations.indexFile)
        let (reloads, requestReload) = AsyncStream<ReloadTicket>.makeStream()
        let socket = try ControlSocket(path: locations.socketPath) { [board, passTriggers] request in
            Self.answer(request, board: board, triggers: passTriggers, reload: requestReload)
        }
        logger.info("ferryd started", metadata: ["folders": "\(config.folders.count)", "socket": "\(socket.path)"])
        defer { socket.stop() }
        let configFile = locations.configFile
        let configWatch = ConfigFileWatch(path: configFile)
        var settings = config
        var api = ServerAPI.open(for: settings)
        let loops = FolderLoops()
        // Either way out ends the stream of reloads, and so the loop that serves it.
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await withDiscardingTaskGroup { group in
                    group.addTask {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .seconds(2))
                            if configWatch.changedSinceRead() { requestReload.yield(ReloadTicket()) }
                        }
                    }
                    await loops.apply(settings.folders) { start($0, settings: settings, api: api, index: index) }
                    for await ticket in reloads {
                        let fresh: ClientConfig
                        configWatch.markRead()
                        do { fresh = try ClientConfig.load(from: configFile) } catch {
                            let message = "\(error); the folders synced stay as they were"
                            logger.error("\(message)")
                            ticket.finish(.failed(message))
                            continue
                        }
                        if !Self.sameSettings(fresh, settings) {
                            // Another server, token, certificate or tuning: every loop starts again with it.
                            await loops.stopAll()
                            await api.close()
                            api = ServerAPI.open(for: fresh)
                            board.reset(server: fresh.serverURL, device: fresh.deviceName)
                        }
                        settings = fresh
                        board.setFolders(fresh.folders)
                        let current = settings, client = api
                        let (started, stopped) = await loops.apply(fresh.folders) { start($0, settings: current, api: client, index: index) }
                        if !started.isEmpty || !stopped.isEmpty {
                            logger.info("configuration reloaded", metadata: ["started": "\(started)", "stopped": "\(stopped)"])
                        }
                        ticket.finish(.applied(loops.paths))
                    }
                    group.cancelAll()
                }
            } onCancel: {
                requestReload.finish()
            }
        } onGracefulShutdown: {
            requestReload.finish()
        }
        await loops.stopAll()
        await api.close()
        try? index.close()
    }

    /// Starts one folder's loop; a folder that cannot be opened is shown in error instead.
    func start(_ folder: FolderConfig, settings: ClientConfig, api: ServerAPI, index: LocalIndex) -> Task<Void, Never> {
        do {
            // A `ferry sync` of the folder is waited for; past this the pass is retried later.
            let sync = try FolderSync(folder: folder, of: settings, index: index, api: api, lockTimeout: .seconds(600), logger: logger)
            board.track(folder.path, sync.progress)
            return Task { await self.runFolder(sync, settings: settings) }
        } catch {
            let message = ClientError.describe(error)
            board.update(folder.path) { s in
                s.state = .error
                s.lastError = message
            }
            logger.error("cannot sync \(folder.path): \(message)")
            return Task {}
        }
    }

    /// Everything but the folder list is the same: the loops may go on as they are. (Every
    /// other field, so a setting added to the config restarts the loops without being listed here.)
    static func sameSettings(_ a: ClientConfig, _ b: ClientConfig) -> Bool {
        var a = a
        a.folders = b.folders
        return a == b
    }

    /// One control-socket request, answered on the socket's thread.
    static func answer(_ request: ControlRequest, board: StatusBoard, triggers: TriggerTable,
                       reload: AsyncStream<ReloadTicket>.Continuation) -> ControlAnswer {
        switch request {
        case .ping: return .pong
        case .status: return .status(board.snapshot)
        case .confirmDeletes(let folder):
            guard board.confirmDeletes(folder) else { return .refused("that folder has no deletes waiting for confirmation") }
            triggers.fire(folder)
            return .confirmed
        case .reload:
            let ticket = ReloadTicket()
            if case .terminated = reload.yield(ticket) { return .refused("ferryd is shutting down") }
            return ticket.answer(waitingUpTo: 60)
        }
    }

    /// The loop of one folder. Returns only when cancelled or when the device token is refused.
    func runFolder(_ sync: FolderSync, settings config: ClientConfig) async {
        let board = self.board
        let path = sync.folder.path
        let (triggers, trigger) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        // Passes asked for after a wait (a retry, a recheck): each is a timer of this loop's.
        let (retries, retryAfter) = AsyncStream<Duration>.makeStream()
        let signals = FolderSignals()
        let settle = Duration.milliseconds(config.settleMilliseconds)
        passTriggers.register(path, trigger)

        struct TokenRefused: Error {}
        await withThrowingTaskGroup(of: Void.self) { group in
            // Local changes: inotify, restarted whenever the root comes back or `.ferryignore`
            // changes (its rules decide what is watched). While it runs, a pass looks only at
            // the paths it reported and the feed brought (`ScopeTracker`); from its start on,
            // the next pass is a full one, which covers what changed before it watched. The
            // loop's first pass waits for the watcher (or its failure, which that pass then
            // reports): started before it, it would be a full pass followed by another.
            group.addTask { [logger, config] in
                var firstTry = true
                while !Task.isCancelled {
                    var rulesChanged = false
                    do {
                        try sync.checkRoot()
                        let rules = IgnoreRules(userPatterns: (try? String(contentsOfFile: path + "/.ferryignore", encoding: .utf8)) ?? "")
                        let watcher = try InotifyWatcher(root: path) { p, isDirectory in
                            p == LocalScanner.markerName || p.hasPrefix(LocalScanner.markerName + "/") || rules.isIgnored(p, isDirectory: isDirectory)
                        }
                        defer {
                            watcher.stop()
                            sync.scopes.watchStopped()
                        }
                        if !config.fullPasses { sync.scopes.watchStarted() }
                        trigger.yield()
                        var limitLogged = false
                        for await batch in watcher.events {
                            rulesChanged = sync.scopes.noted(batch)
                            for event in batch {
                                if case .watchLimitReached(let dir) = event, !limitLogged {
                                    limitLogged = true
                                    logger.warning("""
                                        inotify watch limit reached at \(path)/\(dir): raise fs.inotify.max_user_watches \
                                        (e.g. sysctl fs.inotify.max_user_watches=524288); until then this folder is rescanned every minute
                                        """)
                                    signals.fallbackRescan.store(true, ordering: .relaxed)
                                }
                                if event == .rootGone { watcher.stop() }
                            }
                            signals.lastLocalEvent.withLock { $0 = .now }
                            trigger.yield()
                            if rulesChanged { break }
                        }
                    } catch {
                        logger.debug("watcher unavailable", metadata: ["folder": "\(path)", "error": "\(error)"])
                        if firstTry { trigger.yield() }
                    }
                    firstTry = false
                    if !rulesChanged { try? await Task.sleep(for: .seconds(5)) }
                }
            }
            // Remote changes: long-poll the change feed.
            group.addTask {
                var backoff = Backoff()
                while !Task.isCancelled {
                    do {
                        if try await sync.pullChanges(wait: 60) { trigger.yield() }
                        backoff.reset()
                    } catch let failure as APIFailure where failure.isAuthentication {
                        throw TokenRefused()
                    } catch {
                        if Task.isCancelled { return }
                        try? await Task.sleep(for: backoff.next())
                    }
                }
            }
            // The safety net: a full rescan every so often (every minute where inotify ran out of watches).
            group.addTask { [config] in
                var waited = 0
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(10))
                    waited += 10
                    if waited >= config.rescanIntervalSeconds || (signals.fallbackRescan.load(ordering: .relaxed) && waited >= 60) {
                        waited = 0
                        sync.scopes.requireFull()
                        trigger.yield()
                    }
                }
            }
            // The timers of retries and rechecks, ended with the loop.
            group.addTask {
                await withDiscardingTaskGroup { timers in
                    for await wait in retries {
                        timers.addTask {
                            try? await Task.sleep(for: wait)
                            trigger.yield()
                        }
                    }
                    timers.cancelAll()
                }
            }
            // The passes.
            group.addTask { [logger, board] in
                var backoff = Backoff()
                // A folder paused on deletions made elsewhere looks again now and then: the
                // user may confirm them on another device, which moves no change feed here.
                var recheck = Backoff(base: .seconds(5), cap: .seconds(300))
                for await _ in triggers {
                    // Wait until local writes have been quiet for the settle time.
                    while let last = signals.lastLocalEvent.withLock({ $0 }), ContinuousClock.now - last < settle {
                        try? await Task.sleep(for: settle - (ContinuousClock.now - last))
                    }
                    if Task.isCancelled { return }
                    board.update(path) { $0.state = .syncing }
                    do {
                        let report = try await sync.syncUntilSettled(allowMassDelete: board.takeConfirmation(path))
                        if report.passes > report.scopedPasses { await HeapRelease.afterFullPass() }
                        backoff.reset()
                        // What is open now, as `ferry conflicts` lists it: counting the conflicts
                        // each pass made never counted one settled, here or elsewhere, down.
                        let open = try? await sync.openConflicts()
                        if let pause = report.massDelete {
                            logger.warning("mass delete held back", metadata: ["folder": "\(path)", "why": "\(pause.description)"])
                        }
                        if let pause = report.massDelete, pause.localDeletes > 0 {
                            let wait = recheck.next()
                            retryAfter.yield(wait)
                        } else {
                            recheck.reset()
                        }
                        board.update(path) { s in
                            s.state = report.massDelete == nil ? .idle : .paused
                            s.massDelete = report.massDelete
                            s.lastError = nil
                            s.retryAt = nil
                            s.lastSyncAt = Date()
                            s.lastPass = report
                            s.problems = report.problems
                            s.conflicts = open ?? s.conflicts
                        }
                        if report.didWork {
                            logger.info("synced", metadata: [
                                "folder": "\(path)", "up": "\(report.uploadedFiles)", "down": "\(report.downloadedFiles)",
                                "deleted": "\(report.deletedLocal + report.deletedRemote)", "conflicts": "\(report.conflicts)",
                            ])
                        }
                    } catch let failure as APIFailure where failure.isAuthentication {
                        board.update(path) { s in
                            s.state = .error
                            s.lastError = "the server refused this device's token (revoked?); run 'ferry login' again"
                        }
                        logger.error("device token refused; this folder stops syncing until 'ferry login' is run again", metadata: ["folder": "\(path)"])
                        throw TokenRefused()
                    } catch let failure where failure is ClientError || failure is CertificatePinMismatch
                                || (failure as? APIFailure)?.isQuotaExceeded == true {
                        // Needs the user (a folder gone, a server certificate that changed, a full quota):
                        // an error state, the work kept queued, and another try after a backoff.
                        let message = String(describing: failure)
                        let wait = backoff.next()
                        board.update(path) { s in
                            s.state = .error
                            s.lastError = message
                            s.retryAt = Date() + wait.timeInterval
                        }
                        logger.error("\(message)")
                        retryAfter.yield(wait)
                    } catch {
                        let wait = backoff.next()
                        board.update(path) { s in
                            s.state = .offline
                            s.lastError = ClientError.describe(error)
                            s.retryAt = Date() + wait.timeInterval
                        }
                        let retry = "retrying in \(Int(wait.timeInterval.rounded(.up))) s"
                        if let unreachable = error as? ServerUnreachable {
                            logger.warning("\(unreachable.description); \(retry)", metadata: ["folder": "\(path)"])
                        } else {
                            logger.warning("sync failed; \(retry)", metadata: ["folder": "\(path)", "error": "\(ClientError.describe(error))"])
                        }
                        retryAfter.yield(wait)
                    }
                }
            }
            // Any child that throws (the token was refused) ends the folder's loop.
            do {
                while try await group.next() != nil {}
            } catch {
                board.update(path) { s in
                    s.state = .error
                    s.lastError = "the server refused this device's token (revoked?); run 'ferry login' again"
                }
                group.cancelAll()
            }
        }
    }
}

/// A request to read the configuration again, answered once it is applied (or has failed).
final class ReloadTicket: Sendable {
    enum Outcome: Sendable {
        case applied([String])
        case failed(String)
    }

    private let done = DispatchSemaphore(value: 0)
    private let outcome = Mutex<Outcome?>(nil)

    func finish(_ result: Outcome) {
        outcome.withLock { $0 = result }
        done.signal()
    }

    /// The control socket's answer: the folders now synced, or why the reload failed.
    func answer(waitingUpTo seconds: Int) -> ControlAnswer {
        _ = done.wait(timeout: .now() + .seconds(seconds))
        return switch outcome.withLock({ $0 }) {
        case .applied(let folders)?: .reloaded(folders: folders)
        case .failed(let message)?: .refused(message)
        case nil: .refused("ferryd did not finish reloading within \(seconds) s; see its log")
        }
    }
}

/// State shared by the tasks of one folder's loop.
final class FolderSignals: Sendable {
    /// When the watcher last reported a local change (for the settle wait).
    let lastLocalEvent = Mutex<ContinuousClock.Instant?>(nil)
    /// Set when inotify ran out of watches: rescan every minute instead of hourly.
    let fallbackRescan = Atomic<Bool>(false)
}

/// Each folder's pass trigger, so a control command can start a pass at once.
final class TriggerTable: Sendable {
    private let table = Mutex<[String: AsyncStream<Void>.Continuation]>([:])

    func register(_ folder: String, _ trigger: AsyncStream<Void>.Continuation) {
        table.withLock { $0[folder] = trigger }
    }

    func fire(_ folder: String) {
        _ = table.withLock { $0[folder]?.yield() }
    }
}

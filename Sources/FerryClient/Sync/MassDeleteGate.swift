import FerryCore
import Logging

/// The mass-delete guard of SPEC §6 across a user's devices (issue 26). A mass delete the
/// user let through on one device, or deletions made in the dashboard, are recorded on the
/// server by their deletion versions; another device whose pass would delete the same files
/// here asks the server about exactly those versions and lets them through without asking
/// again. A different mass delete has other versions, so it is still held.
struct MassDeleteGate: Sendable {
    let api: ServerAPI
    let library: String
    let logger: Logger

    /// A pass's plan, and what it confirms to the server once it has run.
    struct Decision: Sendable {
        var plan: Plan
        /// Server deletions the user let through here (held local deletes), to record.
        var confirmedTombstones: [Int64] = []
        /// The user let held deletions to the server through: their new versions are recorded
        /// once committed.
        var confirmsRemoteDeletes = false
    }

    /// The plan under the guard: deletions confirmed elsewhere pass, and with
    /// `policy.allowMassDelete` what the guard held passes too and is to be recorded.
    /// `synced`: the entries the folder has synced in all, when `index` holds only a scoped
    /// pass's (`Planner.plan`); asked at most once.
    func decide(index: [String: IndexEntry], local: [String: LocalState], remote: [String: FileVersion], policy: SafetyPolicy,
                synced: (() throws -> Int)? = nil) async throws -> Decision {
        var count: Int?
        func total() throws -> Int {
            if let count { return count }
            let n = try synced?() ?? index.count
            count = n
            return n
        }
        var guarded = policy
        guarded.allowMassDelete = false
        var plan = try Planner.plan(index: index, local: local, remote: remote, policy: guarded, synced: total)
        if let pause = plan.massDelete, pause.localDeletes > 0 {
            guarded.confirmedDeletions = try await confirmed(among: Self.tombstones(plan.heldDeletes, remote: remote))
            if !guarded.confirmedDeletions.isEmpty { plan = try Planner.plan(index: index, local: local, remote: remote, policy: guarded, synced: total) }
        }
        guard policy.allowMassDelete, plan.massDelete != nil else { return Decision(plan: plan) }
        var allowed = guarded
        allowed.allowMassDelete = true
        return Decision(plan: try Planner.plan(index: index, local: local, remote: remote, policy: allowed, synced: total),
                        confirmedTombstones: Self.tombstones(plan.heldDeletes, remote: remote),
                        confirmsRemoteDeletes: plan.heldDeletes.contains { if case .deleteRemote = $0 { true } else { false } })
    }

    /// Records deletion versions as confirmed. A record that fails costs the other devices
    /// a question, never a file, so the failure is logged and the pass goes on.
    func record(_ versions: [Int64]) async {
        guard !versions.isEmpty else { return }
        do { _ = try await api.confirmDeletions(library: library, versions: versions) } catch {
            logger.warning("could not record the confirmed deletions on the server; other devices will ask again",
                           metadata: ["library": "\(library)", "error": "\(ClientError.describe(error))"])
        }
    }

    /// Which of these server deletions were confirmed; none from a server that keeps no such
    /// record (older than this client), which leaves the guard as it was.
    func confirmed(among versions: [Int64]) async throws -> Set<Int64> {
        guard !versions.isEmpty else { return [] }
        do { return try await api.confirmedDeletions(library: library, among: versions) } catch let refusal as APIFailure where refusal.status == 404 {
            logger.debug("the server keeps no confirmed deletions", metadata: ["library": "\(library)"])
            return []
        }
    }

    /// The server's deletion versions behind held local deletes.
    static func tombstones(_ held: [PlannedAction], remote: [String: FileVersion]) -> [Int64] {
        held.compactMap { $0.followedDeletion(in: remote) }
    }
}

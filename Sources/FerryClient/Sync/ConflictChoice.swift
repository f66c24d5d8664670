import FerryCore

/// What a person keeps of a conflict, in their own terms. On the wire `mine` is the copy
/// (the side that lost the race) wherever the request comes from; at the command line "mine"
/// is what *this device* wrote, on every device, and `copy` / `current` name the two stored
/// sides for a device that wrote neither.
public enum ConflictChoice: String, CaseIterable, Sendable {
    /// This device's side.
    case mine
    /// The other device's side.
    case theirs
    /// Both: the copy becomes an ordinary file.
    case both
    /// The conflict copy's content, whoever wrote it.
    case copy
    /// The file as it is now, whoever wrote it.
    case current
}

/// One conflict as a given device sees it.
public struct ConflictPerspective: Sendable {
    /// The two stored sides of a conflict.
    public enum Side: Sendable { case copy, current }

    public let conflict: ConflictInfo
    /// The device looking at it (this device's id from its config).
    public let deviceId: String

    public init(_ conflict: ConflictInfo, deviceId: String) {
        self.conflict = conflict
        self.deviceId = deviceId
    }

    /// The side this device wrote: the copy when it lost the race, the current file when it
    /// won, nil when both sides came from other devices (or the dashboard).
    public var mySide: Side? {
        if conflict.mine.deviceId == deviceId { return .copy }
        if conflict.theirs.deviceId == deviceId { return .current }
        return nil
    }

    /// This device's side and the other, as stored; nil when this device wrote neither.
    public var mineAndTheirs: (mine: ConflictSide, theirs: ConflictSide)? {
        switch mySide {
        case .copy?: (conflict.mine, conflict.theirs)
        case .current?: (conflict.theirs, conflict.mine)
        case nil: nil
        }
    }

    /// The resolution to send for `choice`; throws the sentence to show when "mine" or
    /// "theirs" has no meaning here (this device wrote neither side).
    public func resolution(for choice: ConflictChoice, names: [String: String]) throws -> ConflictKeep {
        let side: Side
        switch choice {
        case .both: return .both
        case .copy: side = .copy
        case .current: side = .current
        case .mine, .theirs:
            guard let mine = mySide else {
                let who = { (s: ConflictSide) in s.deviceId.map { names[$0] ?? $0 } ?? "the web" }
                throw ClientError.invalidInput(
                    "neither side of \(conflict.path) was written on this device (the copy comes from \(who(conflict.mine)), the current file "
                        + "from \(who(conflict.theirs))), so 'mine' and 'theirs' mean nothing here; use --keep copy or --keep current")
            }
            side = choice == .mine ? mine : (mine == .copy ? .current : .copy)
        }
        return side == .copy ? .mine : .theirs
    }
}

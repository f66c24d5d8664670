import FerryCore

/// Why a library name reaches no library; each case is the sentence the user sees.
public enum LibraryLookupError: ClientAppError, Equatable {
    /// `OWNER/NAME` names no library shared with the caller (and only owners create libraries).
    case notShared(String)
    /// The name reaches none of the caller's libraries nor one shared with them.
    case unknown(String)

    public var description: String {
        switch self {
        case .notShared(let name): "no library '\(name)' is shared with you; 'ferry library list' shows the libraries you can sync"
        case .unknown(let name): "no library '\(name)'; 'ferry library list' shows yours and those shared with you (as OWNER/NAME)"
        }
    }
}

/// The names that reach libraries (SPEC §10): `NAME` is one of the caller's own libraries,
/// `OWNER/NAME` one OWNER shares with them (library names hold no '/', so the two never mix).
public enum LibraryLookup {
    /// The library `name` reaches among `libraries` (as the server lists them to the caller),
    /// nil when none. Pure.
    public static func match(_ name: String, in libraries: [LibraryInfo]) -> LibraryInfo? {
        if let slash = name.firstIndex(of: "/") {
            let owner = String(name[..<slash]), rest = String(name[name.index(after: slash)...])
            return libraries.first { $0.name == rest && $0.owner == owner }
        }
        // Servers from before sharing send no role: every library they list is the caller's.
        return libraries.first { $0.name == name && ($0.role ?? .owner) == .owner }
    }

    /// Whether a missing library `name` is one the caller may create: only their own, never
    /// `OWNER/NAME`. Pure.
    public static func checkCreatable(_ name: String) throws(LibraryLookupError) {
        guard !name.contains("/") else { throw .notShared(name) }
    }
}

extension ServerAPI {
    /// The library a person names, created when it is the caller's own and missing.
    public func library(named name: String) async throws -> LibraryInfo {
        if let existing = try await existingLibrary(named: name) { return existing }
        try LibraryLookup.checkCreatable(name)
        return try await createLibrary(name: name)
    }

    /// The caller's library `NAME`, or the library `OWNER/NAME` shared with them; nil when none.
    public func existingLibrary(named name: String) async throws -> LibraryInfo? {
        LibraryLookup.match(name, in: try await libraries())
    }

    /// A library that must exist, with an error naming the way to see them otherwise.
    public func requireLibrary(named name: String) async throws -> LibraryInfo {
        guard let library = try await existingLibrary(named: name) else { throw LibraryLookupError.unknown(name) }
        return library
    }
}

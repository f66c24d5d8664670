/// A refusal by the client application layer (`FolderSetup`, `LoginSetup`, `SyncedPath`, …):
/// `description` is the one sentence a front end shows the user, as it is.
public protocol ClientAppError: Error, CustomStringConvertible, Sendable {}

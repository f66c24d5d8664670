/// The release every program reports with `--version`: `ferry`, `ferryd` and `ferry-server`
/// are built from one tree, so they share one number, and a bug report that quotes it names
/// the code on both sides.
public enum FerryVersion {
    /// The release, semantic-versioning style.
    public static let release = "0.26.0"

    /// What `--version` prints: the release and the API version it speaks (`/api/v1`).
    public static var description: String { "\(release) (API v1)" }
}

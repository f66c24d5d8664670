import FerryCore
import Foundation

/// Why a login was refused; each case is the sentence the user sees.
public enum LoginError: ClientAppError, Equatable {
    /// The server did not accept the user name and password.
    case wrongCredentials
    /// The server refused the login or the device's registration for another reason, as it said.
    case refused(String)

    public var description: String {
        switch self {
        case .wrongCredentials: "wrong user name or password"
        case .refused(let message): message
        }
    }
}

/// What `ferry login` does besides asking: register this device and fold the new login into
/// the configuration already there.
public enum LoginSetup {
    /// The device name used when none is given: this machine's host name.
    public static var defaultDeviceName: String { ProcessInfo.processInfo.hostName }

    /// The configuration after logging in to `serverURL` as `username` with the newly
    /// registered `device`. Pure. The device, its token and the certificate pin are always
    /// the new login's (no pin: none is kept); the folders are kept from `previous` only when
    /// it named the same server and user, since a library id means nothing on another
    /// server or account. Every login registers a device of its own: the previous device is
    /// not reused (nor revoked).
    public static func config(
        after device: RegisterDeviceResponse, serverURL: String, username: String, pin: CertificatePin?, previous: ClientConfig?
    ) -> ClientConfig {
        var config = ClientConfig(serverURL: serverURL, username: username, deviceId: device.device.id, deviceName: device.device.name,
                                  deviceToken: device.token)
        config.certificatePin = pin
        if let previous, previous.serverURL == serverURL, previous.username == username {
            config.folders = previous.folders
        }
        return config
    }

    /// The fingerprint this device pinned for `serverURL` before, when the certificate now
    /// `presented` replaces it (nil: nothing pinned there before, or the same certificate). Pure.
    public static func replacedPin(by presented: CertificateFingerprint, serverURL: String, previous: ClientConfig?) -> CertificateFingerprint? {
        guard let previous, previous.serverURL == serverURL, let pinned = previous.certificatePin?.fingerprint, pinned != presented else {
            return nil
        }
        return pinned
    }

    /// Logs in, registers this device as `deviceName`, and saves the configuration merged
    /// with the one at `configFile` (see `config(after:…)`).
    /// - Returns: the saved configuration.
    public static func logIn(
        serverURL: String, username: String, password: String, deviceName: String, pin: CertificatePin?, configFile: String
    ) async throws -> ClientConfig {
        let device: RegisterDeviceResponse
        do {
            let enrolled = try await ServerAPI.enroll(serverURL: serverURL, username: username, password: password, deviceName: deviceName, pin: pin)
            device = enrolled.device
            await enrolled.api.close()
        } catch let e as APIFailure {
            throw e.status == 401 ? LoginError.wrongCredentials : LoginError.refused(e.message)
        }
        let config = config(after: device, serverURL: serverURL, username: username, pin: pin, previous: try? ClientConfig.load(from: configFile))
        try config.save(to: configFile)
        return config
    }
}
